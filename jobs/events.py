"""The single write path for job events, and one builder per event type.

Nothing else creates a JobEvent row, and no other module builds an event's payload. An append is one SQL
statement on PostgreSQL: it moves the job's projection row from the expected `seq` and inserts the events,
or does nothing at all. The expected `seq` is the optimistic lock: two writers that race for the same seq
cannot both win; the loser gets `Conflict`, never a duplicate.
"""
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import connection, transaction
from structlog.contextvars import get_contextvars

from contracts import canonical_json, sha256_hex, validate_event

from .errors import Conflict, InvalidInput, NotFound
from .models import JobEvent, JobSpec, JobState
from . import signing
from .pipelines import EVENT_SCHEMA, RERUN_STEP, SUBMIT_EVENTS, EventType, Kind, Status
from .state import (
    DerivedState, IllegalTransition, apply_event, format_time, initial_state, projection_fields, state_from_row,
)

# Idle workers on PostgreSQL LISTEN on this channel; a job that becomes runnable (submitted, approved,
# retried) is announced, and the notice is delivered when the transaction commits, never before.
RUNNABLE_CHANNEL = "eam_job_runnable"
# Every append is announced here with its job id, delivered at commit: it wakes the event streams up.
EVENTS_CHANNEL = "eam_job_events"


@dataclass(frozen=True)
class Actor:
    """Who does something: a user, a worker or the system. Recorded on every event."""

    kind: str
    id: str

    @classmethod
    def user(cls, user) -> "Actor":
        return cls("user", user.get_username() if hasattr(user, "get_username") else str(user))

    @classmethod
    def worker(cls, worker_id: str) -> "Actor":
        return cls("worker", worker_id)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id}

    def __str__(self):
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what happened, in which step, done by whom."""

    event_type: EventType
    actor: Actor
    step: str | None = None
    payload: dict | None = None


@dataclass(frozen=True)
class Lease:
    """Who holds a job's running step, and until when; `Lease()` is no lease."""

    owner: str | None = None
    expires_at: datetime | None = None


# -- builders: one per event type ------------------------------------------------------------------------------

def submitted(kind: Kind, *, actor: Actor, inputs_sha256: str, prompt_pins: dict | None = None,
              approval_rules: dict | None = None) -> NewEvent:
    """`prompt_pins` (idea jobs): the artifact ref {path, sha256, bytes} of the prompt versions pinned at submit.
    `approval_rules`: {checkpoint: rule} of the job's policy bundle (research.policies.approval_rule), fixed at
    submit so that who may decide each checkpoint and by when are read from the events alone."""
    payload = {"submitter": actor.id, "inputs_sha256": inputs_sha256}
    if prompt_pins is not None:
        payload["prompt_pins"] = prompt_pins
    if approval_rules:
        payload["approval_rules"] = approval_rules
    return NewEvent(SUBMIT_EVENTS[kind], actor, payload=payload)


def step_started(*, step: str, worker_id: str, attempt: int, lease_expires_at: datetime,
                 recovered_from: str | None = None, rerun: dict | None = None) -> NewEvent:
    """`rerun`: the pending rerun this claim runs (step `rerun`); its agent and rerun id are recorded."""
    payload = {"attempt": attempt, "worker": worker_id, "lease_expires_at": format_time(lease_expires_at),
               "recovered_from": recovered_from}
    if rerun is not None:
        payload.update(agent_id=rerun["agent_id"], rerun_id=rerun["rerun_id"])
    return NewEvent(EventType.STEP_STARTED, Actor.worker(worker_id), step=step, payload=payload)


def step_completed(result_event: EventType, *, step: str, worker_id: str, artifacts: list[dict],
                   summary: dict) -> NewEvent:
    """A step's result (RUNSPEC_COMPILED, RUN_COMPLETED, …): the artifacts it wrote and a small summary.
    JOB_SPAWNED also names the children at the top of its payload, as its contract asks."""
    payload = {"artifacts": artifacts, "summary": summary}
    if result_event == EventType.JOB_SPAWNED:
        payload["child_job_ids"] = list(summary.get("child_job_ids", []))
    if result_event == EventType.RERUN_COMPLETED:
        payload.update({k: summary[k] for k in RERUN_FACTS})
    return NewEvent(result_event, Actor.worker(worker_id), step=step, payload=payload)


RERUN_FACTS = ("agent_id", "rerun_id", "prompt_version", "output_sha256", "changed")


def rerun_requested(*, actor: Actor, agent_id: str, rerun_id: str, ordinal: int, reason: str,
                    prompt_version: str) -> NewEvent:
    """A reviewer or operator asks for agent `agent_id`'s output again (its `ordinal`-th rerun in this job)."""
    return NewEvent(EventType.RERUN_REQUESTED, actor, step=RERUN_STEP, payload={
        "agent_id": agent_id, "rerun_id": rerun_id, "ordinal": ordinal, "reason": reason,
        "prompt_version": prompt_version, "requester": actor.id,
    })


def waiting_approval(*, checkpoint: str, worker_id: str, artifact_sha256: str | None,
                     artifact_path: str | None) -> NewEvent:
    return NewEvent(EventType.WAITING_APPROVAL, Actor.worker(worker_id), step=checkpoint,
                    payload={"artifact_sha256": artifact_sha256, "artifact_path": artifact_path})


def approved(*, step: str, actor: Actor, comment: str, artifact_sha256: str | None,
             accepted: list[str] | None = None, counts_for: str | None = None,
             via_escalation: bool = False) -> NewEvent:
    """`accepted`: the proposal ids an approval of `improvements` accepts (None at every other checkpoint).
    `counts_for`: under an approval rule, the group whose count this approval fills (`via_escalation`: the reviewer
    is eligible as a member of the group the checkpoint was escalated to)."""
    payload = {"comment": comment or "", "artifact_sha256": artifact_sha256}
    if accepted is not None:
        payload["accepted"] = list(accepted)
    if counts_for is not None:
        payload["counts_for"] = counts_for
        if via_escalation:
            payload["via_escalation"] = True
    return NewEvent(EventType.APPROVED, actor, step=step, payload=payload)


def rejected(*, step: str, actor: Actor, reason: str, timed_out: bool = False) -> NewEvent:
    """`timed_out`: the checkpoint's deadline rejected it (actor `system:deadlines`), no person did."""
    payload = {"reason": reason}
    if timed_out:
        payload["timed_out"] = True
    return NewEvent(EventType.REJECTED, actor, step=step, payload=payload)


def approval_overridden(*, step: str, actor: Actor, reason: str, artifact_sha256: str | None) -> NewEvent:
    """Break-glass: `actor` opens the checkpoint without the approvals its rule asks for; the reason is required."""
    return NewEvent(EventType.APPROVAL_OVERRIDDEN, actor, step=step,
                    payload={"reason": reason, "artifact_sha256": artifact_sha256})


DEADLINES = Actor("system", "deadlines")  # who acts when a checkpoint's deadline passes


def checkpoint_escalated(*, step: str, group: str, due_at: datetime) -> NewEvent:
    """No decision by `due_at`: the checkpoint is escalated to `group` (once), whose reviewers may now decide it."""
    return NewEvent(EventType.CHECKPOINT_ESCALATED, DEADLINES, step=step,
                    payload={"group": group, "due_at": format_time(due_at)})


def checkpoint_reminded(*, step: str, ordinal: int, due_at: datetime) -> NewEvent:
    """No decision by `due_at`: the `ordinal`-th reminder to the checkpoint's reviewers."""
    return NewEvent(EventType.CHECKPOINT_REMINDED, DEADLINES, step=step,
                    payload={"ordinal": ordinal, "due_at": format_time(due_at)})


def step_failed(*, step: str, worker_id: str, error_class: str, message: str, attempt: int,
                retry_at: datetime | None, details: dict | None = None) -> NewEvent:
    """A failed attempt; `retry_at` None: no attempt is left (an ERROR follows, or the rerun ends). `details`: what
    a failed call to a model records (HTTP status, the call's attempts, the URL path)."""
    payload = {"error_class": error_class, "message": message, "attempt": attempt, "retryable": retry_at is not None,
               "retry_at": format_time(retry_at) if retry_at else None}
    if details is not None:
        payload["details"] = details
    return NewEvent(EventType.STEP_FAILED, Actor.worker(worker_id), step=step, payload=payload)


def error(*, step: str | None, actor: Actor, error_class: str, message: str) -> NewEvent:
    return NewEvent(EventType.ERROR, actor, step=step, payload={"error_class": error_class, "message": message})


def retry_requested(*, actor: Actor, reason: str) -> NewEvent:
    return NewEvent(EventType.RETRY_REQUESTED, actor, payload={"reason": reason or "", "operator": actor.id})


def cancelled(*, actor: Actor, reason: str) -> NewEvent:
    return NewEvent(EventType.CANCELLED, actor, payload={"reason": reason or "", "operator": actor.id})


def stopped_budget(*, step: str | None, worker_id: str, reason: str, limit: dict, counters: dict) -> NewEvent:
    """The budget stopped a spawn: which limit (`reason`), its value and the counters the database held."""
    return NewEvent(EventType.STOPPED_BUDGET, Actor.worker(worker_id), step=step,
                    payload={"reason": reason, "limit": limit, "counters": counters})


def spawn_refused(*, actor: Actor, reason: str, limit: dict, counters: dict) -> NewEvent:
    """A manual spawn (`POST /jobs/{id}/spawn`) refused by the budget, recorded on the parent's log after it
    ended: the same evidence as `stopped_budget`, marked `manual`; it does not move the parent's state."""
    return NewEvent(EventType.STOPPED_BUDGET, actor, step=None,
                    payload={"reason": reason, "limit": limit, "counters": counters, "manual": True})


def done(*, worker_id: str) -> NewEvent:
    return NewEvent(EventType.DONE, Actor.worker(worker_id))


IMPORTER = Actor("system", "import_jobstore")
PROVENANCE = "provenance"  # the payload member of an event re-appended from a file-based job store


def reappended(original: dict, *, source: str) -> NewEvent:
    """An event of a file-based job store, appended again by the importer: same type, step and payload, with the
    original's actor, time, seq and hashes kept under `provenance` (`source`: where it was read)."""
    provenance = {"source": source, **{k: original.get(k) for k in (
        "schema_version", "seq", "recorded_at", "actor", "prev_hash", "hash")}}
    return NewEvent(original["event_type"], IMPORTER, step=original.get("step"),
                    payload={**(original.get("payload") or {}), PROVENANCE: provenance})


# -- hashing ---------------------------------------------------------------------------------------------------

def now() -> datetime:
    # Both databases keep microseconds, so what they return hashes the same as what was written.
    return datetime.now(timezone.utc)


def event_document(*, job_id, seq, event_type, step, actor, payload, recorded_at, prev_hash, schema_version):
    """The hashed form of an event: everything but its own hash."""
    return {
        "schema_version": schema_version,
        "job_id": job_id,
        "seq": seq,
        "event_type": event_type,
        "step": step,
        "actor": actor,
        "payload": payload,
        "recorded_at": recorded_at,
        "prev_hash": prev_hash,
    }


def chain_hash(prev_hash: str, document: dict) -> str:
    return sha256_hex(prev_hash.encode() + canonical_json(document))


def document_of(row: JobEvent) -> dict:
    """The hashed document of a stored row, as `verify_events` recomputes it."""
    return event_document(
        job_id=row.job_id, seq=row.seq, event_type=row.event_type, step=row.step, actor=row.actor,
        payload=row.payload, recorded_at=format_time(row.recorded_at), prev_hash=row.prev_hash,
        schema_version=row.schema_version,
    )


TRACE_KEYS = ("request_id", "trace_id")


def _trace() -> dict | None:
    """The request or worker step appending now (bound in the logging context), recorded in each event's payload
    as `trace` so that an event and the log lines of what wrote it can be joined; None outside both."""
    bound = get_contextvars()
    return {key: bound[key] for key in TRACE_KEYS if bound.get(key)} or None


def _build_rows(job_id: str, state: DerivedState, events: list[NewEvent], recorded_at: datetime):
    """The rows of `events` after `state`, validated, chained and folded: (rows, the state they lead to)."""
    rows = []
    trace = _trace()
    stamp = format_time(recorded_at)
    keys = signing.signer or signing.keyring()  # with signing=True there is always a key (the dev one at worst)
    for new in events:
        payload = {**(new.payload or {}), "trace": trace} if trace else new.payload or {}
        doc = event_document(
            job_id=job_id, seq=state.last_seq + 1, event_type=str(new.event_type), step=new.step,
            actor=new.actor.as_dict(), payload=payload, recorded_at=stamp, prev_hash=state.last_hash,
            schema_version=EVENT_SCHEMA,
        )
        errors = validate_event(EVENT_SCHEMA, doc)
        if errors:
            raise InvalidInput(f"{new.event_type} breaks the event contract", code="invalid_event", errors=errors)
        digest = chain_hash(state.last_hash, doc)
        state = fold(state, doc, digest)
        signature = keys.signing_key.sign(signing.EVENT_CONTEXT + digest.encode()).hex()
        rows.append(event_row(doc, recorded_at, digest, keys.signing_id, signature))
    return rows, state


def fold(state: DerivedState, doc: dict, digest: str) -> DerivedState:
    """The state after the event `doc` (hash `digest`); Conflict when it may not follow."""
    try:
        return apply_event(state, {**doc, "hash": digest})
    except IllegalTransition as exc:
        raise Conflict(f"{doc['event_type']} is not allowed now: {exc}", code="illegal_transition") from exc


def event_row(doc: dict, recorded_at: datetime, digest: str, key_id: str, signature: str) -> JobEvent:
    """The row of a checked event (not saved: only the append statements below insert rows)."""
    return JobEvent(job_id=doc["job_id"], seq=doc["seq"], event_type=doc["event_type"], step=doc["step"],
                    actor=doc["actor"], payload=doc["payload"], schema_version=doc["schema_version"],
                    recorded_at=recorded_at, prev_hash=doc["prev_hash"], hash=digest, key_id=key_id,
                    signature=signature)



# -- the statements --------------------------------------------------------------------------------------------
# Written by hand because an append must be one statement: the ORM cannot put an UPDATE and an INSERT in one.
# Values go through the backend's own adapters (`connection.ops.adapt_*`), as the ORM would send them.

EVENT_COLUMNS = ("job_id", "seq", "event_type", "step", "actor", "payload", "schema_version", "recorded_at",
                 "prev_hash", "hash", "key_id", "signature")
# PostgreSQL infers a VALUES list's types from its first row: these casts make the JSON and time columns fit.
EVENT_CASTS = {"actor": "::jsonb", "payload": "::jsonb", "recorded_at": "::timestamptz", "seq": "::integer"}


def _adapt(value):
    ops = connection.ops
    if isinstance(value, datetime):
        return ops.adapt_datetimefield_value(value)
    if isinstance(value, (dict, list)):
        return ops.adapt_json_value(value, None)
    return value


def _move_state(columns) -> str:
    """Move the job's projection row on, from the seq the appender read (the fence)."""
    assignments = ", ".join(f"{name} = %s" for name in columns)
    return f"UPDATE jobs_jobstate SET {assignments} WHERE job_id = %s AND last_seq = %s"


def _insert_events(count: int, *, source: str = "") -> str:
    """Insert `count` events; with `source`, only if that CTE returned a row (the move succeeded)."""
    postgresql = connection.vendor == "postgresql"
    first = ", ".join("%s" + (EVENT_CASTS.get(c, "") if postgresql else "") for c in EVENT_COLUMNS)
    rest = ", ".join(["%s"] * len(EVENT_COLUMNS))
    values = ", ".join([f"({first})"] + [f"({rest})"] * (count - 1))
    columns = ", ".join(EVENT_COLUMNS)
    if not source:
        return f"INSERT INTO jobs_jobevent ({columns}) VALUES {values} RETURNING id"
    return (f"INSERT INTO jobs_jobevent ({columns}) SELECT * FROM (VALUES {values}) AS new ({columns})"
            f" WHERE EXISTS (SELECT 1 FROM {source}) RETURNING id")


def _event_params(rows: list[JobEvent]) -> list:
    return [_adapt(getattr(row, c)) for row in rows for c in EVENT_COLUMNS]


def _append_statement(job_id: str, from_seq: int, moved: dict, rows: list[JobEvent], announce: bool) -> list[int]:
    """Move the projection from `from_seq` and insert `rows`; their ids, or [] when the fence refused."""
    move_params = [_adapt(v) for v in moved.values()] + [job_id, from_seq]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            notice = f", pg_notify('{RUNNABLE_CHANNEL}', %s)" if announce else ""
            cursor.execute(
                f"WITH moved AS ({_move_state(moved)} RETURNING job_id),"
                f" added AS ({_insert_events(len(rows), source='moved')})"
                f" SELECT id{notice}, pg_notify('{EVENTS_CHANNEL}', %s) FROM added",
                move_params + _event_params(rows) + ([job_id] if announce else []) + [job_id],
            )
            return [found[0] for found in cursor.fetchall()]
        with transaction.atomic(savepoint=False):  # SQLite: the same two writes, in one transaction
            cursor.execute(_move_state(moved), move_params)
            if cursor.rowcount != 1:
                return []
            cursor.execute(_insert_events(len(rows)), _event_params(rows))
            return [found[0] for found in cursor.fetchall()]


KEEP = object()  # `lease=KEEP`: the append leaves the lease columns as they are


def append_events(
    *, job_id: str, expected_seq: int, events: list[NewEvent], state: DerivedState | None = None, lease=KEEP,
    verbatim: list[dict] | None = None,
) -> tuple[list[JobEvent], DerivedState]:
    """Append `events` as seq `expected_seq`, `expected_seq + 1`, … and move the projection with them.

    `state` may be passed by a caller that already holds the job's current state (saves a read); the
    statement's fence checks it against the stored projection, so it is never trusted blindly. `lease` (a
    `Lease`) sets the lease columns in the same statement: the engine's claim, hand-over and release.
    `verbatim` (instead of `events`): lines of an audit bundle, inserted as they were recorded (jobs/verbatim.py).
    """
    if state is None:
        row = JobState.objects.filter(job_id=job_id).first()
        if row is None:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        state = state_from_row(row)
    if state.last_seq != expected_seq - 1:
        raise Conflict(
            f"job {job_id} has moved on (last seq {state.last_seq}, expected {expected_seq - 1})",
            code="seq_conflict",
        )
    recorded_at = now()
    if verbatim is not None:
        from .verbatim import verbatim_rows  # the import path only; it builds on this module

        rows, new_state = verbatim_rows(job_id, state, verbatim)
    else:
        rows, new_state = _build_rows(job_id, state, events, recorded_at)
    moved = {**projection_fields(new_state), "updated_at": recorded_at}
    if lease is not KEEP:
        moved.update(lease_owner=lease.owner, lease_expires_at=lease.expires_at)
    ids = _append_statement(job_id, state.last_seq, moved, rows, announce=new_state.status == Status.QUEUED)
    if not ids:
        raise Conflict(f"another writer appended seq {expected_seq} of job {job_id} first", code="seq_conflict")
    for row, pk in zip(rows, ids):
        row.id = pk
    return rows, new_state


def append_event(*, job_id: str, expected_seq: int, event: NewEvent, **options) -> JobEvent:
    rows, _ = append_events(job_id=job_id, expected_seq=expected_seq, events=[event], **options)
    return rows[0]


def create_job(*, spec: JobSpec, submit_event: NewEvent | None = None, verbatim: dict | None = None) -> JobEvent:
    """Insert a new JobSpec with its first event and its projection, in one transaction. `verbatim` (instead of
    `submit_event`): the first line of an audit bundle, inserted as it was recorded."""
    with transaction.atomic():
        spec.save(force_insert=True)
        if verbatim is not None:
            from .verbatim import verbatim_rows  # the import path only; it builds on this module

            rows, new_state = verbatim_rows(spec.job_id, initial_state(spec.kind), [verbatim])
        else:
            rows, new_state = _build_rows(spec.job_id, initial_state(spec.kind), [submit_event], spec.created_at)
        with connection.cursor() as cursor:
            cursor.execute(_insert_events(1), _event_params(rows))
            rows[0].id = cursor.fetchone()[0]
        JobState.objects.create(job_id=spec.job_id, created_at=spec.created_at, updated_at=spec.created_at,
                                **projection_fields(new_state))
        if connection.vendor == "postgresql":
            runnable = new_state.status == Status.QUEUED
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)" + (", pg_notify(%s, %s)" if runnable else ""),
                               [EVENTS_CHANNEL, spec.job_id] + ([RUNNABLE_CHANNEL, spec.job_id] if runnable else []))
        return rows[0]
