"""Real processes racing for the same job: the expected seq is the lock, so the loser gets Conflict,
never a duplicate, a gap or a crash. See race_child.py for what each child does."""
import json
import subprocess
import time
from pathlib import Path

import pytest

from jobs.models import JobEvent, JobSpec, JobState

from ..conftest import REPO_ROOT
from ..builders import MONTH, a_snapshot, new_blueprint_job, to_runspec_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CHILD = Path(__file__).with_name("race_child.py")
PROCESSES = 8
EVENTS_EACH = 50


def race(python, process_env, barrier: Path, argvs: list[list[str]]) -> list[dict]:
    """Start every child, release them together once all are ready, and collect their JSON reports."""
    children = [
        subprocess.Popen([python, str(CHILD), *argv], cwd=REPO_ROOT, env=process_env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < len(children):
            assert time.monotonic() < deadline, "children did not get ready"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children if c.poll() is not None]
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    reports = []
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def test_concurrent_appends_to_one_job_leave_a_gapless_valid_chain(python, process_env, tmp_path):
    # given a job waiting at its runspec checkpoint (4 events), where rerun requests fit
    job = new_blueprint_job()
    to_runspec_review(job.job_id)

    # when 8 processes each try to append 50 events at the same time, each expecting last seq + 1
    reports = race(
        python, process_env, tmp_path,
        [["append", job.job_id, f"p{n}", str(EVENTS_EACH), str(tmp_path)] for n in range(PROCESSES)],
    )

    # then every attempt either won or lost with Conflict (no other error), and the losers really raced
    assert sum(r["other"] for r in reports) == 0, [r["errors"] for r in reports]
    assert all(r["ok"] + r["conflict"] == EVENTS_EACH for r in reports)
    assert {code for r in reports for code in r["conflict_codes"]} <= {"seq_conflict"}
    assert sum(r["conflict"] for r in reports) > 0, "no conflict at all: the processes did not race"

    # and the job holds exactly the winners' events: seq 1..n without gap or duplicate, one per win
    won = sum(r["ok"] for r in reports)
    seqs = list(JobEvent.objects.filter(job_id=job.job_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, won + 5))
    rerun_ids = list(JobEvent.objects.filter(job_id=job.job_id, seq__gt=4).values_list("payload__rerun_id", flat=True))
    assert len(rerun_ids) == len(set(rerun_ids)) == won
    assert JobState.objects.get(job_id=job.job_id).last_seq == won + 4

    # and the hash chain verifies
    check = subprocess.run([python, "manage.py", "verify_events"], cwd=REPO_ROOT, env=process_env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_concurrent_approvals_of_one_checkpoint_record_exactly_one_decision(python, process_env, tmp_path):
    # given a job submitted by alice, waiting at the runspec checkpoint
    job = new_blueprint_job(submitter="alice")
    to_runspec_review(job.job_id)
    before = JobEvent.objects.filter(job_id=job.job_id).count()

    # when 8 different reviewers approve it at the same moment
    reviewers = [f"reviewer{n}" for n in range(PROCESSES)]
    reports = race(python, process_env, tmp_path, [["approve", job.job_id, name, str(tmp_path)] for name in reviewers])

    # then exactly one approval won and the other 7 got Conflict
    assert sum(r["other"] for r in reports) == 0, [r["errors"] for r in reports]
    assert sum(r["ok"] for r in reports) == 1
    assert sum(r["conflict"] for r in reports) == PROCESSES - 1
    assert {code for r in reports for code in r["conflict_codes"]} <= {"not_waiting", "seq_conflict"}

    # and the log holds one APPROVED event, by the winner, and nothing else new
    approvals = list(JobEvent.objects.filter(job_id=job.job_id, event_type="APPROVED"))
    winner = next(r["name"] for r in reports if r["ok"])
    assert len(approvals) == 1
    assert approvals[0].actor == {"kind": "user", "id": winner}
    assert approvals[0].payload["comment"] == f"approved by {winner}"
    assert JobEvent.objects.filter(job_id=job.job_id).count() == before + 1
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.next_step) == ("queued", "run")


def test_concurrent_submissions_of_the_same_blueprint_create_one_job(python, process_env, tmp_path):
    a_snapshot("demo_snapshot", span=MONTH)

    # when 8 users submit the same blueprint at the same moment
    reports = race(python, process_env, tmp_path,
                   [["submit", "-", f"user{n}", str(tmp_path)] for n in range(PROCESSES)])

    # then all of them get the same job, exactly one of them created it, and it has one submit event
    assert sum(r["other"] for r in reports) == 0, [r["errors"] for r in reports]
    assert len({r["job_id"] for r in reports}) == 1
    assert sum(r["created"] for r in reports) == 1
    job = JobSpec.objects.get()
    assert job.submitted_by == next(r["name"] for r in reports if r["created"])
    assert list(JobEvent.objects.values_list("job_id", "seq", "event_type")) == [
        (job.job_id, 1, "BLUEPRINT_SUBMITTED")
    ]
