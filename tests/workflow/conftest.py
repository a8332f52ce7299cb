"""Fixtures and helpers of the engine tests: a tiny snapshot, the worker as a child process, what it recorded.
The builders are in tests/builders/."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..builders import TINY_SNAPSHOT, a_snapshot
from ..conftest import REPO_ROOT


@pytest.fixture
def tiny_snapshot(db):
    return a_snapshot(TINY_SNAPSHOT)


def run_jobs(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "run_jobs", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def start_run_jobs(env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_jobs", *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def kill_once_executed(env, log_path: Path, expected: list, *args) -> None:
    """Start `run_jobs *args`, wait until its execution log holds `expected` ((job_id, step) per execution), then
    SIGKILL it and wait for it to be gone."""
    victim = start_run_jobs(env, *args)
    deadline = time.monotonic() + 60
    while not executions(log_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executions(log_path) == expected, "the step never started"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)


def a_run_killed_mid_step(env, log_path: Path):
    """A tiny blueprint job, approved, whose run step's worker (`victim`, a 2 s lease) was killed mid-step."""
    from ..builders import SUBMITTER, TINY_RUN, approve_waiting, submitted

    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    assert run_jobs(env, "--once").returncode == 0
    approve_waiting([job.job_id])
    slow_env = dict(env, EAM_STEP_EXECUTORS="run=tests.workflow.instrumented.slow",
                    EAM_TEST_EXECUTION_LOG=str(log_path), EAM_TEST_SLOW_SECONDS="60")
    kill_once_executed(slow_env, log_path, [(job.job_id, "run")], "--once", "--worker-id", "victim",
                       "--lease-seconds", "2")
    return job


def executions(log_path: Path) -> list[tuple[str, str]]:
    """(job_id, step) per recorded execution."""
    if not log_path.exists():
        return []
    return [tuple(line.split()[:2]) for line in log_path.read_text().splitlines() if line.strip()]


def events_of(job_id: str) -> list[str]:
    from jobs.models import JobEvent

    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("event_type", flat=True))
