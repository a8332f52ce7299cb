"""Write-once artifacts in `STORAGES["artifacts"]`: atomic writes, deterministic JSON, confined reads.

Paths are relative to the storage root and use `/`. Writing the same bytes to an existing path is a no-op;
different bytes raise ArtifactConflict, so a step that runs twice (crash, retry, two workers) is harmless.
A written file is on disk (file and folder entry) before the write returns, or, inside `durable_together()`,
before that block ends: the engine appends a step's result only after its files are durable.
"""
import ctypes
import json
import os
import re
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

from contracts import sha256_hex

from .errors import ArtifactConflict, ArtifactNotFound, UnsafePath

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


def _local_path(storage, path: str, within: str | None = None) -> Path:
    """The file system path of `path`, refused if a symlink on the way leads out of the root, or out of the
    folder `within` when one is given.

    `check_path` already refused `..` and absolute paths, so only a symlink below the root can lead out:
    each existing component is looked at (lstat), and only when one is a symlink is the path resolved.
    The folder is taken as written, never resolved: nothing is read through a folder that is itself a link.
    """
    root = _resolved_root(storage.location)
    current = root
    for part in path.split("/"):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # nothing below exists yet, so no symlink either
        if stat.S_ISLNK(mode):
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


def _write_local(storage, path: str, data: bytes) -> None:
    target = _local_path(storage, path)
    if target.is_file():
        _compare(path, target.read_bytes(), data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _local_path(storage, path)  # the folders just made may not be symlinks out of the root
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
    _written(target)


# --- durability: one sync per step, not one per file -------------------------------------------------------
_batch = threading.local()


def _load_syncfs():
    """Linux's syncfs(2): writes out one file system's dirty data and metadata in one call."""
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


_SYNCFS = _load_syncfs()


@contextmanager
def durable_together():
    """Files written inside the block are made durable together when it ends without an error.

    With many files one syncfs per file system is far cheaper than an fsync per file and per folder.
    Nested blocks join the outermost one.
    """
    if getattr(_batch, "written", None) is not None:
        yield
        return
    _batch.written = []
    try:
        yield
        written = _batch.written
    finally:
        _batch.written = None
    make_durable(written)


def _written(target: Path) -> None:
    pending = getattr(_batch, "written", None)
    if pending is None:
        make_durable([target])
    else:
        pending.append(target)


def make_durable(files: list[Path]) -> None:
    """Put `files` and their folder entries on disk: fsync for one file, else syncfs (fsync each elsewhere)."""
    if not files:
        return
    if len(files) > 1 and _SYNCFS is not None:
        for folder in {os.stat(f.parent).st_dev: f.parent for f in files}.values():
            _syncfs(folder)
        return
    for path in files:
        _fsync(path)
    for folder in {f.parent for f in files}:
        _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs failed on {folder}: {os.strerror(error)}")
    finally:
        os.close(fd)


def _write_remote(storage, path: str, data: bytes) -> None:
    # Object stores have no link(); check, write, then re-check that nobody else won the race.
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


def read_artifact(path: str, *, within: str | None = None) -> bytes:
    """The bytes at `path`. With `within` (a folder such as `jobs/<job_id>`), the one confinement every
    reader of a job's or run's files goes through: a path outside that folder, directly or through a
    symlink anywhere on the way, is ArtifactNotFound, as if the file were not there."""
    check_path(path)
    if within is not None and not path.startswith(check_path(within) + "/"):
        raise ArtifactNotFound(f"artifact {path} is outside {within}")
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        target = _local_path(storage, path, within)
        if not target.is_file():
            raise ArtifactNotFound(f"artifact {path} does not exist")
        return target.read_bytes()
    if not storage.exists(path):
        raise ArtifactNotFound(f"artifact {path} does not exist")
    with storage.open(path, "rb") as handle:
        return handle.read()


def read_json_artifact(path: str):
    return json.loads(read_artifact(path))


def list_artifacts(prefix: str) -> list[str]:
    """Every file under the folder `prefix`, as sorted storage paths (temporary files excluded)."""
    check_path(prefix)
    storage = artifact_storage()
    found = []

    def walk(folder: str) -> None:
        try:
            dirs, files = storage.listdir(folder)
        except FileNotFoundError:
            return
        found.extend(f"{folder}/{name}" for name in files if not name.startswith(".tmp-"))
        for name in dirs:
            walk(f"{folder}/{name}")

    walk(prefix)
    return sorted(found)
