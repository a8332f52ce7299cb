"""The orchestrator: claim a job, run its due step outside any transaction, append the outcome, go on.

This runner is the one place that maps step outcomes to events: an expected failure (bad input, missing
data: a research or domain error) is ERROR at once; anything else is STEP_FAILED, retried with backoff up
to `max_attempts`, then ERROR. When a step succeeds and the next stage is another step, its result and
the next STEP_STARTED are appended in one transaction, so the worker keeps the job without a new claim.
"""
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection

from jobs.actors import Actor
from jobs.errors import Conflict, DomainError
from jobs.events import NewEvent, append_events, format_time, now
from jobs.pipelines import Checkpoint, EventType, Status, Step
from jobs.state import DerivedState
from research.artifacts import durable_together
from research.errors import ResearchError

from . import claims
from .executors import StepContext, StepOutcome, executor_for

log = logging.getLogger(__name__)
EXPECTED_FAILURES = (ResearchError, DomainError)


@dataclass
class StepReport:
    job_id: str
    step: str
    outcome: str
    seconds: float
    detail: str = ""

    def line(self) -> str:
        return f"{self.job_id}  {self.step:<14} {self.outcome:<16} {self.seconds:7.3f}s  {self.detail}".rstrip()


@dataclass
class PassSummary:
    steps: list[StepReport] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for s in self.steps if s.outcome == outcome)


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str
    lease_seconds: int
    max_attempts: int
    retry_backoff_seconds: float

    @classmethod
    def from_settings(cls, worker_id: str, lease_seconds: int | None = None) -> "WorkerConfig":
        return cls(
            worker_id=worker_id,
            lease_seconds=lease_seconds or settings.EAM_LEASE_SECONDS,
            max_attempts=settings.EAM_MAX_ATTEMPTS,
            retry_backoff_seconds=settings.EAM_RETRY_BACKOFF_SECONDS,
        )


@dataclass
class _Lease:
    config: WorkerConfig
    job_id: str
    started_seq: int
    due: float
    lost: bool = False

    @property
    def interval(self) -> float:
        return max(self.config.lease_seconds / 3, 0.2)


class LeaseKeeper:
    """One background thread per worker process renews the lease of the step running now, if it runs long.

    The thread holds a database connection only while it renews, so it never keeps a database open.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._current: _Lease | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def keeping(self, config: WorkerConfig, job_id: str, started_seq: int):
        lease = _Lease(config, job_id, started_seq, due=0.0)
        lease.due = time.monotonic() + lease.interval
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
            timeout = None if lease is None else max(lease.due - time.monotonic(), 0.0)
            if self._changed.wait(timeout):
                self._changed.clear()
                continue
            with self._lock:
                if self._current is not lease:
                    continue
            renewed = self._renew(lease)
            with self._lock:
                if self._current is lease:
                    lease.due = time.monotonic() + lease.interval
                    if renewed is False:
                        lease.lost, self._current = True, None

    @staticmethod
    def _renew(lease: _Lease) -> bool | None:
        """True: renewed; False: the lease is gone (taken over, job moved on); None: could not tell now."""
        try:
            return claims.renew(job_id=lease.job_id, worker_id=lease.config.worker_id,
                                started_seq=lease.started_seq, lease_seconds=lease.config.lease_seconds)
        except DatabaseError:
            log.warning("could not renew the lease of job %s; trying again", lease.job_id, exc_info=True)
            return None
        finally:
            connection.close()


_keeper = LeaseKeeper()


def _follow_up(state: DerivedState, outcome: StepOutcome, config: WorkerConfig, may_continue: bool):
    """The events that follow a step's result in the same transaction, and the lease to keep."""
    pipeline = state.pipeline
    stage = state.stage + 1
    worker = Actor.worker(config.worker_id)
    if stage == len(pipeline):
        return [NewEvent(EventType.DONE, worker)], claims.lease(None, None)
    following = pipeline[stage]
    if isinstance(following, Checkpoint):
        review = outcome.review or {}
        payload = {"artifact_sha256": review.get("sha256"), "artifact_path": review.get("path")}
        return [NewEvent(EventType.WAITING_APPROVAL, worker, step=following.name, payload=payload)], claims.lease(None, None)
    if not may_continue:
        return [], claims.lease(None, None)
    expires = now() + timedelta(seconds=config.lease_seconds)
    ahead = DerivedState(kind=state.kind, status=Status.QUEUED, next_step=following.name, attempt=0)
    start = claims.start_event(ahead, worker_id=config.worker_id, expires=expires, recovered_from=None)
    return [start], claims.lease(config.worker_id, expires)


def _failure_events(state: DerivedState, exc: Exception, config: WorkerConfig):
    step, attempt = state.next_step, state.attempt
    worker = Actor.worker(config.worker_id)
    detail = {"error_class": type(exc).__name__, "message": str(exc)[:2000]}
    if isinstance(exc, EXPECTED_FAILURES):
        return [NewEvent(EventType.ERROR, worker, step=step, payload=detail)], "error"
    retryable = attempt < config.max_attempts
    retry_at = now() + timedelta(seconds=config.retry_backoff_seconds * 2 ** (attempt - 1)) if retryable else None
    failed = NewEvent(EventType.STEP_FAILED, worker, step=step, payload={
        **detail, "attempt": attempt, "retryable": retryable, "retry_at": format_time(retry_at) if retry_at else None,
    })
    if retryable:
        return [failed], "failed_will_retry"
    return [failed, NewEvent(EventType.ERROR, worker, step=step, payload=detail)], "error"


def drive(claim: claims.Claim, config: WorkerConfig, *, budget: int | None, report) -> int:
    """Run the claimed job's steps until it waits, ends, fails, loses its lease or `budget` steps ran."""
    state, executed = claim.state, 0
    job = claim.job
    while state.status == Status.RUNNING:
        step, started = state.next_step, time.monotonic()
        context = StepContext(job=job, step=step, attempt=state.attempt, worker_id=config.worker_id)
        with _keeper.keeping(config, job.job_id, state.last_seq) as lease:
            try:
                with durable_together():  # the step's files are on disk before its result is recorded
                    outcome = executor_for(step)(context)
            except Exception as exc:  # the one catch-all: every failure becomes an event
                if not isinstance(exc, EXPECTED_FAILURES):
                    log.exception("step %s of job %s failed (attempt %s)", step, job.job_id, state.attempt)
                events, label = _failure_events(state, exc, config)
                outcome, changes = None, claims.lease(None, None)
        executed += 1
        if outcome is not None:
            current = next(s for s in state.pipeline[state.stage:] if isinstance(s, Step))
            result = NewEvent(current.result_event, Actor.worker(config.worker_id), step=step, payload=outcome.payload())
            may_continue = budget is None or executed < budget
            follow, changes = _follow_up(state, outcome, config, may_continue)
            events, label = [result, *follow], "completed"
        seconds = time.monotonic() - started
        try:
            _, state = append_events(job_id=job.job_id, expected_seq=state.last_seq + 1, events=events,
                                     state=state, state_changes=changes)
        except Conflict as exc:
            # Fenced: the lease was taken over or the job was cancelled meanwhile; our result is void.
            report(StepReport(job.job_id, step, "fenced", seconds, f"{exc.detail}{' (lease lost)' if lease.lost else ''}"))
            break
        detail = _describe(state, outcome, events)
        report(StepReport(job.job_id, step, label, seconds, detail))
    return executed


def _describe(state: DerivedState, outcome: StepOutcome | None, events) -> str:
    if outcome is None:
        return f"{events[0].payload['error_class']}: {events[0].payload['message']}"[:300]
    if state.status == Status.WAITING_APPROVAL:
        return f"waiting for approval of {state.waiting_step}"
    if state.status == Status.DONE:
        return "job done"
    return ", ".join(f"{k}={v}" for k, v in outcome.summary.items() if isinstance(v, (str, int, float)))[:200]


def run_pass(config: WorkerConfig, *, job_ids=None, max_steps: int | None = None, report=lambda r: None) -> PassSummary:
    """Advance every runnable job until it waits or ends (or `max_steps` steps ran); return what happened."""
    summary = PassSummary()

    def record(step_report: StepReport):
        summary.steps.append(step_report)
        report(step_report)

    while max_steps is None or len(summary.steps) < max_steps:
        claim = claims.claim_next(worker_id=config.worker_id, lease_seconds=config.lease_seconds,
                                  max_attempts=config.max_attempts, job_ids=job_ids)
        if claim is None:
            break
        if isinstance(claim, claims.Abandoned):
            record(StepReport(claim.job_id, claim.step, "error", 0.0, claim.message))
            continue
        budget = None if max_steps is None else max_steps - len(summary.steps)
        drive(claim, config, budget=budget, report=record)
    return summary
