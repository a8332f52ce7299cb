"""Audit bundles: a job exported to the original file layout (docs/audit.md), deterministic to the byte.

`bundle_files(job_id)` reads the job's spec, events, projection, artifacts, covering anchor and public keys and
returns the bundle as {relative path: bytes}; `write_bundle` puts it under a root folder, `archive_bytes` makes
the same files a reproducible .tar.gz. Nothing here writes to the database or to artifact storage. The format
itself (file names, byte forms, the Merkle proof) is in tools/bundle_format.py, shared with the stand-alone
verifier.
"""
import gzip
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from research.artifacts import list_artifacts, read_artifact
from research.errors import ArtifactNotFound
from tools import bundle_format as fmt

from .anchors import ANCHOR_DIR
from .errors import InvalidInput, NotFound
from .events import document_of
from .state import state_from_row
from .models import JobEvent, JobSpec, JobState
from .services import check_job_id
from .signing import keyring, public_bytes

# Bundle files kept beside a job's artifacts when the export root is the artifact storage's `jobs/` folder: the
# export reads the job's folder without them, so that exporting twice gives the same bundle.
BUNDLE_ONLY = (*fmt.TOP_FILES, "inputs/", f"{fmt.DOSSIER}/")


def written_by_export(relative: str) -> bool:
    """Whether a file in a job's folder (path relative to it) is one an export writes and no event records: the
    bundle's own files and its copy of the dossier. Their check is verify_bundle's, not the reconciler's."""
    return relative in (fmt.EVENTS, fmt.STATE, fmt.KEYS, fmt.ANCHOR, fmt.OUTPUTS_INDEX) or \
        relative.startswith(f"{fmt.DOSSIER}/")


def bundle_files(job_id: str, *, since_seq: int = 0) -> dict[str, bytes]:
    """The bundle of job `job_id` as {path relative to its folder: bytes}; `since_seq`: only the events after it
    (an incremental tail) and the artifacts they record."""
    check_job_id(job_id)
    job = JobSpec.objects.filter(job_id=job_id).first()
    state_row = JobState.objects.filter(job_id=job_id).first()
    if job is None or state_row is None:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    if not isinstance(since_seq, int) or not 0 <= since_seq < state_row.last_seq:
        raise InvalidInput(f"--since-seq must be between 0 and {state_row.last_seq - 1}", code="invalid_since_seq")
    # The projection first: events are insert-only, so the ones up to its last seq are exactly what it reflects.
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=max(since_seq - 1, 0), seq__lte=state_row.last_seq)
                .order_by("seq"))
    before = rows.pop(0) if since_seq else None
    lines = [json.loads(fmt.event_line(document_of(r), r.hash, r.key_id, r.signature)) for r in rows]
    files = {fmt.JOB_SPEC: fmt.json_bytes(job.spec)}
    member, inputs_path = fmt.INPUTS[job.kind]
    files[inputs_path] = fmt.json_bytes(job.spec[member])
    files[fmt.EVENTS] = b"".join(fmt.canonical_json(line) + b"\n" for line in lines)
    files.update(_artifacts(job_id, lines, whole=not since_seq))
    anchor_doc, anchor_key = _anchor(job_id)
    files[fmt.ANCHOR] = fmt.json_bytes(anchor_doc)
    files[fmt.KEYS] = fmt.json_bytes(_keys(({line["key_id"] for line in lines} | {anchor_key}) - {None}))
    files[fmt.STATE] = fmt.json_bytes({
        "bundle_schema": fmt.BUNDLE_SCHEMA, "job_id": job_id, "kind": job.kind,
        "events": {"from_seq": since_seq + 1, "to_seq": state_row.last_seq,
                   "prev_hash": before.hash if before else fmt.ZERO_HASH, "last_hash": state_row.last_hash},
        "state": fmt.state_document(state_from_row(state_row)),
    })
    return dict(sorted(files.items()))


def _artifacts(job_id: str, lines: list[dict], *, whole: bool) -> dict[str, bytes]:
    """The artifacts the events record (and, for a whole bundle, every other file of the job's folder and of its
    run's dossier), with outputs/outputs.json, their index."""
    run_id, recorded, external = fmt.recorded_artifacts(job_id, lines)
    files, unrecorded = {}, {}
    for path, entry in recorded.items():
        try:
            files[path] = read_artifact(entry["storage_path"])
        except ArtifactNotFound:
            continue  # the verifier reports it missing, naming the event that recorded it
    folders = [(f"jobs/{job_id}", "")] + ([(f"dossiers/{run_id}", f"{fmt.DOSSIER}/")] if run_id else [])
    for folder, alias in folders if whole else []:
        for storage_path in list_artifacts(folder):
            path = alias + storage_path[len(folder) + 1:]
            if path in recorded or any(p.startswith(".") for p in path.split("/")) or \
                    (not alias and path.startswith(BUNDLE_ONLY)):
                continue
            try:
                files[path] = read_artifact(storage_path, within=folder)
            except ArtifactNotFound:
                continue  # a symlink out of the folder: not this job's file
            unrecorded[path] = files[path]
    files[fmt.OUTPUTS_INDEX] = fmt.outputs_index(job_id, run_id, recorded, unrecorded, external)
    return files


def _anchor(job_id: str) -> tuple[dict, str | None]:
    """anchor.json: the latest anchor that lists the job, with the Merkle proof of its head; or a statement that
    none does. (document, the anchor's key id)."""
    for path in reversed([p for p in list_artifacts(ANCHOR_DIR) if p.endswith(".json")]):
        data = read_artifact(path)
        doc = json.loads(data)
        heads = doc.get("heads") or []
        index = next((i for i, head in enumerate(heads) if head[0] == job_id), None)
        if index is None:
            continue
        leaves = [fmt.leaf_hash(*head) for head in heads]
        return {
            "bundle_schema": fmt.BUNDLE_SCHEMA, "covered": True, "path": path, "sha256": fmt.sha256_hex(data),
            "anchor": doc,
            "proof": {"head": heads[index], "index": index, "size": len(heads),
                      "path": [node.hex() for node in fmt.audit_path(leaves, index)]},
        }, doc.get("key_id")
    return {"bundle_schema": fmt.BUNDLE_SCHEMA, **fmt.NOT_COVERED}, None


def _keys(key_ids: set[str]) -> dict:
    """keys.json: the public half of each key that signed, by id. Never a private key."""
    public = keyring(signing=False).public
    return {"bundle_schema": fmt.BUNDLE_SCHEMA, "keys": {
        key_id: {"algorithm": "Ed25519", "public_key": public_bytes(public[key_id]).hex()}
        for key_id in sorted(key_ids) if key_id in public}}


def write_bundle(root: Path, job_id: str, files: dict[str, bytes]) -> Path:
    """Write `files` under `root/<job_id>/`, each file replaced in one step; a file already holding the same
    bytes is left as it is (the export root may be the artifact storage's jobs folder)."""
    folder = Path(root, job_id)
    for path, data in files.items():
        target = folder / path
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, fmt.ARCHIVE_MODE)
        os.replace(temporary, target)
    return folder


def archive_bytes(bundles: dict[str, dict[str, bytes]]) -> bytes:
    """A .tar.gz of the bundles ({job_id: files}): members sorted, fixed times, owners and modes, gzip time 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folders = set()
        members = sorted(f"{job_id}/{path}" for job_id, files in bundles.items() for path in files)
        for name in members:
            parts = name.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    archive.addfile(_member(folder, tarfile.DIRTYPE, 0, fmt.ARCHIVE_DIR_MODE))
            job_id, _, path = name.partition("/")
            data = bundles[job_id][path]
            archive.addfile(_member(name, tarfile.REGTYPE, len(data), fmt.ARCHIVE_MODE), io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _member(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, fmt.ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
