"""Claims and leases: the one place where a worker takes a job, keeps its lease while a step runs, and lets
it go.

A claim is a short transaction: lock the first runnable job in (created_at, job_id) order that no live
lease holds — `FOR UPDATE SKIP LOCKED` on PostgreSQL, the IMMEDIATE write lock on SQLite — and append
STEP_STARTED with the lease. The STEP_STARTED seq is the fencing token: the step's result must take the
next seq, so a worker whose lease was taken over cannot write its stale result.

A database outage is waited out here too (`retrying`): after a connection-level error (the server restarted,
the network dropped) the broken connection is closed and the work tried again, waiting longer each time; any
other database error (a constraint, a bug) is raised at once, so it never loops.
"""
import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from jobs import events
from jobs.errors import DATABASE_UNREACHABLE
from jobs.events import RUNNABLE_CHANNEL, Actor, Lease, append_events, now
from jobs.models import JobSpec, JobState
from jobs.pipelines import RERUN_STEP, RUNNABLE_STATUSES, Status
from jobs.state import DerivedState, state_from_row

log = logging.getLogger(__name__)


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


# Lease and retry times are the database's, never a worker's own: workers on machines whose clocks disagree
# would otherwise take a job over early or late. Conditions compare with the database's `Now()`; a time a
# worker writes (a lease's end, a retry time) is its clock corrected by the offset to the database's clock
# measured at its last claim.
local_now = now
_offset = timedelta(0)


def database_now() -> datetime:
    """This worker's best reading of the database's clock: its own, corrected at every claim."""
    return local_now() + _offset


# -- outages --------------------------------------------------------------------------------------------------

FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 30.0


class Backoff:
    """Waits that double from FIRST_WAIT_SECONDS up to LONGEST_WAIT_SECONDS, each drawn at random from the upper
    half of its range, so that workers that lost the database together do not all come back at the same moment."""

    def __init__(self):
        self._limit = FIRST_WAIT_SECONDS

    def next_wait(self) -> float:
        wait = random.uniform(self._limit / 2, self._limit)
        self._limit = min(self._limit * 2, LONGEST_WAIT_SECONDS)
        return wait


def retrying(action: Callable, *, doing: str, giving_up: Callable[[], bool] = lambda: False,
             pause: Callable[[float], None] = time.sleep):
    """`action()`, tried again after each connection-level error until it succeeds, with a new connection and a
    longer wait each time (the waits start short again on the next call). The error is raised once
    `giving_up()` says so. Called outside any transaction: the connection is closed between attempts."""
    backoff = Backoff()
    while True:
        try:
            return action()
        except DATABASE_UNREACHABLE as exc:
            connection.close()
            if giving_up():
                log.warning("database unreachable while %s (%s); giving up", doing, _first_line(exc))
                raise
            wait = backoff.next_wait()
            log.warning("database unreachable while %s (%s); trying again in %.1fs", doing, _first_line(exc), wait)
            pause(wait)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- claims -----------------------------------------------------------------------------------------------------

def _runnable(job_ids) -> Q:
    """Runnable: queued or running with a step due, or an agent rerun pending; not waiting for a retry time, and no
    live lease."""
    condition = (
        (Q(status__in=RUNNABLE_STATUSES, next_step__isnull=False) | Q(reruns__isnull=False))
        & (Q(available_at__isnull=True) | Q(available_at__lte=Now()))
        & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=Now()))
    )
    if job_ids:
        condition &= Q(job_id__in=job_ids)
    return condition


def any_runnable(job_ids=None) -> bool:
    """Whether a claim could find work now: one read, no lock, no transaction (an idle worker's poll)."""
    return JobState.objects.filter(_runnable(job_ids)).exists()


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
    with connection.wrap_database_errors:  # the driver's own call: a lost connection raises as in a query
        for _ in connection.connection.notifies(timeout=seconds, stop_after=1):
            pass


def claim_next(*, worker_id: str, lease_seconds: int, max_attempts: int, job_ids=None) -> Claim | Abandoned | None:
    """Claim the first runnable job, or None when there is none."""
    global _offset
    with transaction.atomic():
        # Rows another worker holds are skipped on PostgreSQL, not waited for; SQLite ignores the lock and
        # relies on the transaction's IMMEDIATE write lock.
        row = (
            JobState.objects.select_for_update(skip_locked=True, of=("self",)).select_related("job")
            .filter(_runnable(job_ids)).annotate(database_time=Now()).order_by("created_at", "job_id").first()
        )
        if row is None:
            return None
        _offset = row.database_time - local_now()
        expires = row.database_time + timedelta(seconds=lease_seconds)
        state = state_from_row(row)
        # A pending agent rerun is due first: while one is, no pipeline step is (jobs/state.py).
        rerun = state.reruns[0] if state.reruns else None
        step, attempt = (RERUN_STEP, rerun["attempt"]) if rerun else (state.next_step, state.attempt)
        running = rerun["running"] if rerun else row.status == Status.RUNNING
        recovered_from = (row.lease_owner or "unknown") if running else None
        if recovered_from and attempt >= max_attempts:
            return abandon(job_id=row.job_id, state=state, worker_id=worker_id, lost_worker=recovered_from)
        start = events.step_started(step=step, worker_id=worker_id, attempt=attempt + 1, lease_expires_at=expires,
                                    recovered_from=recovered_from, rerun=rerun)
        _, new_state = append_events(job_id=row.job_id, expected_seq=state.last_seq + 1, events=[start],
                                     state=state, lease=Lease(worker_id, expires))
    return Claim(row.job_id, new_state, expires, recovered_from, row.job)


def abandon(*, job_id: str, state: DerivedState, worker_id: str, lost_worker: str) -> Abandoned:
    """End the running step (or agent rerun) of `state`, whose worker lost the lease and which has no attempt left,
    and release the lease: a rerun ends with its last failure (the job itself is not in error), a pipeline step
    with ERROR. Fenced by the seq of `state`; the caller holds the job's row (a claim, the reconciler)."""
    rerun = state.reruns[0] if state.reruns else None
    step, attempt = (RERUN_STEP, rerun["attempt"]) if rerun else (state.next_step, state.attempt)
    message = f"the step lost its worker's lease {attempt} time(s) (last worker {lost_worker})"
    if rerun:
        lost = events.step_failed(step=step, worker_id=worker_id, error_class="LeaseExpired", message=message,
                                  attempt=attempt, retry_at=None)
    else:
        lost = events.error(step=step, actor=Actor.worker(worker_id), error_class="LeaseExpired", message=message)
    append_events(job_id=job_id, expected_seq=state.last_seq + 1, events=[lost], state=state, lease=Lease())
    return Abandoned(job_id, step, message)


def hand_over(*, step: str, worker_id: str, lease_seconds: int):
    """(STEP_STARTED of the job's next step, the lease it takes): for a worker that goes straight on with the
    job it holds, in the same append as the previous step's result, without a new claim."""
    expires = database_now() + timedelta(seconds=lease_seconds)
    start = events.step_started(step=step, worker_id=worker_id, attempt=1, lease_expires_at=expires)
    return start, Lease(worker_id, expires)


def renew(*, job_id: str, worker_id: str, started_seq: int, lease_seconds: int) -> bool:
    """Extend the lease of a step still running; False when the lease was lost (taken over or job moved on)."""
    expires = ExpressionWrapper(Now() + timedelta(seconds=lease_seconds), output_field=DateTimeField())
    updated = JobState.objects.filter(job_id=job_id, lease_owner=worker_id, last_seq=started_seq).update(
        lease_expires_at=expires
    )
    return updated == 1


@dataclass
class HeldLease:
    worker_id: str
    lease_seconds: int
    job_id: str
    started_seq: int
    due: float
    deadline: float = float("inf")  # time.monotonic() at which the step has run out of time
    on_timeout: Callable[[], None] | None = None
    lost: bool = False
    timed_out: bool = False
    valid_until: float = 0.0  # time.monotonic() at which the lease expires unless it is renewed before
    backoff: Backoff = field(default_factory=Backoff)  # after a renewal the database did not answer

    @property
    def interval(self) -> float:
        return max(self.lease_seconds / 3, 0.2)

    def over(self) -> bool:
        """Whether the lease can no longer be this worker's: lost, timed out, or expired by this worker's reckoning
        (it was taken a moment before the step started, and is renewed while the step runs)."""
        return self.lost or self.timed_out or time.monotonic() >= self.valid_until


class LeaseKeeper:
    """One background thread per worker process renews the lease of the step running now, if it runs long,
    until the step's time limit: then it renews no more and calls the step's `on_timeout` (the orchestrator
    fails the step as `timeout`, fenced like any result, which releases the lease).

    The thread holds a database connection only while it writes, so it never keeps a database open.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._current: HeldLease | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def keeping(self, *, worker_id: str, lease_seconds: int, job_id: str, started_seq: int,
                time_limit: float | None = None, on_timeout: Callable[[], None] | None = None):
        lease = HeldLease(worker_id, lease_seconds, job_id, started_seq, due=0.0, on_timeout=on_timeout)
        lease.due = time.monotonic() + lease.interval
        lease.valid_until = time.monotonic() + lease_seconds
        if time_limit is not None:
            lease.deadline = time.monotonic() + time_limit
        with self._lock:
            self._current = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()
        self._changed.set()
        try:
            yield lease
        finally:
            with self._lock:
                self._current = None

    def _run(self):
        while True:
            with self._lock:
                lease = self._current
            timeout = None if lease is None else max(min(lease.due, lease.deadline) - time.monotonic(), 0.0)
            if self._changed.wait(timeout):
                self._changed.clear()
                continue
            with self._lock:
                if self._current is not lease:
                    continue
            if time.monotonic() >= lease.deadline:
                with self._lock:
                    lease.timed_out, self._current = True, None
                self._time_out(lease)
                continue
            asked = time.monotonic()
            renewed = self._renew(lease)
            with self._lock:
                if renewed:
                    lease.valid_until, lease.backoff = asked + lease.lease_seconds, Backoff()
                if self._current is lease:
                    # When the database did not answer (an outage), ask again soon rather than an interval later.
                    wait = min(lease.backoff.next_wait(), lease.interval) if renewed is None else lease.interval
                    lease.due = time.monotonic() + wait
                    if renewed is False:
                        lease.lost, self._current = True, None

    @staticmethod
    def _renew(lease: HeldLease) -> bool | None:
        """True: renewed; False: the lease is gone (taken over, job moved on); None: could not tell now."""
        try:
            return renew(job_id=lease.job_id, worker_id=lease.worker_id, started_seq=lease.started_seq,
                         lease_seconds=lease.lease_seconds)
        except DatabaseError:
            log.warning("could not renew the lease of job %s; trying again", lease.job_id, exc_info=True)
            return None
        finally:
            connection.close()

    @staticmethod
    def _time_out(lease: HeldLease) -> None:
        log.warning("step of job %s ran past its time limit: failing it as timeout", lease.job_id)
        if lease.on_timeout is None:
            return  # the lease is simply not renewed any more: it expires, and another worker takes over
        try:
            lease.on_timeout()
        except DatabaseError:
            log.warning("could not record the timeout of job %s; its lease will expire", lease.job_id, exc_info=True)
        finally:
            connection.close()


keeper = LeaseKeeper()
