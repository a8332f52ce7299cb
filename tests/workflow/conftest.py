"""Builders for engine tests: a tiny snapshot, blueprints, users, and the worker as a child process."""
import json
import subprocess
from pathlib import Path

import pytest

from jobs import services
from jobs.events import Actor
from research.demo_data import demo_csv
from research.snapshots import ingest_csv

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_SNAPSHOT = "tiny_snap"
SUBMITTER, REVIEWER = Actor("user", "sam-submitter"), Actor("user", "rita-reviewer")


def ingest_tiny(snapshot_id: str = TINY_SNAPSHOT):
    """Two symbols, four years: warm-up, two walk-forward test years and a holdout year."""
    data = demo_csv(snapshot_id, symbols=("AAA", "BBB"), start="2019-01-01", end="2023-01-01")
    return ingest_csv(snapshot_id=snapshot_id, data=data, source="tests")


def blueprint(family="buy_and_hold", params=None, symbols=("AAA", "BBB"), name="test blueprint") -> dict:
    return {
        "schema_version": "blueprint_v1",
        "name": name,
        "strategy": {"family": family, "params": params or {}},
        "universe": {"symbols": list(symbols)},
        "costs": {"fee_bps": 5, "slippage_bps": 5},
        "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
    }


def submit(bp=None, snapshot_id=TINY_SNAPSHOT):
    job, _ = services.submit_blueprint(blueprint=bp or blueprint(), snapshot_id=snapshot_id, actor=SUBMITTER)
    return job


def approve_waiting(job_ids):
    from jobs.models import JobState

    for state in JobState.objects.filter(job_id__in=job_ids, status="waiting_approval"):
        services.approve(job_id=state.job_id, step=state.waiting_step, actor=REVIEWER)


@pytest.fixture
def tiny_snapshot(db):
    return ingest_tiny()


def run_jobs(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_python(), "manage.py", "run_jobs", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def start_run_jobs(env, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [_python(), "manage.py", "run_jobs", *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def _python():
    import sys

    return sys.executable


def executions(log_path: Path) -> list[tuple[str, str]]:
    """(job_id, step) per recorded execution."""
    if not log_path.exists():
        return []
    return [tuple(line.split()[:2]) for line in log_path.read_text().splitlines() if line.strip()]


def events_of(job_id: str) -> list[str]:
    from jobs.models import JobEvent

    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("event_type", flat=True))


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
