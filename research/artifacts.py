"""Write-once artifacts in `STORAGES["artifacts"]`: atomic writes, deterministic JSON, confined reads.

Paths are relative to the storage root and use `/`. Writing the same bytes to an existing path is a no-op;
different bytes raise ArtifactConflict, so a step that runs twice (crash, retry, two workers) is harmless.
Two exceptions, each with its own write path: a log that is only appended to (`extend_artifact`) and a derived
file that no event records and anyone can rebuild from the events (`replace_derived`). In an S3 bucket the same
rules hold through conditional PUTs (research.s3_artifacts).
A written file is on disk (the file, and every folder that gained an entry for it) before the write returns,
or, inside `durable_together()`, before that block ends: the engine appends a step's result only after its
files are durable.
"""
import fcntl
import json
import os
import re
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

from contracts import sha256_hex

from .errors import ArtifactConflict, ArtifactNotFound, IntegrityFailure, UnsafePath

STORAGE_ALIAS = "artifacts"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.@=+-]+$")


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact is, and what it holds: the shape events record (`{path, sha256, bytes}`)."""

    path: str
    sha256: str
    bytes: int

    def as_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


def artifact_storage():
    # Resolved on every call: tests and operators may swap STORAGES at run time.
    return storages[STORAGE_ALIAS]


def json_bytes(doc) -> bytes:
    """The byte form of a JSON artifact: sorted keys, indent 2, UTF-8, no NaN, trailing newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def check_path(path: str) -> str:
    """`path` if it is a plain relative path inside the root; UnsafePath otherwise."""
    if not isinstance(path, str) or not path:
        raise UnsafePath(f"artifact path must be a non-empty string, got {path!r}")
    if "\x00" in path or "\\" in path:
        raise UnsafePath(f"artifact path {path!r} contains a NUL or a backslash")
    if path.startswith("/") or PurePosixPath(path).is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise UnsafePath(f"artifact path {path!r} is absolute")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"artifact path {path!r} has an empty, '.' or '..' component")
        if not _SEGMENT.fullmatch(part):
            raise UnsafePath(f"artifact path {path!r} has a component with characters outside [A-Za-z0-9_.@=+-]")
    return path


@lru_cache(maxsize=16)
def _resolved_root(location: str) -> str:
    return os.path.realpath(location)


def _local_path(storage, path: str, checked: set[str], within: str | None = None) -> Path:
    """The file system path of `path`, refused if a symlink on the way leads out of the root, or out of the
    folder `within` when one is given.

    `check_path` already refused `..` and absolute paths, so only a symlink below the root can lead out:
    each existing component is looked at (lstat), and only when one is a symlink is the path resolved.
    The folder is taken as written, never resolved: nothing is read through a folder that is itself a link.
    Folders in `checked` (real folders, below the root through real folders only) are not looked at again;
    the ones found so are added to it.
    """
    root = _resolved_root(storage.location)
    current = root
    parts = path.split("/")
    for depth, part in enumerate(parts, start=1):
        current = os.path.join(current, part)
        if current in checked:
            continue
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # nothing below exists yet, so no symlink either
        if stat.S_ISDIR(mode) and depth < len(parts):
            checked.add(current)
        elif stat.S_ISLNK(mode):
            target = os.path.realpath(os.path.join(root, path))
            if within is not None and not target.startswith(os.path.join(root, within) + os.sep):
                raise ArtifactNotFound(f"artifact {path} resolves outside {within}")
            if not target.startswith(root + os.sep):
                raise UnsafePath(f"artifact path {path!r} resolves outside the artifact root")
            return Path(target)
    return Path(root, path)


def write_artifact(path: str, data: bytes) -> ArtifactRef:
    """Write `data` at `path` once. Same bytes already there: no-op. Other bytes there: ArtifactConflict."""
    check_path(path)
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        _write_local(storage, path, data)
    else:
        _write_remote(storage, path, data)
    return ArtifactRef(path=path, sha256=sha256_hex(data), bytes=len(data))


def write_json_artifact(path: str, doc) -> ArtifactRef:
    return write_artifact(path, json_bytes(doc))


def extend_artifact(path: str, data: bytes) -> ArtifactRef:
    """The one write path that only appends (a log such as `rerun_log.jsonl`): the file must hold a prefix of
    `data` (or not exist); the missing tail is appended and nothing before it is touched. A file that holds
    anything else is ArtifactConflict. Several writers may race: each appends only what is still missing, under
    an exclusive lock on the file. An object store has no append: there the whole object is written again, after
    the same prefix check (on S3, only if the object is still the one checked)."""
    check_path(path)
    storage = artifact_storage()
    if (s3 := _s3(storage)) is not None:
        s3.extend(storage, path, data, check=lambda existing: _check_prefix(path, existing, data))
    elif not isinstance(storage, FileSystemStorage):
        existing = _read_remote(storage, path)
        _check_prefix(path, existing, data)
        if existing != data:
            _rewrite_remote(storage, path, data)
    else:
        with _writing_local(storage, path) as target:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND, storage.file_permissions_mode or 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                existing = _read_fd(fd)
                _check_prefix(path, existing, data)
                if len(data) > len(existing):
                    os.write(fd, data[len(existing):])
            finally:
                os.close(fd)  # closing releases the lock
    return ArtifactRef(path=path, sha256=sha256_hex(data), bytes=len(data))


def replace_derived(path: str, data: bytes) -> ArtifactRef:
    """Write a derived file (one any reader can rebuild from the events, such as `rerun_state.json`, which no
    event records) at `path`, replacing what was there in one step: a reader sees the old or the new bytes."""
    check_path(path)
    storage = artifact_storage()
    if not isinstance(storage, FileSystemStorage):
        _rewrite_remote(storage, path, data)
    else:
        with _writing_local(storage, path) as target:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, storage.file_permissions_mode or 0o644)
            os.replace(tmp, target)
    return ArtifactRef(path=path, sha256=sha256_hex(data), bytes=len(data))


@contextmanager
def _writing_local(storage, path: str):
    """The file system path of `path`, its folder made, inside a durability block that fsyncs the file and the
    folder when it ends."""
    with durable_together():
        step = _local.step
        target = _local_path(storage, path, step.checked)
        _make_folder(str(target.parent), step)
        yield target
        step.files[target] = None
        step.folders[target.parent] = None


def _s3(storage):
    """research.s3_artifacts when `storage` is an S3 bucket, else None (imported only for a storage that is not a
    local folder: it loads boto3)."""
    if isinstance(storage, FileSystemStorage):
        return None
    from . import s3_artifacts

    return s3_artifacts if s3_artifacts.handles(storage) else None


def _rewrite_remote(storage, path: str, data: bytes) -> None:
    if (s3 := _s3(storage)) is not None:
        s3.replace(storage, path, data)
        return
    if storage.exists(path):
        storage.delete(path)
    storage.save(path, ContentFile(data))


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_remote(storage, path: str) -> bytes:
    if not storage.exists(path):
        return b""
    with storage.open(path, "rb") as handle:
        return handle.read()


def _check_prefix(path: str, existing: bytes, data: bytes) -> None:
    if not data.startswith(existing):
        raise ArtifactConflict(f"artifact {path} holds bytes that the appended log does not start with "
                               f"(sha256 {sha256_hex(existing)}): it was changed, not only appended to")


def _write_local(storage, path: str, data: bytes) -> None:
    with durable_together():  # a write outside any block is a block of its own
        step = _local.step
        target = _local_path(storage, path, step.checked)
        if target.is_file():
            _compare(path, target.read_bytes(), data)
            return
        _make_folder(str(target.parent), step)
        _local_path(storage, path, step.checked)  # folders someone else made meanwhile may not lead out of the root
        _link_new_file(storage, path, target, data)
        step.files[target] = None
        step.folders[target.parent] = None


def _make_folder(folder: str, step: "_Step") -> None:
    """Make `folder`, its missing parents first (the root too, on a fresh storage): the folder each is made in
    gains an entry, to be made durable with the step. A folder made here is a real folder, not looked at again."""
    if folder in step.checked:
        return
    try:
        os.mkdir(folder)
    except FileExistsError:
        return  # there before us, or made meanwhile: _local_path looks at it
    except FileNotFoundError:
        _make_folder(os.path.dirname(folder), step)
        try:
            os.mkdir(folder)
        except FileExistsError:
            return
    step.checked.add(folder)
    step.folders[Path(os.path.dirname(folder))] = None


def _link_new_file(storage, path: str, target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, storage.file_permissions_mode or 0o644)
        try:
            # link() never replaces: of two writers racing for the same path exactly one creates it.
            os.link(tmp, target)
        except FileExistsError:
            # Another writer won the race; its file may not be on disk yet, and ours now names it too.
            _compare(path, target.read_bytes(), data)
    finally:
        os.unlink(tmp)


# --- durability: what a step wrote is fsynced when it ends ---------------------------------------------------
_local = threading.local()


@dataclass
class _Step:
    """One `durable_together` block: the files written and the folders that gained an entry (insertion-ordered
    sets, each fsynced once when the block ends), and the folders already looked at for symlinks."""

    files: dict[Path, None] = field(default_factory=dict)
    folders: dict[Path, None] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)

    def make_durable(self) -> None:
        for path in (*self.files, *self.folders):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextmanager
def durable_together():
    """Files written inside the block, and the folders that gained an entry for them, are fsynced when it
    ends without an error; folders are looked at for symlinks once in the block. Nested blocks join the
    outermost one.
    """
    if getattr(_local, "step", None) is not None:
        yield
        return
    step = _local.step = _Step()
    try:
        yield
    finally:
        _local.step = None
    step.make_durable()


def _checked_folders() -> set[str]:
    """The folders the open block has looked at already; outside a block, none."""
    step = getattr(_local, "step", None)
    return step.checked if step is not None else set()


def _write_remote(storage, path: str, data: bytes) -> None:
    if (s3 := _s3(storage)) is not None:  # a conditional PUT: of two writers racing, exactly one creates the key
        existing = s3.create(storage, path, data)
        if existing is not None:
            _compare(path, existing, data)
        return
    # Other object stores have no link(); check, write, then re-check that nobody else won the race.
    if storage.exists(path):
        with storage.open(path, "rb") as handle:
            _compare(path, handle.read(), data)
        return
    saved = storage.save(path, ContentFile(data))
    if saved != path:
        storage.delete(saved)
        with storage.open(path, "rb") as handle:
            _compare(path, handle.read(), data)


def _compare(path: str, existing: bytes, data: bytes) -> None:
    if existing != data:
        raise ArtifactConflict(
            f"artifact {path} already exists with other content "
            f"(sha256 {sha256_hex(existing)}, refused {sha256_hex(data)})"
        )


NAME_MAX = 255  # bytes in one name of a path, on the file systems artifacts are kept on


def read_artifact(path: str, *, within: str | None = None) -> bytes:
    """The bytes at `path`. With `within` (a folder such as `jobs/<job_id>`), the one confinement every
    reader of a job's or run's files goes through: a path outside that folder, directly or through a
    symlink anywhere on the way, is ArtifactNotFound, as if the file were not there."""
    check_path(path)
    if within is not None and not path.startswith(check_path(within) + "/"):
        raise ArtifactNotFound(f"artifact {path} is outside {within}")
    if any(len(part.encode()) > NAME_MAX for part in path.split("/")):
        raise ArtifactNotFound(f"artifact {path[:300]}… does not exist: a name of more than {NAME_MAX} bytes")
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        target = _local_path(storage, path, _checked_folders(), within)
        if not target.is_file():
            raise ArtifactNotFound(f"artifact {path} does not exist")
        return target.read_bytes()
    if (s3 := _s3(storage)) is not None:
        found = s3.read(storage, path)
        if found is None:
            raise ArtifactNotFound(f"artifact {path} does not exist")
        return found[0]
    if not storage.exists(path):
        raise ArtifactNotFound(f"artifact {path} does not exist")
    with storage.open(path, "rb") as handle:
        return handle.read()


def read_json_artifact(path: str, *, sha256: str | None = None):
    """The JSON document at `path`; with `sha256`, only if its bytes are still the ones recorded with that
    sha256 (IntegrityFailure otherwise)."""
    data = read_artifact(path)
    if sha256 is not None and sha256_hex(data) != sha256:
        raise IntegrityFailure(f"artifact {path} has changed since it was recorded: its sha256 is "
                               f"{sha256_hex(data)}, the events recorded {sha256}")
    return json.loads(data)


def list_artifacts(prefix: str) -> list[str]:
    """Every file under the folder `prefix`, as sorted storage paths (temporary files excluded). A symlink is
    not followed and not listed (nothing EAM writes is one), nor is a name no artifact path could have."""
    check_path(prefix)
    storage = artifact_storage()
    local = isinstance(storage, FileSystemStorage)
    found = []

    def ours(folder: str, name: str) -> bool:
        path = f"{folder}/{name}"
        if local and os.path.islink(storage.path(path)):
            return False
        try:
            check_path(path)
        except UnsafePath:
            return False
        return True

    def walk(folder: str) -> None:
        try:
            dirs, files = storage.listdir(folder)
        except FileNotFoundError:
            return
        found.extend(f"{folder}/{name}" for name in files if not name.startswith(".tmp-") and ours(folder, name))
        for name in dirs:
            if ours(folder, name):
                walk(f"{folder}/{name}")

    walk(prefix)
    return sorted(found)
