"""Reads of jobs, runs, the registry, snapshots and policies, shaped as the API and the pages show them.

Every function runs a fixed number of queries whatever the number of jobs or events (no N+1), and checks
ids against the allowlists before any lookup. Nothing here writes.
"""
import base64
import binascii
import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from contracts import sha256_hex
from research.artifacts import check_path, list_artifacts, read_artifact
from research.errors import ArtifactNotFound
from research.models import DataSnapshot, RegistryEntry
from research.policies import list_policy_bundles

from . import services
from .errors import InvalidInput, NotFound
from contracts import CONTENT_ID
from .models import JobEvent, JobSpec, JobState
from .pipelines import RESULT_EVENTS, EventType
from .roles import APPROVE, OPERATE, held_by

ARTIFACT_EVENTS = tuple(str(e) for e in (*RESULT_EVENTS, EventType.RERUN_COMPLETED))
RUN_ID_EVENTS = (str(EventType.RUNSPEC_COMPILED), str(EventType.RUN_COMPLETED))


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated list; `next_cursor` is None on the last page."""

    results: list[dict]
    next_cursor: str | None


@dataclass(frozen=True)
class JobFilters:
    status: str | None = None
    kind: str | None = None
    waiting_step: str | None = None
    root_job_id: str | None = None
    snapshot_id: str | None = None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


# -- cursors: opaque to clients, a JSON list of the sort key of the last row seen ----------------------------

def encode_cursor(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list:
    invalid = InvalidInput("invalid cursor: pass back a next_cursor this API returned", code="invalid_cursor",
                           errors=[{"path": "/cursor", "message": "not a cursor of this list"}])
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if not isinstance(key, list) or len(key) != len(shape) or not all(isinstance(k, t) for k, t in zip(key, shape)):
        raise invalid
    return key


def _job_cursor_after(cursor: str) -> Q:
    created, job_id = decode_cursor(cursor, (str, str))
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("invalid cursor", code="invalid_cursor",
                           errors=[{"path": "/cursor", "message": "not a cursor of this list"}]) from None
    return Q(created_at__gt=created_at) | Q(created_at=created_at, job_id__gt=job_id)


# -- jobs ------------------------------------------------------------------------------------------------------

# What every job list shows: name in the answer -> JobState lookup. Lists read these as values, not models:
# building two model instances per row was most of a list's time.
SUMMARY_COLUMNS = {
    "job_id": "job_id", "kind": "kind", "status": "status", "waiting_step": "waiting_step",
    "next_step": "next_step", "attempt": "attempt", "last_seq": "last_seq", "last_event_type": "last_event_type",
    "snapshot_id": "job__snapshot_id", "policy_bundle_id": "job__policy_bundle_id",
    "root_job_id": "job__root_job_id", "parent_job_id": "job__parent_job_id", "generation": "job__generation",
    "submitted_by": "job__submitted_by", "created_at": "created_at", "updated_at": "updated_at",
    "verdict": "verdict",
}


def _summary(row: dict) -> dict:
    """A job's summary from a row of `JobState.objects.values(*SUMMARY_COLUMNS.values())`."""
    summary = {name: row[lookup] for name, lookup in SUMMARY_COLUMNS.items()}
    summary["created_at"], summary["updated_at"] = iso(row["created_at"]), iso(row["updated_at"])
    return summary


def _job_row(job_id: str, columns, **annotations) -> dict:
    """`columns` of one job's JobState row and `annotations`: one query. NotFound for an unknown or malformed id."""
    services.check_job_id(job_id)
    row = JobState.objects.filter(job_id=job_id).annotate(**annotations).values(*columns, *annotations).first()
    if row is None:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    return row


def job_summary(job_id: str) -> dict:
    """One job's summary with its verdict: one query."""
    return _summary(_job_row(job_id, SUMMARY_COLUMNS.values()))


def list_jobs(*, filters: JobFilters, cursor: str | None = None, limit: int = 50, where: Q | None = None) -> Page:
    """Jobs in the order they were created (created_at, job_id), `limit` at a time.

    One query. `where` narrows the list further (the /ui queue: the jobs a reviewer may decide) with the
    same order and cursors, so a page never repeats or skips a job.
    """
    rows = JobState.objects.order_by("created_at", "job_id")
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.waiting_step:
        rows = rows.filter(waiting_step=filters.waiting_step)
    if filters.root_job_id:
        rows = rows.filter(job__root_job_id=filters.root_job_id)
    if filters.snapshot_id:
        rows = rows.filter(job__snapshot_id=filters.snapshot_id)
    if where is not None:
        rows = rows.filter(where)
    if cursor:
        rows = rows.filter(_job_cursor_after(cursor))
    return _page(list(rows.values(*SUMMARY_COLUMNS.values())[: limit + 1]), limit)


def _page(found: list[dict], limit: int) -> Page:
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = encode_cursor([iso(page[-1]["created_at"]), page[-1]["job_id"]])
    return Page(results=[_summary(row) for row in page], next_cursor=next_cursor)


def get_job_state(job_id: str) -> JobState:
    """The job's projection with its spec (one query); NotFound for an unknown or malformed id."""
    services.check_job_id(job_id)
    try:
        return JobState.objects.select_related("job").get(job_id=job_id)
    except JobState.DoesNotExist:
        raise NotFound(f"job {job_id} not found", code="job_not_found") from None


def _recorded_artifacts(job_id: str, up_to_seq: int | None = None) -> tuple[list[dict], str | None, bool]:
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


DETAIL_COLUMNS = (*SUMMARY_COLUMNS.values(), "last_hash", "review_sha256", "error", "lease_owner",
                  "lease_expires_at", "job__spec", "job__spec_sha256")
CAN = ("can_approve", "can_reject", "can_retry", "can_cancel")


@dataclass(frozen=True)
class JobHead:
    """What `GET /jobs/{id}` reads first (one query by primary key): the job's row, what the caller may do,
    and the version of the detail these fix, its ETag."""

    row: dict
    can: dict
    version: str


def job_head(*, job_id: str, user) -> JobHead:
    """The job's row with its verdict and number of children, and what `user` may do now: one query (the
    user's permissions are read in it, `roles.held_by`). NotFound for an unknown or malformed id.

    The detail is fixed by these: the spec is immutable, the events up to `last_seq` are named by the hash
    chain's `last_hash`, the lease changes without an event, and children are insert-only rows, so their
    number names the set.
    """
    children = (
        JobSpec.objects.filter(root_job_id=OuterRef("job__root_job_id"), parent_job_id=OuterRef("job_id"))
        .order_by().values("parent_job_id").annotate(n=Count("*")).values("n")
    )
    row = _job_row(job_id, DETAIL_COLUMNS, children=Coalesce(Subquery(children), 0),
                   may_approve=held_by(user, APPROVE), may_operate=held_by(user, OPERATE))
    can = services.allowed_actions(status=row["status"], submitted_by=row["job__submitted_by"],
                                   policy_bundle_id=row["job__policy_bundle_id"], user=user,
                                   held={APPROVE: row["may_approve"], OPERATE: row["may_operate"]})
    shown = (job_id, row["last_hash"], row["lease_owner"], iso(row["lease_expires_at"]), row["children"],
             tuple(can[name] for name in CAN))
    return JobHead(row=row, can=can, version=sha256_hex(repr(shown).encode())[:32])


def job_detail(*, job_id: str, user, head: JobHead | None = None) -> dict:
    """Spec, derived state, verdict, lineage, recorded artifacts and what `user` may do now: two queries, and
    one more to list the children of a job that has any. `head` is `job_head`'s answer, when read already."""
    head = head or job_head(job_id=job_id, user=user)
    row = head.row
    summary = _summary(row)
    artifacts, run_id, _ = _recorded_artifacts(job_id, up_to_seq=row["last_seq"])
    children = []
    if row["children"]:
        children = list(
            JobSpec.objects.filter(root_job_id=summary["root_job_id"], parent_job_id=job_id)
            .order_by("created_at", "job_id").values_list("job_id", flat=True)
        )
    return {
        **summary,
        "spec": row["job__spec"],
        "spec_sha256": row["job__spec_sha256"],
        "review_sha256": row["review_sha256"],
        "error": row["error"],
        "lease_owner": row["lease_owner"],
        "lease_expires_at": iso(row["lease_expires_at"]),
        "lineage": {
            "root_job_id": summary["root_job_id"],
            "parent_job_id": summary["parent_job_id"],
            "generation": summary["generation"],
            "children": children,
        },
        "run_id": run_id,
        "artifacts": artifacts,
        **head.can,
    }


def event_view(row: JobEvent) -> dict:
    return {
        "seq": row.seq,
        "event_type": row.event_type,
        "step": row.step,
        "actor": row.actor,
        "payload": row.payload,
        "schema_version": row.schema_version,
        "recorded_at": iso(row.recorded_at),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def job_events(*, job_id: str, after_seq: int = 0, limit: int = 500) -> dict:
    """Events with seq > after_seq, oldest first, `limit` at a time: two queries."""
    state = get_job_state(job_id)
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=after_seq).order_by("seq")[:limit])
    return {
        "job_id": job_id,
        "status": state.status,
        "last_seq": state.last_seq,
        "events": [event_view(row) for row in rows],
        "has_more": bool(rows) and rows[-1].seq < state.last_seq,
    }


def job_run(job_id: str) -> tuple[str | None, bool]:
    """(run id, whether the job's run completed) of an existing job."""
    _, run_id, ran = _recorded_artifacts(job_id)
    return run_id, ran


# -- research records --------------------------------------------------------------------------------------

def registry_view(entry: RegistryEntry) -> dict:
    return {
        "id": entry.id,
        "run_id": entry.run_id,
        "job_id": entry.job_id,
        "root_job_id": entry.root_job_id,
        "family": entry.family,
        "params_sha256": entry.params_sha256,
        "snapshot_id": entry.snapshot_id,
        "policy_bundle_id": entry.policy_bundle_id,
        "verdict": entry.verdict,
        "metrics": entry.metrics,
        "created_at": iso(entry.created_at),
    }


def list_registry(
    *, root_job_id: str | None = None, family: str | None = None, job_id: str | None = None,
    run_id: str | None = None, cursor: str | None = None, limit: int = 50,
) -> Page:
    """Trials in the order they were recorded, `limit` at a time: one query per page."""
    rows = RegistryEntry.objects.order_by("id")
    for name, value in (("root_job_id", root_job_id), ("family", family), ("job_id", job_id), ("run_id", run_id)):
        if value:
            rows = rows.filter(**{name: value})
    if cursor:
        (after,) = decode_cursor(cursor, (int,))
        rows = rows.filter(id__gt=after)
    found = list(rows[: limit + 1])
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(results=[registry_view(entry) for entry in page], next_cursor=next_cursor)


def run_trials(run_id: str) -> list[dict]:
    """The registry's record of every job that evaluated this run: one query."""
    return [
        {"job_id": e.job_id, "verdict": e.verdict, "created_at": iso(e.created_at)}
        for e in RegistryEntry.objects.filter(run_id=run_id).order_by("id")
    ]


def list_snapshots() -> list[dict]:
    return [
        {
            "snapshot_id": s.snapshot_id,
            "sha256": s.sha256,
            "symbols": s.symbols,
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "bars": s.bars,
            "rows": s.rows,
            "bytes": s.bytes,
            "source": s.source,
            "created_at": iso(s.created_at),
            "is_default": s.snapshot_id == settings.EAM_DEFAULT_SNAPSHOT_ID,
        }
        for s in DataSnapshot.objects.order_by("snapshot_id")
    ]


def list_policies() -> list[dict]:
    default = settings.EAM_DEFAULT_POLICY_BUNDLE_ID
    return [{**bundle, "is_default": bundle["policy_bundle_id"] == default} for bundle in list_policy_bundles()]


# -- artifacts and dossiers (files in STORAGES["artifacts"]) -----------------------------------------------

DOSSIER_ALIAS = "dossier"  # a job's artifact paths under this name are its run's dossier
CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}
HIDDEN_PARTS = ("curve.csv", "trades.csv")
# Columns of the dossier's CSV files that hold text or counts; every other cell is a float.
TEXT_COLUMNS = frozenset({"date", "symbol", "entry_date", "exit_date"})
INT_COLUMNS = frozenset({"bars"})


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


def _artifact_missing(path: str) -> NotFound:
    return NotFound(f"no artifact {path}", code="artifact_not_found")


def _read_confined(storage_path: str, folder: str, shown_as: str) -> bytes:
    """The file's bytes if it lies in `folder` (symlinks included: research.artifacts confines); else 404."""
    try:
        return read_artifact(storage_path, within=folder)
    except ArtifactNotFound:
        raise _artifact_missing(shown_as) from None


def _folders(job_id: str) -> list[tuple[str, str]]:
    """(alias prefix, storage folder) pairs a job's artifact paths map to: its own, then its dossier."""
    folders = [("", f"jobs/{job_id}")]
    run_id, ran = job_run(job_id)
    if run_id and ran:
        folders.append((f"{DOSSIER_ALIAS}/", f"dossiers/{run_id}"))
    return folders


def job_artifacts(*, job_id: str) -> dict:
    """Every file under `jobs/<job_id>/`, and the dossier once the job's run completed, with sha256 and size."""
    get_job_state(job_id)
    listed = []
    for alias, folder in _folders(job_id):
        for storage_path in list_artifacts(folder):
            path = alias + storage_path[len(folder) + 1:]
            if any(part.startswith(".") for part in path.split("/")):
                continue
            try:
                data = read_artifact(storage_path, within=folder)
            except ArtifactNotFound:
                continue  # a symlink out of the folder: not this job's file
            listed.append(ArtifactFile(path, storage_path, data).describe())
    return {"job_id": job_id, "artifacts": listed}


def job_artifact(*, job_id: str, path: str) -> ArtifactFile:
    """One artifact of the job by its path relative to `jobs/<job_id>/` (or `dossier/...`); never outside."""
    get_job_state(job_id)
    check_path(path)  # UnsafePath (400) for `..`, absolute paths, backslashes, NUL, odd characters
    if any(part.startswith(".") for part in path.split("/")):
        raise _artifact_missing(path)
    for alias, folder in reversed(_folders(job_id)):
        if alias and not path.startswith(alias):
            continue
        storage_path = f"{folder}/{path[len(alias):]}"
        if alias:
            _refuse_holdout_detail(folder.split("/", 1)[1], path[len(alias):])
        return ArtifactFile(path, storage_path, _read_confined(storage_path, folder, path))
    raise _artifact_missing(path)  # pragma: no cover - the job's own folder matches every path


def _refuse_holdout_detail(run_id: str, inner: str) -> None:
    parts = inner.split("/")
    if len(parts) == 3 and parts[0] == "segments" and parts[2] in HIDDEN_PARTS:
        roles = {s["segment_id"]: s["role"] for s in _dossier_json(run_id, "dossier.json")["segments"]}
        if roles.get(parts[1]) == "holdout":
            raise NotFound("the holdout shows metrics only: no curve, no trades", code="holdout_hidden")


def _check_run_id(run_id) -> str:
    if not isinstance(run_id, str) or not CONTENT_ID.fullmatch(run_id):
        raise NotFound("no such run: a run id is 12 lowercase hex characters", code="invalid_run_id")
    return run_id


def _dossier_json(run_id: str, name: str):
    folder = f"dossiers/{run_id}"
    try:
        return json.loads(_read_confined(f"{folder}/{name}", folder, name))
    except NotFound:
        raise NotFound(f"run {run_id} not found", code="run_not_found") from None


def run_detail(*, run_id: str) -> dict:
    """The run's index, stitched out-of-sample metrics and per-segment headline metrics (holdout included:
    metrics only), with the jobs that evaluated it."""
    _check_run_id(run_id)
    index = _dossier_json(run_id, "dossier.json")
    metrics = _dossier_json(run_id, "metrics.json")
    summary = _dossier_json(run_id, "segments_summary.json")
    segments = [{**row, "has_curve": row.get("role") == "test"} for row in summary.get("segments", [])]
    return {
        "run_id": run_id,
        "kernel_version": index.get("kernel_version"),
        "snapshot_id": index.get("snapshot_id"),
        "snapshot_sha256": index.get("snapshot_sha256"),
        "policy_bundle_id": index.get("policy_bundle_id"),
        "policy_bundle_sha256": index.get("policy_bundle_sha256"),
        "holdout_visibility": index.get("holdout_visibility", "metrics_only"),
        "metrics": {k: v for k, v in metrics.items() if k != "run_id"},
        "segments": segments,
        "test_segments": summary.get("test_segments"),
        "positive_share": summary.get("positive_share"),
        "trials": run_trials(run_id),
    }


def _csv_table(data: bytes) -> dict:
    lines = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not lines:
        return {"columns": [], "rows": []}
    columns, body = lines[0], lines[1:]
    kinds = ["text" if name in TEXT_COLUMNS else "int" if name in INT_COLUMNS else "float" for name in columns]
    return {"columns": columns, "rows": [[_cell(v, kind) for v, kind in zip(row, kinds)] for row in body]}


def _cell(value: str, kind: str):
    if value == "" or kind == "text":
        return value or None
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return None
    return int(number) if kind == "int" else number


def run_segment(*, run_id: str, segment_id: str, part: str = "all") -> dict:
    """One segment's metrics and, for test segments, its equity curve and trades. A holdout segment shows
    its metrics only: asking for its curve or trades is NotFound `holdout_hidden`."""
    _check_run_id(run_id)
    roles = {s["segment_id"]: s["role"] for s in _dossier_json(run_id, "dossier.json")["segments"]}
    if segment_id not in roles:
        raise NotFound(f"run {run_id} has no segment {segment_id}", code="segment_not_found")
    role = roles[segment_id]
    if role == "holdout" and part in ("curve", "trades"):
        raise NotFound("the holdout shows metrics only: no curve, no trades", code="holdout_hidden")
    folder = f"dossiers/{run_id}"
    base = f"{folder}/segments/{segment_id}"
    view = {"run_id": run_id, "segment_id": segment_id, "role": role}
    if part in ("all", "metrics"):
        view["metrics"] = json.loads(_read_confined(f"{base}/metrics.json", folder, "metrics.json"))
    if role == "test":
        for name in ("curve", "trades"):
            if part in ("all", name):
                view[name] = _csv_table(_read_confined(f"{base}/{name}.csv", folder, f"{name}.csv"))
    return view
