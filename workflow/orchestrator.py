"""The orchestrator: claim a job, run its due step outside any transaction, append the outcome, go on.

This runner is the one place that maps step outcomes to events: an expected failure (bad input, missing
data: a research or domain error) is ERROR at once; anything else is STEP_FAILED, retried with backoff up
to `max_attempts`, then ERROR. When a step succeeds and the next stage is another step, its result and
the next STEP_STARTED are appended in one transaction, so the worker keeps the job without a new claim.
A database outage is no step's failure: the step runs again, or its outcome is appended again, once the
database is back (`claims.retrying`).
"""
import logging
import time
import uuid
from contextlib import nullcontext
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import cached_property, partial
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string
from structlog.contextvars import bound_contextvars

from jobs import events
from jobs.errors import DATABASE_UNREACHABLE, Conflict, DomainError
from jobs.events import Actor, Lease, append_events
from jobs.pipelines import RERUN_STEP, Checkpoint, EventType, Status, Step
from jobs.artifacts import recorded_artifacts
from jobs.audit import verify_job
from jobs.models import JobEvent, JobSpec
from jobs.state import DerivedState, apply_event
from research.artifacts import durable_together, read_json_artifact
from research.errors import IntegrityFailure, ResearchError

from . import claims

log = logging.getLogger(__name__)
EXPECTED_FAILURES = (ResearchError, DomainError)


class StepTimeout(Exception):
    """A step that ran past its time limit (EAM_STEP_TIMEOUT_SECONDS, or EAM_STEP_TIMEOUTS for that step)."""

    error_class = "timeout"


class GraceExpired(Exception):
    """Raised into a step still running when its stopping worker's grace period ran out (run_jobs): the step
    fails with this class, its lease is released and another worker takes the job on."""

    error_class = "worker_stopped"


_step_in_flight = False  # read by run_jobs' signal handler, which runs in this (the main) thread


def step_in_flight() -> bool:
    return _step_in_flight


# -- the step executors (workflow/executors/<step>.py), registered by name --------------------------------------
# `settings.EAM_STEP_EXECUTORS` may map a step name to the dotted path of another executor (a deployment's own
# implementation of a step, or an instrumented one in tests); the default is the module of that name.

@dataclass(frozen=True)
class StepContext:
    """What an executor gets: the job, the attempt and the worker running it."""

    job: JobSpec
    step: str
    attempt: int
    worker_id: str

    @cached_property
    def _recorded(self) -> dict[str, str]:
        # path -> sha256, read once per step (later records of a path replace earlier ones), from a log that
        # verifies: chain, signatures, replay and projection. A forged approval, or a projection moved on with no
        # event, is never acted on.
        findings = verify_job(self.job.job_id)
        if findings:
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            raise IntegrityFailure(f"the event log of job {self.job.job_id} does not verify: {findings[0]}{more}")
        return {ref["path"]: ref["sha256"] for ref in recorded_artifacts(self.job.job_id)[0]}

    def read_approved(self, checkpoint: str):
        """The document the job's approval of `checkpoint` approved: the artifact its WAITING_APPROVAL put under
        review (announced again after an agent rerun, the latest), checked against the sha256 the approval named
        and the one the events recorded for it."""
        rows = (JobEvent.objects.filter(job_id=self.job.job_id, step=checkpoint,
                                        event_type__in=[EventType.WAITING_APPROVAL, EventType.APPROVED])
                .order_by("-seq").values_list("event_type", "payload")[:2])
        decided = [payload for _, payload in rows]
        if [etype for etype, _ in rows] != [EventType.APPROVED, EventType.WAITING_APPROVAL]:
            raise IntegrityFailure(f"job {self.job.job_id} has no approval of {checkpoint} after its announcement")
        approval, waiting = decided
        path, sha256 = waiting.get("artifact_path"), waiting.get("artifact_sha256")
        if approval.get("artifact_sha256") != sha256 or self.recorded_sha256(path or "") != sha256:
            raise IntegrityFailure(f"the approval of {checkpoint} in job {self.job.job_id} does not name the "
                                   f"artifact under review ({path}, {sha256})")
        return read_json_artifact(path, sha256=sha256)

    def recorded_sha256(self, path: str) -> str:
        """The sha256 the job's events recorded for the artifact at `path` (the latest, if written again): what
        a step that reads it checks first, above all the artifact a reviewer approved."""
        if path not in self._recorded:
            raise IntegrityFailure(f"no event of job {self.job.job_id} records {path}")
        return self._recorded[path]


@dataclass(frozen=True)
class StepOutcome:
    """What the result event records; `review` names the artifact a following checkpoint puts under review.

    `record` is what the step writes to the database besides its result (the registry's row): it runs in the
    same transaction as the result's append, so a fenced result leaves nothing behind; what it returns is added
    to the summary. `after` runs once the result is recorded, never for a fenced one."""

    artifacts: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    review: dict | None = None
    record: Callable[[], dict] | None = None
    after: Callable[[], None] | None = None  # once the result is recorded: files derived from the events


Executor = Callable[[StepContext], StepOutcome]
DEFAULT_EXECUTORS = {
    name: f"workflow.executors.{name}.execute"
    for name in ("intent", "strategy_spec", "compile", "trace_preview", "run", "gates", "registry", "report",
                 "improvements", "spawn", "rerun")
}


def executor_for(step: str) -> Executor:
    path = getattr(settings, "EAM_STEP_EXECUTORS", {}).get(step) or DEFAULT_EXECUTORS.get(step)
    if path is None:
        raise LookupError(f"no executor is registered for step {step!r}")
    return import_string(path)



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
    step_timeout_seconds: float = 3600.0
    step_timeouts: dict = field(default_factory=dict)  # step name -> seconds, where a step has its own limit

    @classmethod
    def from_settings(cls, worker_id: str, lease_seconds: int | None = None) -> "WorkerConfig":
        return cls(
            worker_id=worker_id,
            lease_seconds=lease_seconds or settings.EAM_LEASE_SECONDS,
            max_attempts=settings.EAM_MAX_ATTEMPTS,
            retry_backoff_seconds=settings.EAM_RETRY_BACKOFF_SECONDS,
            step_timeout_seconds=settings.EAM_STEP_TIMEOUT_SECONDS,
            step_timeouts={step: float(seconds) for step, seconds in settings.EAM_STEP_TIMEOUTS.items()},
        )

    def time_limit(self, step: str) -> float:
        return self.step_timeouts.get(step, self.step_timeout_seconds)


def _follow_up(state: DerivedState, outcome: StepOutcome, config: WorkerConfig, may_continue: bool,
               stopped_budget: dict | None = None):
    """The events that follow a step's result in the same append, and the lease to keep. After the last step:
    DONE, or STOPPED_BUDGET when the step's record says the budget stopped it (a spawn)."""
    pipeline = state.pipeline
    stage = state.stage + 1
    if stage == len(pipeline):
        if stopped_budget is not None:
            return [events.stopped_budget(step=state.next_step, worker_id=config.worker_id, **stopped_budget)], Lease()
        return [events.done(worker_id=config.worker_id)], Lease()
    following = pipeline[stage]
    if isinstance(following, Checkpoint):
        review = outcome.review or {}
        waiting = events.waiting_approval(checkpoint=following.name, worker_id=config.worker_id,
                                          artifact_sha256=review.get("sha256"), artifact_path=review.get("path"))
        return [waiting], Lease()
    if not may_continue:
        return [], Lease()
    start, lease = claims.hand_over(step=following.name, worker_id=config.worker_id,
                                    lease_seconds=config.lease_seconds)
    return [start], lease


def _time_out(job_id: str, state: DerivedState, config: WorkerConfig) -> None:
    """Fail the running step as `timeout` (from the lease keeper's thread), fenced like its own result would be:
    whichever is appended first wins, and the other is refused."""
    limit = config.time_limit(state.running_step)
    failure = StepTimeout(f"step {state.running_step} ran past its time limit of {limit:g}s")
    outcome_events, _ = _failure_events(state, failure, config)
    try:
        append_events(job_id=job_id, expected_seq=state.last_seq + 1, events=outcome_events, state=state,
                      lease=Lease())
    except Conflict:
        pass  # the step's own result, or a cancellation, came first


def _result_events(state: DerivedState, outcome: StepOutcome, config: WorkerConfig, may_continue: bool):
    """The step's result event (after writing its record, in the caller's transaction) and what follows it."""
    if state.running_step == RERUN_STEP:
        return _rerun_result(state, outcome, config), Lease()
    recorded = dict(outcome.record()) if outcome.record else {}
    stopped_budget = recorded.pop("stopped_budget", None)
    current = next(s for s in state.pipeline[state.stage:] if isinstance(s, Step))
    result = events.step_completed(current.result_event, step=state.next_step, worker_id=config.worker_id,
                                   artifacts=outcome.artifacts, summary={**outcome.summary, **recorded})
    follow, lease_after = _follow_up(state, outcome, config, may_continue, stopped_budget)
    return [result, *follow], lease_after


def _rerun_result(state: DerivedState, outcome: StepOutcome, config: WorkerConfig) -> list:
    """RERUN_COMPLETED, and the checkpoint announced again when the rerun's output is now what it reviews."""
    result = events.step_completed(EventType.RERUN_COMPLETED, step=RERUN_STEP, worker_id=config.worker_id,
                                   artifacts=outcome.artifacts, summary=outcome.summary)
    if outcome.review is None:
        return [result]
    return [result, events.waiting_approval(checkpoint=state.waiting_step, worker_id=config.worker_id,
                                            artifact_sha256=outcome.review["sha256"],
                                            artifact_path=outcome.review["path"])]


def _failure_events(state: DerivedState, exc: Exception, config: WorkerConfig):
    """An expected failure is final at once, unless it says it may be retried (a model call that timed out); a
    rerun's final failure is its last STEP_FAILED (the job is not in error), a step's an ERROR."""
    step, worker_id = state.running_step, config.worker_id
    attempt = state.reruns[0]["attempt"] if step == RERUN_STEP else state.attempt
    error_class, message = getattr(exc, "error_class", type(exc).__name__), str(exc)[:2000]
    details = getattr(exc, "details", None)
    retryable = getattr(exc, "retryable", not isinstance(exc, EXPECTED_FAILURES))
    retry_at = None
    if retryable and attempt < config.max_attempts:
        retry_at = claims.database_now() + timedelta(seconds=config.retry_backoff_seconds * 2 ** (attempt - 1))
    failed = events.step_failed(step=step, worker_id=worker_id, error_class=error_class, message=message,
                                attempt=attempt, retry_at=retry_at, details=details)
    if retry_at is not None:
        return [failed], "failed_will_retry"
    if step == RERUN_STEP:
        return [failed], "rerun_failed"
    fatal = events.error(step=step, actor=Actor.worker(worker_id), error_class=error_class, message=message)
    if isinstance(exc, EXPECTED_FAILURES) and details is None:
        return [fatal], "error"
    return [failed, fatal], "error"


def drive(claim: claims.Claim, config: WorkerConfig, *, budget: int | None, report, stopping=lambda: False) -> int:
    """Run the claimed job's steps until it waits, ends, fails, loses its lease, `budget` steps ran or the
    worker is stopping (the step in flight then finishes, and the job is left for another worker)."""
    state, executed = claim.state, 0
    job = claim.job
    while state.running_step is not None:
        step, started = state.running_step, time.monotonic()
        attempt = state.reruns[0]["attempt"] if step == RERUN_STEP else state.attempt
        # The step's log lines and the events it appends carry its trace id (jobs.events records it).
        with bound_contextvars(worker_id=config.worker_id, job_id=job.job_id, step=step, attempt=attempt,
                               trace_id=new_trace_id()):
            context = StepContext(job=job, step=step, attempt=attempt, worker_id=config.worker_id)
            on_timeout = partial(copy_context().run, _time_out, job.job_id, state, config)  # in the keeper's thread
            with claims.keeper.keeping(worker_id=config.worker_id, lease_seconds=config.lease_seconds,
                                       job_id=job.job_id, started_seq=state.last_seq,
                                       time_limit=config.time_limit(step), on_timeout=on_timeout) as lease:
                outcome, failure = _run_step(context, state, config, lease)
            executed += 1
            seconds = time.monotonic() - started
            may_continue = (budget is None or executed < budget) and not stopping()
            try:
                label, written, state = _write_outcome(job.job_id, state, outcome, failure, config, may_continue,
                                                       lease)
            except Conflict as exc:
                # Fenced: the lease was taken over or the job was cancelled meanwhile; our result is void.
                why = " (timed out)" if lease.timed_out else " (lease lost)" if lease.lost else ""
                _report(report, StepReport(job.job_id, step, "fenced", seconds, f"{exc.detail}{why}"), None)
                break
            _report(report, StepReport(job.job_id, step, label, seconds, _describe(state, outcome, written)), outcome)
            if outcome is not None and outcome.after is not None:
                _after(outcome.after, job.job_id, step)
    return executed


def new_trace_id() -> str:
    return f"w-{uuid.uuid4().hex[:16]}"


def _report(report, step_report: StepReport, outcome: StepOutcome | None) -> None:
    """Log the step's line (its context is bound) and hand it to the runner (run_jobs prints it)."""
    run_id = outcome.summary.get("run_id") if outcome is not None else None
    log.info("step completed", extra={"outcome": step_report.outcome, "seconds": round(step_report.seconds, 3),
                                      **({"run_id": run_id} if run_id else {})})
    report(step_report)


def _after(after: Callable[[], None], job_id: str, step: str) -> None:
    """What a step derives from the events once its result is recorded. The result stands whatever happens here:
    the files are rebuilt from the events by the next rerun or by `manage.py rebuild_rerun_state`."""
    try:
        after()
    except Exception:  # the step's outcome is recorded; only a derived file is behind
        log.exception("step %s of job %s: its derived files could not be written (manage.py rebuild_rerun_state "
                      "rebuilds them)", step, job_id)


def _run_step(context: StepContext, state: DerivedState, config: WorkerConfig, lease: claims.HeldLease):
    """(the step's outcome, None), or (None, (the events of its failure, label))."""
    global _step_in_flight
    try:
        _step_in_flight = True
        with durable_together():  # the step's files are on disk before its result is recorded
            # An executor that meets a database outage (it reads rows) is not failed: it runs again once the
            # database is back, within this claim; steps are deterministic and write the same bytes.
            return claims.retrying(partial(executor_for(context.step), context), giving_up=lease.over,
                                    doing=f"running step {context.step} of job {context.job.job_id}"), None
    except DATABASE_UNREACHABLE:
        raise  # the lease ran out first: the job is recovered as a crashed worker's would be
    except Exception as exc:  # the one catch-all: every other failure becomes an event
        if not isinstance(exc, EXPECTED_FAILURES):
            log.exception("step %s of job %s failed (attempt %s)", context.step, context.job.job_id, state.attempt)
        return None, _failure_events(state, exc, config)
    finally:
        _step_in_flight = False


def _write_outcome(job_id: str, state: DerivedState, outcome: StepOutcome | None, failure, config: WorkerConfig,
                   may_continue: bool, lease: claims.HeldLease):
    """Append the step's outcome (or `failure`: its events and label) as the seq after its STEP_STARTED, the
    fence: (label, events, new state).

    Through a database outage the outcome is kept here and appended again once the database is back, for as
    long as the lease may hold. An append that committed but whose acknowledgment was lost finds its seq taken
    on the next attempt: by our own events, which then count as written."""
    label = "completed" if outcome is not None else failure[1]
    attempts = []  # the events each attempt sent; all but the last one lost their connection

    def append():
        try:
            # With a record to write, it and the result commit together or not at all.
            with transaction.atomic() if outcome is not None and outcome.record else nullcontext():
                if outcome is None:
                    outcome_events, lease_after = failure[0], Lease()
                else:
                    outcome_events, lease_after = _result_events(state, outcome, config, may_continue)
                attempts.append(outcome_events)
                _, after = append_events(job_id=job_id, expected_seq=state.last_seq + 1, events=outcome_events,
                                         state=state, lease=lease_after)
            return label, outcome_events, after
        except Conflict as exc:
            # Taken by an earlier attempt of ours, which committed after all? (All of them send the same events.)
            retried = len(attempts) > 1 and exc.code == "seq_conflict"
            after = _appended_already(job_id, state, attempts[0]) if retried else None
            if after is None:
                raise
            return label, attempts[0], after

    doing = f"writing the outcome of step {state.running_step} of job {job_id}"
    return claims.retrying(append, doing=doing, giving_up=lease.over)


def _appended_already(job_id: str, state: DerivedState, sent: list) -> DerivedState | None:
    """The job's state after `sent` if the events after `state` are these (same type, step and actor: an append
    whose acknowledgment was lost), else None."""
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=state.last_seq).order_by("seq")[:len(sent)])
    if [(row.event_type, row.step, row.actor) for row in rows] != [
        (new.event_type, new.step, new.actor.as_dict()) for new in sent
    ]:
        return None
    for row in rows:
        state = apply_event(state, {"event_type": row.event_type, "step": row.step, "payload": row.payload,
                                    "seq": row.seq, "hash": row.hash})
    return state


def _describe(state: DerivedState, outcome: StepOutcome | None, events) -> str:
    if outcome is None:
        return f"{events[0].payload['error_class']}: {events[0].payload['message']}"[:300]
    if events[0].event_type == EventType.RERUN_COMPLETED:
        return ", ".join(f"{k}={outcome.summary[k]}" for k in ("agent_id", "rerun_id", "changed"))
    if state.status == Status.WAITING_APPROVAL:
        return f"waiting for approval of {state.waiting_step}"
    if state.status == Status.DONE:
        return "job done"
    return ", ".join(f"{k}={v}" for k, v in outcome.summary.items() if isinstance(v, (str, int, float)))[:200]


def run_pass(config: WorkerConfig, *, job_ids=None, max_steps: int | None = None, report=lambda r: None,
             stopping=lambda: False) -> PassSummary:
    """Advance every runnable job until it waits or ends (or `max_steps` steps ran); return what happened.

    Once `stopping()` is true (the worker was asked to stop), no job is claimed and no step is started: the
    step in flight finishes and its result is written, and the pass ends."""
    summary = PassSummary()

    def record(step_report: StepReport):
        summary.steps.append(step_report)
        report(step_report)

    while (max_steps is None or len(summary.steps) < max_steps) and not stopping():
        with bound_contextvars(worker_id=config.worker_id, trace_id=new_trace_id()):  # the claim's STEP_STARTED
            claim = claims.claim_next(worker_id=config.worker_id, lease_seconds=config.lease_seconds,
                                      max_attempts=config.max_attempts, job_ids=job_ids)
        if claim is None:
            break
        if isinstance(claim, claims.Abandoned):
            record(StepReport(claim.job_id, claim.step, "error", 0.0, claim.message))
            continue
        budget = None if max_steps is None else max_steps - len(summary.steps)
        drive(claim, config, budget=budget, report=record, stopping=stopping)
    return summary
