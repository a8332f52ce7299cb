"""A child process of tests/jobs/test_races.py: races other children on one job and prints its counts as JSON.

    race_child.py append  JOB_ID NAME COUNT BARRIER_DIR   append COUNT neutral events, expected seq = last read + 1
    race_child.py approve JOB_ID NAME BARRIER_DIR          approve the runspec checkpoint as user NAME
    race_child.py submit  -      NAME BARRIER_DIR          submit one fixed blueprint as user NAME

Every child writes BARRIER_DIR/ready-NAME once Django is up, then waits for BARRIER_DIR/go, so that all
of them start at the same moment. Settings come from DJANGO_SETTINGS_MODULE and DATABASE_URL.
"""
import json
import sys
import time
from pathlib import Path

import django


def wait_at_barrier(barrier: Path, name: str) -> None:
    (barrier / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while not (barrier / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: no go signal")
        time.sleep(0.001)


def race_append(job_id: str, name: str, count: int, barrier: Path) -> dict:
    from jobs.events import Actor
    from jobs.errors import Conflict
    from jobs.events import NewEvent, append_event
    from jobs.models import JobState
    from jobs.pipelines import EventType

    counts = {"ok": 0, "conflict": 0, "other": 0, "conflict_codes": [], "errors": []}
    wait_at_barrier(barrier, name)
    for i in range(count):
        last = JobState.objects.values_list("last_seq", flat=True).get(job_id=job_id)
        event = NewEvent(EventType.RERUN_REQUESTED, Actor.worker(name), step="rerun",
                         payload={"agent_id": f"{name}-{i}", "rerun_id": f"{name}-{i}"})
        try:
            append_event(job_id=job_id, expected_seq=last + 1, event=event)
        except Conflict as exc:
            counts["conflict"] += 1
            counts["conflict_codes"].append(exc.code)
        except Exception as exc:  # the test asserts there is none; report it instead of dying
            counts["other"] += 1
            counts["errors"].append(repr(exc))
        else:
            counts["ok"] += 1
    counts["conflict_codes"] = sorted(set(counts["conflict_codes"]))
    return counts


def race_approve(job_id: str, name: str, barrier: Path) -> dict:
    from jobs import services
    from jobs.events import Actor
    from jobs.errors import Conflict

    counts = {"ok": 0, "conflict": 0, "other": 0, "conflict_codes": [], "errors": []}
    wait_at_barrier(barrier, name)
    try:
        services.approve(job_id=job_id, step="runspec", actor=Actor("user", name), comment=f"approved by {name}")
    except Conflict as exc:
        counts["conflict"] += 1
        counts["conflict_codes"].append(exc.code)
    except Exception as exc:
        counts["other"] += 1
        counts["errors"].append(repr(exc))
    else:
        counts["ok"] += 1
    return counts


def race_submit(name: str, barrier: Path) -> dict:
    from jobs import services
    from jobs.events import Actor
    from tests.builders import BARE, a_blueprint

    blueprint = a_blueprint(base=BARE)
    counts = {"ok": 0, "conflict": 0, "other": 0, "conflict_codes": [], "errors": [], "created": 0, "job_id": None}
    wait_at_barrier(barrier, name)
    try:
        job, created = services.submit_blueprint(blueprint=blueprint, actor=Actor("user", name),
                                                 snapshot_id="demo_snapshot")
    except Exception as exc:
        counts["other"] += 1
        counts["errors"].append(repr(exc))
    else:
        counts.update(ok=1, created=int(created), job_id=job.job_id)
    return counts


def main(argv: list[str]) -> None:
    django.setup()
    mode, job_id, name = argv[1], argv[2], argv[3]
    if mode == "append":
        counts = race_append(job_id, name, int(argv[4]), Path(argv[5]))
    elif mode == "approve":
        counts = race_approve(job_id, name, Path(argv[4]))
    elif mode == "submit":
        counts = race_submit(name, Path(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"name": name, **counts}), flush=True)


if __name__ == "__main__":
    main(sys.argv)
