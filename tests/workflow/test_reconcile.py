"""`manage.py reconcile`: expired leases released by an event, drift repaired, stale queued jobs and changed, missing
or unrecorded artifacts reported; exit 1 when a person must look, and a second run changes nothing."""
import io
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models.functions import Now

from jobs import events
from jobs.errors import Conflict
from jobs.events import now
from jobs.models import JobEvent, JobState
from jobs.reruns import request_rerun
from workflow.orchestrator import run_pass
from workflow.reconcile import _release

from ..builders import (
    SNAPSHOT, SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, an_idea_job_at, append,
    done_job_with_run, failed, idea_worker, make_people, rerun, running_job, store_snapshot, submitted, waiting_job,
)
from .conftest import REPO_ROOT, a_run_killed_mid_step, events_of, run_jobs, start_run_jobs


def reconcile(*args) -> tuple[int, list[str]]:
    """(exit code, report lines) of `manage.py reconcile` in this process."""
    out = io.StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, out.getvalue().splitlines()


def reconcile_process(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "reconcile", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def snapshot(artifact_root):
    """The snapshot builder jobs are submitted on, in the test's own artifact root."""
    return a_snapshot(SNAPSHOT)


def lease_lost(job_id: str, owner: str = "ghost") -> None:
    """The job's worker is gone: its lease ended a minute ago."""
    JobState.objects.filter(job_id=job_id).update(lease_owner=owner, lease_expires_at=now() - timedelta(minutes=1))


def section(lines: list[str], title: str) -> list[str]:
    """The finding lines under the section whose heading starts with `title`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {title}"))
    found = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        found.append(line.strip())
    return found


# --- in real processes: a worker killed mid-step, an artifact altered on disk ----------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_and_an_altered_artifact_are_reported_and_the_lease_released(artifact_root, process_env,
                                                                                       tmp_path):
    # given a job whose run step's worker was killed (2 s lease), and a recorded input changed on disk since
    job = a_run_killed_mid_step(process_env, tmp_path / "executions.log")
    altered = f"jobs/{job.job_id}/inputs/blueprint.json"
    recorded = JobEvent.objects.get(job_id=job.job_id, event_type="RUNSPEC_COMPILED")
    expected_sha = next(a["sha256"] for a in recorded.payload["artifacts"] if a["path"] == altered)
    (artifact_root / altered).write_bytes(b'{"changed": true}\n')
    time.sleep(2.5)

    # when the reconciler runs
    first = reconcile_process(process_env, "--worker-id", "reconciler")

    # then it released the lease with a retryable STEP_FAILED, and exits 1 because of the altered file
    assert first.returncode == 1, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    [released] = section(lines, "Expired leases")
    assert released.startswith(f"{job.job_id}  run attempt 1: worker victim lost its lease (expired ")
    assert released.endswith("released, to retry")
    [changed] = section(lines, "Recorded artifacts missing or changed")
    assert changed.startswith(f"{altered}  job {job.job_id} seq {recorded.seq}: changed (expected sha256 {expected_sha}")
    assert "== Files no event records" not in first.stdout
    last = JobEvent.objects.filter(job_id=job.job_id).order_by("-seq").first()
    assert (last.event_type, last.step, last.actor) == ("STEP_FAILED", "run", {"kind": "worker", "id": "reconciler"})
    assert last.payload["error_class"] == "LeaseExpired" and last.payload["retryable"] is True
    assert last.payload["attempt"] == 1 and last.payload["retry_at"] is not None
    assert "victim" in last.payload["message"]
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.lease_owner, state.lease_expires_at) == ("queued", None, None)

    # when it runs again right away, then it reports the same file, nothing new, and appends nothing
    before = store_snapshot()
    second = reconcile_process(process_env, "--worker-id", "reconciler")
    assert second.returncode == 1
    assert "== Expired leases" not in second.stdout
    assert section(second.stdout.splitlines(), "Recorded artifacts missing or changed") == [changed]
    assert store_snapshot() == before

    # and a later pass finishes the job: the run step once more, as attempt 2
    rescue = run_jobs(process_env, "--once", "--worker-id", "rescuer")
    assert rescue.returncode == 0, rescue.stderr
    assert JobState.objects.get(job_id=job.job_id).status == "done"
    starts = JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED", step="run").order_by("seq")
    assert [(e.payload["worker"], e.payload["attempt"]) for e in starts] == [("victim", 1), ("rescuer", 2)]
    assert events_of(job.job_id).count("RUN_COMPLETED") == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_loop_worker_releases_expired_leases_every_period(artifact_root, process_env, request):
    # given a job whose worker is gone, and a loop worker that claims only another job
    a_snapshot(TINY_SNAPSHOT)
    a_snapshot(SNAPSHOT)
    lost = running_job(SUBMITTER, "lost")
    lease_lost(lost.job_id)
    other = submitted(SUBMITTER, "other", **TINY_RUN)
    env = dict(process_env, EAM_RECONCILE_SECONDS="0.2")
    worker = start_run_jobs(env, "--interval", "0.1", "--worker-id", "looper", "--job", other.job_id)

    def stop():
        if worker.poll() is None:
            worker.terminate()
            worker.communicate(timeout=60)
    request.addfinalizer(stop)

    # when it has run for a few periods, then it released the lease with an event, once
    deadline = time.monotonic() + 60
    while events_of(lost.job_id)[-1] != "STEP_FAILED" and time.monotonic() < deadline:
        time.sleep(0.1)
    stop()
    assert worker.returncode == 0
    released = JobEvent.objects.get(job_id=lost.job_id, event_type="STEP_FAILED")
    assert released.actor == {"kind": "worker", "id": "looper"}
    assert released.payload["error_class"] == "LeaseExpired"
    assert events_of(lost.job_id).count("STEP_FAILED") == 1


# --- in process ------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_clean_store_is_one_line_and_exit_0(artifact_root):
    done_job_with_run(SUBMITTER)
    before = store_snapshot()

    code, lines = reconcile()

    assert code == 0
    assert len(lines) == 1 and lines[0].startswith("clean: 1 job(s), no expired lease, no drift, no stale job, ")
    assert "recorded file(s) re-hashed and intact, no unrecorded file" in lines[0]
    assert store_snapshot() == before


@pytest.mark.django_db
def test_an_idea_job_with_its_children_and_a_rerun_is_clean(artifact_root):
    # given an idea job run to its end (prompt pins, agents' files, a dossier, children queued), and a rerun of its
    # report, which writes the derived rerun_log.jsonl and rerun_state.json
    a_snapshot(TINY_SNAPSHOT)
    people = make_people()
    job_id = an_idea_job_at("done", people)
    request_rerun(job_id=job_id, agent_id="report", actor=events.Actor.user(people.reviewer.username),
                  reason="once more")
    run_pass(idea_worker(), job_ids=[job_id])
    assert (artifact_root / "jobs" / job_id / "outputs" / "reruns" / "rerun_state.json").is_file()

    code, lines = reconcile()

    assert (code, len(lines)) == (0, 1), lines
    assert "no unrecorded file" in lines[0]


@pytest.mark.django_db
def test_an_expired_lease_is_released_and_the_run_needs_no_person(artifact_root, snapshot):
    # given a job whose compile step's worker is gone
    job = running_job(SUBMITTER)
    lease_lost(job.job_id, "ghost")

    code, lines = reconcile("--worker-id", "rec")

    # then a retryable STEP_FAILED released it, exit 0: an action taken, nothing for a person
    assert code == 0
    [line] = section(lines, "Expired leases")
    assert line.startswith(f"{job.job_id}  compile attempt 1: worker ghost lost its lease")
    assert lines[-1].startswith("nothing needs a person")
    assert events_of(job.job_id)[-1] == "STEP_FAILED"
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.lease_owner, state.attempt) == ("queued", None, 1)

    # when it runs again, then nothing is released twice
    before = store_snapshot()
    assert reconcile("--worker-id", "rec")[0] == 0
    assert store_snapshot() == before


@pytest.mark.django_db
def test_an_expired_lease_with_no_attempt_left_ends_in_error_as_a_claim_would(artifact_root, snapshot, settings):
    settings.EAM_MAX_ATTEMPTS = 1
    job = running_job(SUBMITTER)
    lease_lost(job.job_id, "ghost")

    code, lines = reconcile("--worker-id", "rec")

    assert code == 0
    assert section(lines, "Expired leases")[0].endswith("released, error")
    error = JobEvent.objects.filter(job_id=job.job_id).order_by("-seq").first()
    assert (error.event_type, error.step, error.payload["error_class"]) == ("ERROR", "compile", "LeaseExpired")
    assert "last worker ghost" in error.payload["message"]
    assert JobState.objects.get(job_id=job.job_id).status == "error"


@pytest.mark.django_db
def test_an_expired_rerun_lease_is_released_in_the_rerun_lane(artifact_root, snapshot):
    # given a job waiting at its checkpoint whose agent rerun's worker is gone
    job = waiting_job(SUBMITTER)
    append(job.job_id, rerun("lane", 1),
           events.step_started(step="rerun", worker_id="ghost", attempt=1, lease_expires_at=now(),
                               rerun={"agent_id": "lane-1", "rerun_id": "lane-1"}))
    lease_lost(job.job_id)

    _, lines = reconcile("--worker-id", "rec")

    # then the rerun failed retryably and waits for a worker again; the job still waits at its checkpoint
    [line] = section(lines, "Expired leases")
    assert line.startswith(f"{job.job_id}  rerun attempt 1: worker ghost lost its lease")
    released = JobEvent.objects.filter(job_id=job.job_id).order_by("-seq").first()
    assert (released.event_type, released.step, released.payload["retryable"]) == ("STEP_FAILED", "rerun", True)
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.reruns[0]["running"], state.lease_owner) == ("waiting_approval", False, None)


@pytest.mark.django_db
def test_a_worker_that_comes_back_first_wins_and_the_release_records_nothing(artifact_root, snapshot):
    # given the reconciler read an expired lease, and the lost worker recorded its step's outcome meanwhile
    job = running_job(SUBMITTER)
    lease_lost(job.job_id, "slowpoke")
    row = JobState.objects.annotate(database_time=Now()).get(job_id=job.job_id)
    append(job.job_id, failed("compile", 1))
    before = store_snapshot()

    # when the release is appended, then the fence refuses it and nothing is written
    with pytest.raises(Conflict):
        _release(row, worker_id="rec", max_attempts=3)
    assert store_snapshot() == before


@pytest.mark.django_db
def test_a_live_lease_is_left_alone(artifact_root, snapshot):
    job = running_job(SUBMITTER)
    JobState.objects.filter(job_id=job.job_id).update(lease_owner="alive", lease_expires_at=now() + timedelta(minutes=5))
    before = store_snapshot()

    code, lines = reconcile()

    assert code == 0 and lines[0].startswith("clean:")
    assert store_snapshot() == before


@pytest.mark.django_db
def test_drift_is_repaired_and_needs_a_person(artifact_root):
    job = done_job_with_run(SUBMITTER)
    JobState.objects.filter(job_id=job.job_id).update(status="error", attempt=7)

    code, lines = reconcile()

    assert code == 1
    assert section(lines, "Projection drift") == [
        f"job {job.job_id}: status: stored 'error', events say 'done'",
        f"job {job.job_id}: attempt: stored 7, events say 0",
    ]
    assert JobState.objects.get(job_id=job.job_id).status == "done"
    code, lines = reconcile()
    assert code == 0 and lines[0].startswith("clean:")


@pytest.mark.django_db
def test_a_bundle_exported_into_the_jobs_own_folder_is_not_an_unrecorded_file(artifact_root, settings):
    # given a done job exported to the default root, its folder in the artifact storage (the original layout)
    job = done_job_with_run(SUBMITTER)
    settings.EAM_JOB_ROOT = str(artifact_root / "jobs")
    call_command("export_job", job.job_id, stdout=io.StringIO())
    assert (artifact_root / "jobs" / job.job_id / "events.jsonl").is_file()
    assert (artifact_root / "jobs" / job.job_id / "dossier" / "metrics.json").is_file()

    # then the reconciler finds the store clean; a file that is not the export's is still reported
    code, lines = reconcile()
    assert (code, len(lines)) == (0, 1), lines
    (artifact_root / "jobs" / job.job_id / "notes.txt").write_text("by hand\n")
    code, lines = reconcile()
    assert code == 1 and section(lines, "Files no event records") == [
        f"jobs/{job.job_id}/notes.txt: recorded by no event of job {job.job_id} (done)"]


@pytest.mark.django_db
def test_missing_and_unrecorded_files_are_listed(artifact_root):
    # given a done job: one of its recorded files deleted, and a file no event records put in its folder
    job = done_job_with_run(SUBMITTER)
    gone = f"jobs/{job.job_id}/outputs/runspec.json"
    (artifact_root / gone).unlink()
    stray = artifact_root / "jobs" / job.job_id / "outputs" / "notes.txt"
    stray.write_text("left here by hand\n")
    orphan = artifact_root / "jobs" / "0123456789ab" / "job_spec.json"
    orphan.parent.mkdir()
    orphan.write_text("{}\n")
    derived = artifact_root / "jobs" / job.job_id / "outputs" / "reruns" / "rerun_state.json"
    derived.parent.mkdir()
    derived.write_text("{}\n")
    before = store_snapshot()

    code, lines = reconcile()

    assert code == 1
    [missing] = section(lines, "Recorded artifacts missing or changed")
    assert missing.startswith(f"{gone}  job {job.job_id} seq ") and ": missing (expected sha256 " in missing
    assert section(lines, "Files no event records") == [
        "jobs/0123456789ab/job_spec.json: no job 0123456789ab in the database",
        f"jobs/{job.job_id}/outputs/notes.txt: recorded by no event of job {job.job_id} (done)",
    ]
    assert store_snapshot() == before


@pytest.mark.django_db
def test_files_of_a_step_due_are_noted_without_a_person(artifact_root, snapshot):
    job = running_job(SUBMITTER)
    JobState.objects.filter(job_id=job.job_id).update(lease_owner="alive", lease_expires_at=now() + timedelta(minutes=5))
    written = artifact_root / "jobs" / job.job_id / "outputs" / "runspec.json"
    written.parent.mkdir(parents=True)
    written.write_text("{}\n")

    code, lines = reconcile()

    assert code == 0
    assert section(lines, "Files not recorded yet") == [
        f"jobs/{job.job_id}/outputs/runspec.json: job {job.job_id} has step compile due or running"]


@pytest.mark.django_db
def test_a_job_queued_too_long_is_reported_and_left_as_it_is(artifact_root, snapshot):
    job = submitted(SUBMITTER, "waits")
    JobState.objects.filter(job_id=job.job_id).update(updated_at=now() - timedelta(hours=2))
    before = store_snapshot()

    code, lines = reconcile()

    assert code == 1
    [line] = section(lines, "Queued and not claimed for more than 3600s")
    assert line.startswith(f"{job.job_id}  compile due since ") and line.endswith("s), not claimed")
    assert store_snapshot() == before
    assert reconcile("--stale-after", "86400")[0] == 0


@pytest.mark.django_db
def test_sample_rehashes_n_files_drawn_at_random(artifact_root):
    done_job_with_run(SUBMITTER)

    code, lines = reconcile("--sample", "2", "--seed", "7")

    assert code == 0
    assert "2 of " in lines[0] and "recorded file(s) re-hashed (a random sample)" in lines[0]
    with pytest.raises(CommandError, match="--sample must be at least 1"):
        call_command("reconcile", "--sample", "0", stdout=io.StringIO())
