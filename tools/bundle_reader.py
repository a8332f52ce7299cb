"""Reading an audit bundle for the stand-alone verifier: a job's folder, a folder of them, or a .tar.gz, as
{relative path: bytes}, refusing anything but plain files at plain relative paths. Standard library only."""
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tools import bundle_format as fmt


@dataclass(frozen=True)
class Finding:
    """Something wrong with a bundle: the file at fault (relative to the job's folder) and, for events, the seq."""

    file: str
    problem: str
    seq: int | None = None

    def __str__(self):
        return f"{self.file}" + (f" seq {self.seq}" if self.seq is not None else "") + f": {self.problem}"


def _plain_path(name: str) -> str | None:
    """Why `name` is not a plain relative path inside the bundle, or None."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or PurePosixPath(name).is_absolute():
        return "an absolute or malformed path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "a path with an empty, '.' or '..' component"
    return None


def read_folder(folder: Path) -> tuple[dict[str, bytes], list[Finding]]:
    """The files under `folder` by relative path; a symlink or any other non-regular file is a finding."""
    files, findings = {}, []
    for current, dirs, names in os.walk(folder, followlinks=False):
        for name in sorted(dirs + names):
            full = Path(current, name)
            rel = full.relative_to(folder).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                findings.append(Finding(rel, "is a symbolic link (a bundle holds plain files only)"))
                if name in dirs:
                    dirs.remove(name)
            elif stat.S_ISREG(mode):
                files[rel] = full.read_bytes()
            elif not stat.S_ISDIR(mode):
                findings.append(Finding(rel, "is not a regular file"))
    return files, findings


def read_archive(path: Path) -> dict[str, tuple[dict[str, bytes], list[Finding]]]:
    """Each job folder of a .tar.gz: {folder name: (files, findings)}. Nothing is extracted to disk."""
    jobs: dict[str, tuple[dict, list]] = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.rstrip("/")
            top, _, rel = name.partition("/")
            files, findings = jobs.setdefault(top, ({}, []))
            problem = _plain_path(name)
            if problem:
                findings.append(Finding(name, f"archive member with {problem}"))
            elif member.issym() or member.islnk():
                findings.append(Finding(rel or name, "is a link (a bundle holds plain files only)"))
            elif member.isfile() and rel:
                files[rel] = archive.extractfile(member).read()
            elif not member.isdir():
                findings.append(Finding(rel or name, "is not a regular file"))
    return jobs


def read_bundles(path: Path) -> dict[str, tuple[dict[str, bytes], list[Finding]]]:
    if path.is_file():
        return read_archive(path)
    if (path / fmt.JOB_SPEC).exists() or (path / fmt.EVENTS).exists():
        return {path.name: read_folder(path)}
    return {child.name: read_folder(child) for child in sorted(path.iterdir())
            if child.is_dir() and not child.is_symlink()}
