"""A step's limits, in real worker processes: a hung step is failed at its time limit while its process still
runs it, and a job cancelled while its registry step runs keeps no registry row."""
import time

import pytest

from jobs import services
from jobs.events import Actor
from jobs.models import JobEvent, JobState
from research.models import RegistryEntry

from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, approve_waiting, submitted
from .conftest import start_run_jobs

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout}s for {what}")


def test_a_hung_step_is_failed_at_its_time_limit_while_its_process_still_runs_it(process_env):
    # given a compile step that hangs for 6 s in a worker process, with a time limit of 1 s for compile
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    env = dict(process_env, EAM_STEP_EXECUTORS="compile=tests.workflow.instrumented.slow",
               EAM_TEST_SLOW_SECONDS="6", EAM_STEP_TIMEOUTS="compile=1")

    # when the worker runs it
    worker = start_run_jobs(env, "--once", "--job", job.job_id, "--worker-id", "w-hung")
    try:
        failed = wait_for(lambda: JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_FAILED").first(),
                          timeout=15, what="the timeout")

        # then the step is failed as timeout at its limit, while the process is still inside the step, and
        # the lease is released at once: the job is free for another worker
        assert worker.poll() is None, "the step should still be running"
        started = JobEvent.objects.get(job_id=job.job_id, event_type="STEP_STARTED")
        assert 1.0 <= (failed.recorded_at - started.recorded_at).total_seconds() < 4.0
        assert (failed.payload["error_class"], failed.payload["retryable"]) == ("timeout", True)
        state = JobState.objects.get(job_id=job.job_id)
        assert (state.status, state.lease_owner) == ("queued", None)
    finally:
        out, err = worker.communicate(timeout=60)

    # and the hung step's late result is refused; the worker exits 0
    assert worker.returncode == 0, err
    assert "fenced" in out and "timed out" in out, out
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="RUNSPEC_COMPILED").exists()


def test_a_job_cancelled_while_a_worker_process_runs_its_registry_step_keeps_no_registry_row(process_env):
    # given a job approved and run up to its registry step, which takes 3 s in a worker process
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    assert start_run_jobs(process_env, "--once", "--job", job.job_id).wait(timeout=120) == 0
    approve_waiting([job.job_id])
    env = dict(process_env, EAM_STEP_EXECUTORS="registry=tests.workflow.instrumented.slow",
               EAM_TEST_SLOW_SECONDS="3")
    worker = start_run_jobs(env, "--once", "--job", job.job_id, "--worker-id", "w-registry")
    try:
        wait_for(lambda: JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED",
                                                 step="registry").exists(), timeout=60, what="the registry step")

        # when an operator cancels the job while that step runs
        services.cancel(job_id=job.job_id, actor=Actor.user("otto"), reason="cancelled while registry ran")
    finally:
        out, err = worker.communicate(timeout=60)

    # then the step's result is fenced, and neither its event nor its registry row was written
    assert worker.returncode == 0, err
    assert "fenced" in out, out
    assert JobState.objects.get(job_id=job.job_id).status == "cancelled"
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="REGISTRY_UPDATED").exists()
    assert not RegistryEntry.objects.filter(job_id=job.job_id).exists()
