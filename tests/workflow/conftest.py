"""Fixtures and helpers of the engine tests: a tiny snapshot, the worker as a child process, what it recorded.
The builders are in tests/builders/."""
import subprocess
import sys
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


def executions(log_path: Path) -> list[tuple[str, str]]:
    """(job_id, step) per recorded execution."""
    if not log_path.exists():
        return []
    return [tuple(line.split()[:2]) for line in log_path.read_text().splitlines() if line.strip()]


def events_of(job_id: str) -> list[str]:
    from jobs.models import JobEvent

    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("event_type", flat=True))
