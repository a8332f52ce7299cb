"""The blueprint pipeline end to end, in process: one pass to the checkpoint, approval, one pass to DONE."""
import pytest
from django.core.management import call_command

from contracts import sha256_hex
from jobs.audit import verify_events
from jobs.models import JobEvent, JobState
from research.artifacts import read_artifact
from workflow.orchestrator import WorkerConfig, run_pass

from ..builders import REVIEWER, SUBMITTER, TINY_RUN, approve_waiting, submitted
from .conftest import events_of

BLUEPRINT_EVENTS = [
    "BLUEPRINT_SUBMITTED",
    "STEP_STARTED", "RUNSPEC_COMPILED", "WAITING_APPROVAL",
    "APPROVED",
    "STEP_STARTED", "RUN_COMPLETED",
    "STEP_STARTED", "GATES_COMPLETED",
    "STEP_STARTED", "REGISTRY_UPDATED", "DONE",
]


def worker(name="w-test"):
    return WorkerConfig(worker_id=name, lease_seconds=600, max_attempts=3, retry_backoff_seconds=0)


@pytest.mark.django_db
def test_blueprint_reaches_checkpoint_waits_then_done_after_approval(tiny_snapshot):
    # given a submitted blueprint
    job = submitted(SUBMITTER, **TINY_RUN)
    # when one pass runs, then it waits at the runspec checkpoint
    first = run_pass(worker())
    assert [s.step for s in first.steps] == ["compile"]
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.waiting_step) == ("waiting_approval", "runspec")
    assert state.lease_owner is None and state.lease_expires_at is None
    # a second pass does not move it
    assert run_pass(worker()).steps == []
    assert JobEvent.objects.filter(job_id=job.job_id).count() == 4
    # after approval one more pass finishes it
    approve_waiting([job.job_id])
    third = run_pass(worker())
    assert [s.step for s in third.steps] == ["run", "gates", "registry"]
    state.refresh_from_db()
    assert state.status == "done"
    assert events_of(job.job_id) == BLUEPRINT_EVENTS
    assert verify_events([job.job_id]) == (1, [])


@pytest.mark.django_db
def test_every_recorded_artifact_matches_its_file(tiny_snapshot):
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    run_pass(worker())
    recorded = [
        artifact
        for payload in JobEvent.objects.filter(job_id=job.job_id).values_list("payload", flat=True)
        for artifact in payload.get("artifacts", [])
    ]
    paths = {a["path"] for a in recorded}
    assert {f"jobs/{job.job_id}/outputs/runspec.json", f"jobs/{job.job_id}/outputs/gate_results.json",
            f"jobs/{job.job_id}/outputs/policy_bundle_ref.json", f"jobs/{job.job_id}/job_spec.json"} <= paths
    for artifact in recorded:
        data = read_artifact(artifact["path"])
        assert sha256_hex(data) == artifact["sha256"], artifact["path"]
        assert len(data) == artifact["bytes"]
    waiting = JobEvent.objects.get(job_id=job.job_id, event_type="WAITING_APPROVAL")
    runspec = read_artifact(f"jobs/{job.job_id}/outputs/runspec.json")
    assert waiting.payload["artifact_sha256"] == sha256_hex(runspec)
    approved = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVED")
    assert approved.payload["artifact_sha256"] == sha256_hex(runspec)
    assert approved.actor == {"kind": "user", "id": REVIEWER.id}


@pytest.mark.django_db
def test_max_steps_stops_the_pass_and_the_next_pass_goes_on(tiny_snapshot):
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    assert [s.step for s in run_pass(worker(), max_steps=1).steps] == ["run"]
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.next_step, state.lease_owner) == ("queued", "gates", None)
    assert [s.step for s in run_pass(worker()).steps] == ["gates", "registry"]


@pytest.mark.django_db
def test_job_filter_runs_only_the_named_jobs(tiny_snapshot):
    one, two = submitted(SUBMITTER, "one", **TINY_RUN), submitted(SUBMITTER, "two", **TINY_RUN)
    summary = run_pass(worker(), job_ids=[two.job_id])
    assert {s.job_id for s in summary.steps} == {two.job_id}
    assert JobState.objects.get(job_id=one.job_id).status == "queued"


@pytest.mark.django_db
def test_run_jobs_command_prints_a_line_per_step_and_a_summary(tiny_snapshot, capsys):
    job = submitted(SUBMITTER, **TINY_RUN)
    call_command("run_jobs", "--once", "--worker-id", "cmd-worker")
    out = capsys.readouterr().out
    assert f"{job.job_id}  compile" in out
    assert "waiting for approval of runspec" in out
    assert "pass by cmd-worker: 1 step(s), 1 completed" in out
    started = JobEvent.objects.get(job_id=job.job_id, event_type="STEP_STARTED")
    assert started.payload["worker"] == "cmd-worker" and started.payload["attempt"] == 1


@pytest.mark.django_db
def test_jobs_are_advanced_in_submission_order(tiny_snapshot):
    jobs = [submitted(SUBMITTER, f"order {i}", **TINY_RUN) for i in range(4)]
    summary = run_pass(worker())
    assert [s.job_id for s in summary.steps] == [j.job_id for j in jobs]


@pytest.mark.django_db
def test_two_jobs_with_the_same_runspec_share_one_run(tiny_snapshot):
    a, b = submitted(SUBMITTER, "first name", **TINY_RUN), submitted(SUBMITTER, "second name", **TINY_RUN)
    assert a.job_id != b.job_id
    run_pass(worker())
    approve_waiting([a.job_id, b.job_id])
    run_pass(worker())
    run_ids = {e.payload["summary"]["run_id"] for e in JobEvent.objects.filter(event_type="RUNSPEC_COMPILED")}
    assert len(run_ids) == 1
    assert JobState.objects.filter(status="done").count() == 2
