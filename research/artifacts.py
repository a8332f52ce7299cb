"""Write-once artifacts in `STORAGES["artifacts"]`: atomic writes, deterministic JSON, confined reads.

Paths are relative to the storage root and use `/`. Writing the same bytes to an existing path is a no-op;
different bytes raise ArtifactConflict, so a step that runs twice (crash, retry, two workers) is harmless.
"""
import json
import os
import re
import tempfile
from dataclasses import dataclass
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


def _local_path(storage, path: str) -> Path:
    """The resolved file system path of `path`, refused if it (or a symlink on the way) leaves the root."""
    root = Path(storage.location).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise UnsafePath(f"artifact path {path!r} resolves outside the artifact root")
    return target


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
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, storage.file_permissions_mode or 0o644)
        try:
            # link() never replaces: of two writers racing for the same path exactly one creates it.
            os.link(tmp, target)
        except FileExistsError:
            _compare(path, target.read_bytes(), data)
    finally:
        os.unlink(tmp)


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


def read_artifact(path: str) -> bytes:
    check_path(path)
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        target = _local_path(storage, path)
        if not target.is_file():
            raise ArtifactNotFound(f"artifact {path} does not exist")
        return target.read_bytes()
    if not storage.exists(path):
        raise ArtifactNotFound(f"artifact {path} does not exist")
    with storage.open(path, "rb") as handle:
        return handle.read()


def read_json_artifact(path: str):
    return json.loads(read_artifact(path))


def artifact_sha256(path: str) -> str:
    return sha256_hex(read_artifact(path))


def artifact_exists(path: str) -> bool:
    check_path(path)
    storage = artifact_storage()
    if isinstance(storage, FileSystemStorage):
        return _local_path(storage, path).is_file()
    return storage.exists(path)


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
