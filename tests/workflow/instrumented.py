"""Test-only step executors, wired in through EAM_STEP_EXECUTORS in worker processes.

`recording(step)` runs the real executor and appends one line per execution to the file named by
EAM_TEST_EXECUTION_LOG (O_APPEND writes of one short line are atomic), so a test can count executions.
`slow` sleeps EAM_TEST_SLOW_SECONDS before running the real step (a worker can be killed mid-step).
`crashing` always raises an unexpected error.
"""
import os
import time

from workflow.orchestrator import DEFAULT_EXECUTORS, StepContext, StepOutcome
from django.utils.module_loading import import_string


def _record(context: StepContext) -> None:
    path = os.environ.get("EAM_TEST_EXECUTION_LOG")
    if path:
        line = f"{context.job.job_id} {context.step} {context.attempt} {os.getpid()}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _real(context: StepContext) -> StepOutcome:
    return import_string(DEFAULT_EXECUTORS[context.step])(context)


def recording(context: StepContext) -> StepOutcome:
    _record(context)
    return _real(context)


def slow(context: StepContext) -> StepOutcome:
    _record(context)
    time.sleep(float(os.environ.get("EAM_TEST_SLOW_SECONDS", "5")))
    return _real(context)


class Unexpected(RuntimeError):
    """Stands for a bug or an outage: not a research or domain error."""


def crashing(context: StepContext) -> StepOutcome:
    _record(context)
    raise Unexpected(f"boom in {context.step} (attempt {context.attempt})")


def noop(context: StepContext) -> StepOutcome:
    """Returns at once: what runs is the engine alone (claim, lease, events)."""
    return StepOutcome(summary={"noop": context.step})


def cancelled_meanwhile(context: StepContext) -> StepOutcome:
    """Runs the real step, and an operator cancels the job before the step's result is written."""
    from jobs import services
    from jobs.events import Actor

    outcome = _real(context)
    services.cancel(job_id=context.job.job_id, actor=Actor.user("otto"), reason="cancelled while the step ran")
    return outcome


def slow_after(context: StepContext) -> StepOutcome:
    """Runs the real step (its files are written), records it, then sleeps before its result is appended: a worker
    killed now dies between writing and recording."""
    outcome = _real(context)
    _record(context)
    time.sleep(float(os.environ.get("EAM_TEST_SLOW_SECONDS", "5")))
    return outcome
