"""Reads of jobs (lists, summaries, a job's detail and events, what a user may do) and of the reference lists
beside them (the registry, snapshots, policies), shaped as the API and the pages show them.

Every function runs a fixed number of queries whatever the number of jobs or events (no N+1), and checks
ids against the allowlists before any lookup. Nothing here writes. A job's files are read in jobs.artifacts,
a run's dossier in research.runs.
"""
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce
from django.db.models.lookups import IContains

from contracts import iso, sha256_hex
from research.models import DataSnapshot, RegistryEntry
from research.policies import list_policy_bundles

from . import approvals, services
from .artifacts import recorded_artifacts
from .errors import InvalidInput, NotFound
from .events import PROVENANCE
from .models import JobEvent, JobSpec, JobState
from .pipelines import EventType, agent_steps
from .roles import APPROVE, OPERATE, OVERRIDE, RERUN, held_by
from .state import DerivedState, missing_approvals, review_fields


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
    parent_job_id: str | None = None
    snapshot_id: str | None = None


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


def _job_cursor_after(cursor: str, order: "JobOrder") -> Q:
    moment, job_id = decode_cursor(cursor, (str, str))
    try:
        at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("invalid cursor", code="invalid_cursor",
                           errors=[{"path": "/cursor", "message": "not a cursor of this list"}]) from None
    after = "lt" if order.descending else "gt"
    return Q(**{f"{order.key}__{after}": at}) | Q(**{order.key: at, f"job_id__{after}": job_id})


# -- what a job is called and searched by, read inside the database (lists never load specs) ----------------

def _spec_text(spec: str, *keys: str) -> KeyTextTransform:
    """The text at `keys` inside the JSON field `spec` (a lookup such as "job__spec"); NULL where absent."""
    *path, last = keys
    expression = spec
    for key in path:
        expression = KeyTransform(key, expression)
    return KeyTextTransform(last, expression)


def job_title(spec: str = "job__spec") -> Coalesce:
    """A job's title: its blueprint's `name` or its idea's `title` (NULL for a blueprint without a name)."""
    return Coalesce(_spec_text(spec, "blueprint", "name"), _spec_text(spec, "idea", "title"))


def job_family(spec: str = "job__spec") -> Coalesce:
    """A job's strategy family: its blueprint's, or its idea's first preferred family (NULL when it names none:
    the family an idea's agents chose is in their artifacts, not in the spec)."""
    return Coalesce(_spec_text(spec, "blueprint", "strategy", "family"),
                    _spec_text(spec, "idea", "preferred_families", "0"))


def matching(text: str) -> Q:
    """Jobs (JobState rows) whose title, submitter or family contains `text`, ignoring case."""
    return (Q(IContains(job_title(), text)) | Q(IContains(F("job__submitted_by"), text))
            | Q(IContains(job_family(), text)))


def _waiting_since() -> Subquery:
    """When the job began to wait at its current checkpoint: its first WAITING_APPROVAL there. Not the latest (a
    rerun of the agent under review announces the checkpoint again) nor `updated_at` (every event moves it)."""
    first = (JobEvent.objects.filter(job_id=OuterRef("job_id"), event_type=EventType.WAITING_APPROVAL,
                                     step=OuterRef("waiting_step"))
             .order_by("seq").values("recorded_at")[:1])
    return Subquery(first)


@dataclass(frozen=True)
class JobOrder:
    """A job list's order: by `key` (`created_at`, or `waiting_since` for lists of waiting jobs), then job_id,
    both ascending or both descending. A cursor holds the last row's (key, job_id)."""

    key: str = "created_at"
    descending: bool = False

    def by(self) -> tuple[str, str]:
        sign = "-" if self.descending else ""
        return f"{sign}{self.key}", f"{sign}job_id"


OLDEST_FIRST = JobOrder()  # the API's order
NEWEST_FIRST = JobOrder(descending=True)
LONGEST_WAITING_FIRST = JobOrder("waiting_since")
ORDER_KEYS = {"waiting_since": _waiting_since}  # keys computed per row; each is also in the row's summary


# -- jobs ------------------------------------------------------------------------------------------------------

# What every job list shows: name in the answer -> JobState lookup. Lists read these as values, not models:
# building two model instances per row was most of a list's time.
SUMMARY_COLUMNS = {
    "job_id": "job_id", "kind": "kind", "status": "status", "waiting_step": "waiting_step",
    "next_step": "next_step", "attempt": "attempt", "last_seq": "last_seq", "last_event_type": "last_event_type",
    "snapshot_id": "job__snapshot_id", "policy_bundle_id": "job__policy_bundle_id",
    "root_job_id": "job__root_job_id", "parent_job_id": "job__parent_job_id", "generation": "job__generation",
    "submitted_by": "job__submitted_by", "created_at": "created_at", "updated_at": "updated_at",
    "verdict": "verdict", "title": "title",
}


def _jobs():
    """JobState rows with their title, as every read of a job's summary needs them."""
    return JobState.objects.annotate(title=job_title())


def _summary(row: dict) -> dict:
    """A job's summary from a row of `_jobs().values(*SUMMARY_COLUMNS.values())`."""
    summary = {name: row[lookup] for name, lookup in SUMMARY_COLUMNS.items()}
    summary["created_at"], summary["updated_at"] = iso(row["created_at"]), iso(row["updated_at"])
    return summary


def _job_row(job_id: str, columns, **annotations) -> dict:
    """`columns` of one job's JobState row and `annotations`: one query. NotFound for an unknown or malformed id."""
    services.check_job_id(job_id)
    row = _jobs().filter(job_id=job_id).annotate(**annotations).values(*columns, *annotations).first()
    if row is None:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    return row


def job_summary(job_id: str) -> dict:
    """One job's summary with its verdict: one query."""
    return _summary(_job_row(job_id, SUMMARY_COLUMNS.values()))


def list_jobs(*, filters: JobFilters, cursor: str | None = None, limit: int = 50, where: Q | None = None,
              order: JobOrder = OLDEST_FIRST) -> Page:
    """Jobs in `order` (by default as they were created: created_at, job_id), `limit` at a time.

    One query. `where` narrows the list further (the /ui queue: the jobs a reviewer may decide; a search) with
    the same order and cursors, so a page never repeats or skips a job.
    """
    computed = {order.key: ORDER_KEYS[order.key]()} if order.key in ORDER_KEYS else {}
    rows = _jobs().annotate(**computed).order_by(*order.by())
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.waiting_step:
        rows = rows.filter(waiting_step=filters.waiting_step)
    if filters.root_job_id:
        rows = rows.filter(job__root_job_id=filters.root_job_id)
    if filters.parent_job_id:
        rows = rows.filter(job__parent_job_id=filters.parent_job_id)
    if filters.snapshot_id:
        rows = rows.filter(job__snapshot_id=filters.snapshot_id)
    if where is not None:
        rows = rows.filter(where)
    if cursor:
        rows = rows.filter(_job_cursor_after(cursor, order))
    found = list(rows.values(*SUMMARY_COLUMNS.values(), *computed)[: limit + 1])
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        next_cursor = encode_cursor([iso(page[-1][order.key]), page[-1]["job_id"]])
    return Page(results=[{**_summary(row), **{key: iso(row[key]) for key in computed}} for row in page],
                next_cursor=next_cursor)


# PostgreSQL hands out event ids before commit, so a row can become visible after one with a higher id. A reader
# of the global event log in id order (the all-jobs stream, the notification planner) stops at such a gap until it
# fills, or until the row after it is older than this: then the id was rolled back (a refused insert) and will
# never appear.
GAP_GRACE = timedelta(seconds=5)


def safe_horizon(recent: list[tuple[int, datetime]], after: int) -> tuple[int, bool]:
    """The highest id that no id still invisible can come before, and whether a gap holds it back."""
    horizon, now = after, datetime.now(timezone.utc)
    for pk, recorded_at in recent:
        if pk != horizon + 1 and now - recorded_at < GAP_GRACE:
            return horizon, True
        horizon = pk
    return horizon, False


def event_horizon(after: int, *, limit: int) -> tuple[int, bool, int]:
    """Read the next `limit` event ids after global id `after`: (the safe horizon among them, whether a gap holds
    it back, how many were read). One query."""
    recent = list(JobEvent.objects.filter(id__gt=after).order_by("id").values_list("id", "recorded_at")[:limit])
    return (*safe_horizon(recent, after), len(recent))


DETAIL_COLUMNS = (*SUMMARY_COLUMNS.values(), "last_hash", "review_sha256", "error", "lease_owner",
                  "lease_expires_at", "job__spec", "job__spec_sha256", "reruns", "review")
CAN = ("can_approve", "can_reject", "can_retry", "can_cancel", "can_rerun", "can_override")


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
    # Imported from a file-based job store (jobs.jobstore_import): its submit event carries the original's provenance.
    imported = Exists(JobEvent.objects.filter(job_id=OuterRef("job_id"), seq=1, payload__has_key=PROVENANCE))
    row = _job_row(job_id, DETAIL_COLUMNS, children=Coalesce(Subquery(children), 0), imported=imported,
                   may_approve=held_by(user, APPROVE), may_operate=held_by(user, OPERATE),
                   may_rerun=held_by(user, RERUN), may_override=held_by(user, OVERRIDE))
    can = services.allowed_actions(status=row["status"], submitted_by=row["job__submitted_by"],
                                   policy_bundle_id=row["job__policy_bundle_id"], user=user,
                                   held={APPROVE: row["may_approve"], OPERATE: row["may_operate"],
                                         RERUN: row["may_rerun"], OVERRIDE: row["may_override"]})
    if row["review"] and can["can_approve"]:  # under an approval rule, only who may still count may approve
        state, submitter = _open_checkpoint(row), row["job__submitted_by"]
        can = {**can, "can_approve": approvals.may_decide(state, user=user, submitter=submitter),
               "can_reject": approvals.may_reject(state, user=user, submitter=submitter)}
    shown = (job_id, row["last_hash"], row["lease_owner"], iso(row["lease_expires_at"]), row["children"],
             tuple(can[name] for name in CAN))
    return JobHead(row=row, can=can, version=sha256_hex(repr(shown).encode())[:32])


def _open_checkpoint(row: dict) -> DerivedState:
    """What the approval rules need of a job's state, from its row (`review` and the waiting columns)."""
    return DerivedState(kind=row["kind"], status=row["status"], waiting_step=row["waiting_step"],
                        **review_fields(row["review"]))


def approval_progress(row: dict) -> dict | None:
    """The open checkpoint's rule and how far it is: approvals so far, what is missing, the escalation; None when
    the job waits at no checkpoint with a rule."""
    state = _open_checkpoint(row)
    if state.rule is None:
        return None
    return {"checkpoint": state.waiting_step, "rule": state.rule, "approvals": list(state.approvals),
            "missing": missing_approvals(state), "escalated_to": state.escalated_to}


def job_detail(*, job_id: str, user, head: JobHead | None = None) -> dict:
    """Spec, derived state, verdict, lineage, recorded artifacts and what `user` may do now: two queries, and
    one more to list the children of a job that has any. `head` is `job_head`'s answer, when read already."""
    head = head or job_head(job_id=job_id, user=user)
    row = head.row
    summary = _summary(row)
    artifacts, run_id, _ = recorded_artifacts(job_id, up_to_seq=row["last_seq"])
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
        "imported": row["imported"],
        "artifacts": artifacts,
        # Agents whose output may be asked for again (they ran), in pipeline order, and the reruns pending.
        "rerun_agents": [a for a in agent_steps(summary["kind"]) if any(
            ref["step"] == a and ref["event_type"] != EventType.RERUN_COMPLETED for ref in artifacts)],
        "reruns": list(row["reruns"] or []),
        "approval": approval_progress(row),
        **head.can,
    }


def job_lineage(*, job_id: str) -> dict:
    """The whole tree of `job_id`'s root: every job of it in (generation, created_at, job_id) order, each with its
    title (the blueprint's `name` or the idea's `title`), status, verdict, generation, parent and children (ids in
    creation order). Two queries whatever the tree's size: the asked job's root, then the tree's rows with the
    title read inside the database. NotFound for an unknown or malformed id. The reads are those of a job's
    detail: whoever may read one job may read its tree."""
    services.check_job_id(job_id)
    root_job_id = JobSpec.objects.filter(job_id=job_id).values_list("root_job_id", flat=True).first()
    if root_job_id is None:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    rows = (
        JobSpec.objects.filter(root_job_id=root_job_id)
        .annotate(title=job_title("spec"))
        .order_by("generation", "created_at", "job_id")
        .values("job_id", "title", "state__status", "state__verdict", "generation", "parent_job_id")
    )
    jobs = [
        {"job_id": row["job_id"], "title": row["title"], "status": row["state__status"],
         "verdict": row["state__verdict"], "generation": row["generation"], "parent_job_id": row["parent_job_id"],
         "children": []}
        for row in rows
    ]
    by_id = {job["job_id"]: job for job in jobs}
    for job in jobs:  # a parent's children share a generation, so this order is their order of creation
        parent = by_id.get(job["parent_job_id"]) if job["parent_job_id"] else None
        if parent is not None:
            parent["children"].append(job["job_id"])
    return {"job_id": job_id, "root_job_id": root_job_id, "jobs": jobs}


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
        "key_id": row.key_id,
        "signature": row.signature,
    }


def job_events(*, job_id: str, after_seq: int = 0, limit: int = 500) -> dict:
    """Events with seq > after_seq, oldest first, `limit` at a time: two queries."""
    state = services.get_job(job_id).state
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=after_seq).order_by("seq")[:limit])
    return {
        "job_id": job_id,
        "status": state.status,
        "last_seq": state.last_seq,
        "events": [event_view(row) for row in rows],
        "has_more": bool(rows) and rows[-1].seq < state.last_seq,
    }


# -- reference lists: the registry, snapshots, policies --------------------------------------------------------

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
    rows = RegistryEntry.objects.all()
    for name, value in (("root_job_id", root_job_id), ("family", family), ("job_id", job_id), ("run_id", run_id)):
        if value:
            rows = rows.filter(**{name: value})
    return id_page(rows, view=registry_view, cursor=cursor, limit=limit)


def id_page(rows, *, view, cursor: str | None, limit: int) -> Page:
    """One page of insert-only rows in id order (the order they were written), after `cursor`: one query."""
    rows = rows.order_by("id")
    if cursor:
        (after,) = decode_cursor(cursor, (int,))
        rows = rows.filter(id__gt=after)
    found = list(rows[: limit + 1])
    page = found[:limit]
    next_cursor = encode_cursor([page[-1].id]) if len(found) > limit else None
    return Page(results=[view(row) for row in page], next_cursor=next_cursor)


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
