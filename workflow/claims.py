"""Claims and leases: the one place where a worker takes a job, renews its lease or lets it go.

A claim is a short transaction: pick the first runnable job in (created_at, job_id) order that no live
lease holds — `FOR UPDATE SKIP LOCKED` on PostgreSQL, the IMMEDIATE write lock on SQLite — and append
STEP_STARTED with the lease. The STEP_STARTED seq is the fencing token: the step's result must take the
next seq, so a worker whose lease was taken over cannot write its stale result.
"""
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction

from jobs import sql
from jobs.actors import Actor
from jobs.events import RUNNABLE_CHANNEL, NewEvent, append_events, format_time, now, state_from_row
from jobs.models import JobSpec, JobState
from jobs.pipelines import EventType, Status
from jobs.state import DerivedState


@dataclass(frozen=True)
class Claim:
    job_id: str
    state: DerivedState
    lease_expires_at: datetime
    recovered_from: str | None
    job: JobSpec


@dataclass(frozen=True)
class Abandoned:
    """A job whose running step lost its lease too often: it went to ERROR instead of being claimed."""

    job_id: str
    step: str
    message: str


def _runnable_condition(moment: datetime, job_ids) -> tuple[str, list]:
    """Runnable: queued or running with a step due, not waiting for a retry time, and no live lease."""
    moment_param = sql.param(JobState, "available_at", moment)
    condition = """s.status IN (%s, %s) AND s.next_step IS NOT NULL
          AND (s.available_at IS NULL OR s.available_at <= %s)
          AND (s.lease_expires_at IS NULL OR s.lease_expires_at < %s)"""
    params = [Status.QUEUED.value, Status.RUNNING.value, moment_param, moment_param]
    if job_ids:
        condition += f" AND s.job_id IN ({', '.join(['%s'] * len(job_ids))})"
        params += list(job_ids)
    return condition, params


def _first_runnable(moment: datetime, job_ids) -> JobState | None:
    """The first runnable job's state (its spec attached), locked for this transaction; None if there is none.

    In (created_at, job_id) order; on PostgreSQL rows other workers hold are skipped, not waited for.
    """
    condition, params = _runnable_condition(moment, job_ids)
    lock = "FOR UPDATE OF s SKIP LOCKED" if connection.vendor == "postgresql" else ""
    statement = f"""
        SELECT {sql.columns(JobState, "s", connection.vendor)}, {sql.columns(JobSpec, "j", connection.vendor)}
        FROM {JobState._meta.db_table} s JOIN {JobSpec._meta.db_table} j ON j.job_id = s.job_id
        WHERE {condition}
        ORDER BY s.created_at, s.job_id
        LIMIT 1 {lock}"""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        found = cursor.fetchone()
    if found is None:
        return None
    width = len(JobState._meta.concrete_fields)
    row = sql.instance(JobState, found[:width])
    row.job = sql.instance(JobSpec, found[width:])
    return row


def any_runnable(job_ids=None) -> bool:
    """Whether a claim could find work now: one read, no lock, no transaction (an idle worker's poll)."""
    condition, params = _runnable_condition(now(), job_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {JobState._meta.db_table} s WHERE {condition} LIMIT 1", params)
        return cursor.fetchone() is not None


def wait_for_work(seconds: float) -> None:
    """Sleep up to `seconds`; on PostgreSQL wake as soon as a job is announced runnable (LISTEN/NOTIFY).

    A notice only cuts the wait short: the caller still polls with `any_runnable`, so a lost notice (a
    reconnect) costs at most `seconds`, never a job.
    """
    if connection.vendor != "postgresql":
        time.sleep(seconds)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"LISTEN {RUNNABLE_CHANNEL}")  # idempotent; done again after any reconnect
    for _ in connection.connection.notifies(timeout=seconds, stop_after=1):
        pass


def start_event(state: DerivedState, *, worker_id: str, expires: datetime, recovered_from: str | None) -> NewEvent:
    return NewEvent(
        EventType.STEP_STARTED, Actor.worker(worker_id), step=state.next_step,
        payload={
            "attempt": state.attempt + 1, "worker": worker_id, "lease_expires_at": format_time(expires),
            "recovered_from": recovered_from,
        },
    )


def lease(worker_id: str | None, expires: datetime | None) -> dict:
    return {"lease_owner": worker_id, "lease_expires_at": expires}


def claim_next(*, worker_id: str, lease_seconds: int, max_attempts: int, job_ids=None) -> Claim | Abandoned | None:
    """Claim the first runnable job, or None when there is none."""
    moment = now()
    expires = moment + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        row = _first_runnable(moment, job_ids)
        if row is None:
            return None
        state = state_from_row(row)
        recovered_from = (row.lease_owner or "unknown") if row.status == Status.RUNNING else None
        if recovered_from and state.attempt >= max_attempts:
            message = f"the step lost its worker's lease {state.attempt} time(s) (last worker {recovered_from})"
            error = NewEvent(EventType.ERROR, Actor.worker(worker_id), step=state.next_step,
                             payload={"error_class": "LeaseExpired", "message": message})
            append_events(job_id=row.job_id, expected_seq=state.last_seq + 1, events=[error], state=state,
                          state_changes=lease(None, None))
            return Abandoned(row.job_id, state.next_step, message)
        start = start_event(state, worker_id=worker_id, expires=expires, recovered_from=recovered_from)
        _, new_state = append_events(
            job_id=row.job_id, expected_seq=state.last_seq + 1, events=[start], state=state,
            state_changes=lease(worker_id, expires),
        )
    return Claim(row.job_id, new_state, expires, recovered_from, row.job)


def renew(*, job_id: str, worker_id: str, started_seq: int, lease_seconds: int) -> bool:
    """Extend the lease of a step still running; False when the lease was lost (taken over or job moved on)."""
    expires = now() + timedelta(seconds=lease_seconds)
    updated = JobState.objects.filter(job_id=job_id, lease_owner=worker_id, last_seq=started_seq).update(
        lease_expires_at=expires
    )
    return updated == 1
