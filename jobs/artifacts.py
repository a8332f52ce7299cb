"""Reads of a job's files: what its events record, the files with sha256 and size, one file by its path, and
its run's dossier under the `dossier/` alias (where research.runs keeps the holdout rule).

Every read checks the job id before any lookup and stays inside the job's folder or its run's. Nothing here
writes.
"""
from dataclasses import dataclass

from contracts import sha256_hex
from research import runs
from research.artifacts import check_path, list_artifacts, read_artifact
from research.dossier import dossier_root
from research.errors import ArtifactNotFound

from .errors import NotFound
from .services import get_job
from .models import JobEvent
from .pipelines import RESULT_EVENTS, EventType

ARTIFACT_EVENTS = tuple(str(e) for e in (*RESULT_EVENTS, EventType.RERUN_COMPLETED))
RUN_ID_EVENTS = (str(EventType.RUNSPEC_COMPILED), str(EventType.RUN_COMPLETED))
DOSSIER_ALIAS = "dossier"  # a job's artifact paths under this name are its run's dossier
CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    storage_path: str
    data: bytes

    @property
    def content_type(self) -> str:
        name = self.path.rsplit("/", 1)[-1]
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        return CONTENT_TYPES.get(suffix.lower(), "application/octet-stream")

    def describe(self) -> dict:
        return {"path": self.path, "storage_path": self.storage_path, "sha256": sha256_hex(self.data),
                "bytes": len(self.data), "content_type": self.content_type}


def recorded_artifacts(job_id: str, up_to_seq: int | None = None) -> tuple[list[dict], str | None, bool]:
    """(artifacts the job's events record, its run id, whether its run completed): one query.

    `up_to_seq` reads the log as it stood at that event, so that it agrees with a state read before.
    """
    rows = JobEvent.objects.filter(job_id=job_id, event_type__in=ARTIFACT_EVENTS)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    rows = rows.order_by("seq").values_list("seq", "event_type", "step", "payload")
    artifacts, run_id, ran = [], None, False
    for seq, event_type, step, payload in rows:
        for ref in payload.get("artifacts") or []:
            artifacts.append({**ref, "seq": seq, "event_type": event_type, "step": step})
        if event_type in RUN_ID_EVENTS:
            run_id = (payload.get("summary") or {}).get("run_id") or run_id
        ran = ran or event_type == EventType.RUN_COMPLETED
    return artifacts, run_id, ran


def _dossier_run(job_id: str) -> str | None:
    """The run whose dossier the job shows under `dossier/`: its own, once the run completed."""
    _, run_id, ran = recorded_artifacts(job_id)
    return run_id if run_id and ran else None


def _artifact_missing(path: str) -> NotFound:
    return NotFound(f"no artifact {path}", code="artifact_not_found")


def _dot_path(path: str) -> bool:
    """A path with a component that starts with a dot (temporary files among them): never shown."""
    return any(part.startswith(".") for part in path.split("/"))


def job_artifacts(*, job_id: str) -> dict:
    """Every file under `jobs/<job_id>/`, and the dossier once the job's run completed, with sha256 and size."""
    get_job(job_id)  # NotFound for a malformed id or a job that does not exist
    folders = [("", f"jobs/{job_id}")]
    run_id = _dossier_run(job_id)
    if run_id:
        folders.append((f"{DOSSIER_ALIAS}/", dossier_root(run_id)))
    listed = []
    for alias, folder in folders:
        for storage_path in list_artifacts(folder):
            path = alias + storage_path[len(folder) + 1:]
            if _dot_path(path):
                continue
            try:
                data = read_artifact(storage_path, within=folder)
            except ArtifactNotFound:
                continue  # a symlink out of the folder: not this job's file
            listed.append(ArtifactFile(path, storage_path, data).describe())
    return {"job_id": job_id, "artifacts": listed}


def job_artifact(*, job_id: str, path: str) -> ArtifactFile:
    """One artifact of the job by its path relative to `jobs/<job_id>/` (or `dossier/...`); never outside."""
    get_job(job_id)  # NotFound for a malformed id or a job that does not exist
    check_path(path)  # UnsafePath (400) for `..`, absolute paths, backslashes, NUL, odd characters
    if _dot_path(path):
        raise _artifact_missing(path)
    run_id = _dossier_run(job_id)
    try:
        if run_id and path.startswith(f"{DOSSIER_ALIAS}/"):
            inner = path[len(DOSSIER_ALIAS) + 1:]
            return ArtifactFile(path, f"{dossier_root(run_id)}/{inner}", runs.dossier_file(run_id, inner))
        folder = f"jobs/{job_id}"
        return ArtifactFile(path, f"{folder}/{path}", read_artifact(f"{folder}/{path}", within=folder))
    except ArtifactNotFound:
        raise _artifact_missing(path) from None
