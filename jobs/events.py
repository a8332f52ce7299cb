"""The single write path for job events: validate, chain, insert and project, in one transaction.

Nothing else creates a JobEvent row. The expected `seq` is the optimistic lock: two writers that race
for the same seq cannot both win; the loser gets `Conflict`, never a duplicate.
"""
from dataclasses import dataclass
from datetime import datetime, timezone

from django.db import IntegrityError, connection, transaction

from contracts import canonical_json, sha256_hex, validate_event

from . import sql
from .actors import Actor
from .errors import Conflict, InvalidInput, NotFound
from .models import JobEvent, JobSpec, JobState
from .pipelines import EVENT_SCHEMA, EventType, Status
from .state import DerivedState, IllegalTransition, apply_event, initial_state


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what happened, in which step, done by whom."""

    event_type: EventType
    actor: Actor
    step: str | None = None
    payload: dict | None = None


def format_time(moment: datetime) -> str:
    """The one text form of a timestamp inside hashed documents (UTC, microseconds)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


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


def state_from_row(row: JobState) -> DerivedState:
    return DerivedState(
        kind=row.kind, status=row.status, stage=row.stage, next_step=row.next_step, waiting_step=row.waiting_step,
        review_sha256=row.review_sha256, attempt=row.attempt, error=row.error, last_seq=row.last_seq,
        last_event_type=row.last_event_type, last_hash=row.last_hash,
        available_at=format_time(row.available_at) if row.available_at else None,
    )


def projection_fields(state: DerivedState) -> dict:
    """The JobState columns that the events determine (lease columns are not among them)."""
    return {
        "kind": str(state.kind), "status": str(state.status), "stage": state.stage, "next_step": state.next_step,
        "waiting_step": state.waiting_step, "review_sha256": state.review_sha256, "attempt": state.attempt,
        "error": state.error, "last_seq": state.last_seq, "last_event_type": state.last_event_type,
        "last_hash": state.last_hash, "available_at": parse_time(state.available_at),
    }


def _build_rows(job_id: str, state: DerivedState, events: list[NewEvent], recorded_at: datetime):
    rows = []
    stamp = format_time(recorded_at)
    for new in events:
        seq = state.last_seq + 1
        payload = new.payload or {}
        doc = event_document(
            job_id=job_id, seq=seq, event_type=str(new.event_type), step=new.step, actor=new.actor.as_dict(),
            payload=payload, recorded_at=stamp, prev_hash=state.last_hash, schema_version=EVENT_SCHEMA,
        )
        errors = validate_event(EVENT_SCHEMA, doc)
        if errors:
            raise InvalidInput(f"{new.event_type} breaks the event contract", code="invalid_event", errors=errors)
        digest = chain_hash(state.last_hash, doc)
        try:
            state = apply_event(state, {**doc, "hash": digest})
        except IllegalTransition as exc:
            raise Conflict(f"{new.event_type} is not allowed now: {exc}", code="illegal_transition") from exc
        rows.append(
            JobEvent(
                job_id=job_id, seq=seq, event_type=doc["event_type"], step=new.step, actor=doc["actor"],
                payload=payload, schema_version=EVENT_SCHEMA, recorded_at=recorded_at,
                prev_hash=doc["prev_hash"], hash=digest,
            )
        )
    return rows, state


def append_events(
    *, job_id: str, expected_seq: int, events: list[NewEvent], state: DerivedState | None = None,
    state_changes: dict | None = None,
) -> tuple[list[JobEvent], DerivedState]:
    """Append `events` as seq `expected_seq`, `expected_seq + 1`, … and update the projection.

    `state` may be passed by a caller that already holds the job's current state (saves a read); it is
    checked against the stored projection by the conditional update, never trusted blindly.
    `state_changes` sets extra JobState columns in the same update (the lease, for the engine).
    """
    with transaction.atomic(savepoint=False):
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
        rows, new_state = _build_rows(job_id, state, events, recorded_at)
        try:
            sql.insert(rows)
        except IntegrityError as exc:
            raise Conflict(f"another writer appended seq {expected_seq} of job {job_id} first", code="seq_conflict") from exc
        updated = sql.update(
            JobState,
            values={**projection_fields(new_state), "updated_at": recorded_at, **(state_changes or {})},
            where={"job_id": job_id, "last_seq": state.last_seq},
        )
        if updated != 1:
            raise Conflict(f"job {job_id} changed while appending", code="seq_conflict")
        _announce_if_runnable(job_id, new_state)
        return rows, new_state


# Idle workers on PostgreSQL LISTEN on this channel; a job that becomes runnable (submitted, approved,
# retried) is announced, and the notice is delivered when the transaction commits, never before.
RUNNABLE_CHANNEL = "eam_job_runnable"


def _announce_if_runnable(job_id: str, state: DerivedState) -> None:
    if connection.vendor == "postgresql" and state.status == Status.QUEUED:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [RUNNABLE_CHANNEL, job_id])


def append_event(*, job_id: str, expected_seq: int, event: NewEvent, **options) -> JobEvent:
    rows, _ = append_events(job_id=job_id, expected_seq=expected_seq, events=[event], **options)
    return rows[0]


def create_job(*, spec: JobSpec, submit_event: NewEvent) -> JobEvent:
    """Insert a new JobSpec with its first event and its projection (the caller holds a transaction)."""
    with transaction.atomic(savepoint=False):
        sql.insert([spec])
        state = initial_state(spec.kind)
        rows, new_state = _build_rows(spec.job_id, state, [submit_event], spec.created_at)
        sql.insert(rows)
        sql.insert([JobState(job_id=spec.job_id, created_at=spec.created_at, updated_at=spec.created_at,
                             **projection_fields(new_state))])
        _announce_if_runnable(spec.job_id, new_state)
        return rows[0]

