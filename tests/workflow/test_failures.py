"""Failures: unexpected errors are retried up to the limit, expected ones go to ERROR at once; retry recovers."""
import os

import pytest

from jobs import services
from jobs.events import Actor
from jobs.models import JobEvent, JobState
from research.artifacts import artifact_storage
from research.snapshots import data_path
from workflow.orchestrator import WorkerConfig, run_pass

from ..builders import SUBMITTER, TINY_RUN, a_snapshot, submitted
from .conftest import events_of, executions

OPERATOR = Actor("user", "olga-operator")


def worker(max_attempts=3):
    return WorkerConfig(worker_id="w-fail", lease_seconds=600, max_attempts=max_attempts, retry_backoff_seconds=0)


@pytest.mark.django_db
def test_unexpected_error_is_retried_up_to_the_limit_then_error(tiny_snapshot, settings, tmp_path, monkeypatch):
    log = tmp_path / "executions.log"
    monkeypatch.setenv("EAM_TEST_EXECUTION_LOG", str(log))
    settings.EAM_STEP_EXECUTORS = {"compile": "tests.workflow.instrumented.crashing"}
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker(max_attempts=3))
    assert len(executions(log)) == 3
    assert events_of(job.job_id) == [
        "BLUEPRINT_SUBMITTED",
        "STEP_STARTED", "STEP_FAILED", "STEP_STARTED", "STEP_FAILED", "STEP_STARTED", "STEP_FAILED", "ERROR",
    ]
    failed = JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_FAILED").order_by("seq")
    assert [e.payload["attempt"] for e in failed] == [1, 2, 3]
    assert [e.payload["retryable"] for e in failed] == [True, True, False]
    assert failed[0].payload["error_class"] == "Unexpected"
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "error" and state.error["error_class"] == "Unexpected"
    # and an ERROR job is not picked up again
    assert run_pass(worker()).steps == []


@pytest.mark.django_db
def test_retry_waits_for_the_backoff(tiny_snapshot, settings):
    settings.EAM_STEP_EXECUTORS = {"compile": "tests.workflow.instrumented.crashing"}
    job = submitted(SUBMITTER, **TINY_RUN)
    config = WorkerConfig(worker_id="w", lease_seconds=600, max_attempts=3, retry_backoff_seconds=3600)
    summary = run_pass(config)
    assert [s.outcome for s in summary.steps] == ["failed_will_retry"]
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "queued" and state.available_at is not None
    assert run_pass(config).steps == []


@pytest.mark.django_db
def test_invalid_blueprint_goes_to_error_with_the_compiler_message_without_retry(tiny_snapshot):
    job = submitted(SUBMITTER, symbols=("AAA", "NOPE"), **TINY_RUN)
    run_pass(worker())
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED", "ERROR"]
    error = JobEvent.objects.get(job_id=job.job_id, event_type="ERROR")
    assert error.payload["error_class"] == "CompileError"
    assert "NOPE" in error.payload["message"]


@pytest.mark.django_db
def test_retry_after_the_lost_snapshot_file_is_restored_completes_the_job(db):
    # given a job on a snapshot whose stored file was lost after ingest
    snapshot = a_snapshot("lost_snap")
    job = submitted(SUBMITTER, family="buy_and_hold", snapshot_id="lost_snap")
    os.remove(artifact_storage().path(data_path("lost_snap")))
    # when a pass runs, then compile fails as expected (no retry) and says why
    run_pass(worker())
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "error" and state.error["error_class"] == "SnapshotError"
    assert "is missing" in state.error["message"]
    assert [e for e in events_of(job.job_id) if e == "STEP_FAILED"] == []
    # when the same data is ingested again (which restores the file) and an operator retries, it completes
    assert a_snapshot("lost_snap").sha256 == snapshot.sha256
    services.retry(job_id=job.job_id, actor=OPERATOR, reason="snapshot file restored")
    run_pass(worker())
    state.refresh_from_db()
    assert (state.status, state.waiting_step) == ("waiting_approval", "runspec")
    services.approve(job_id=job.job_id, step="runspec", actor=Actor("user", "rita"))
    run_pass(worker())
    state.refresh_from_db()
    assert state.status == "done"
    assert "RETRY_REQUESTED" in events_of(job.job_id)


@pytest.mark.django_db
def test_a_cancelled_job_is_not_run(tiny_snapshot):
    job = submitted(SUBMITTER, **TINY_RUN)
    services.cancel(job_id=job.job_id, actor=OPERATOR, reason="not needed")
    assert run_pass(worker()).steps == []
    assert JobState.objects.get(job_id=job.job_id).status == "cancelled"


@pytest.mark.django_db
def test_a_job_cancelled_while_its_registry_step_runs_leaves_no_registry_row(tiny_snapshot, settings):
    # given a job at its registry step, and an operator who cancels it while that step runs
    from research.models import RegistryEntry

    from ..builders import approve_waiting

    settings.EAM_STEP_EXECUTORS = {"registry": "tests.workflow.instrumented.cancelled_meanwhile"}
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])

    # when the worker finishes the step
    report = run_pass(worker())

    # then its result is fenced, and the trial it would have recorded is not in the registry
    assert [(r.step, r.outcome) for r in report.steps][-1] == ("registry", "fenced")
    assert JobState.objects.get(job_id=job.job_id).status == "cancelled"
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="REGISTRY_UPDATED").exists()
    assert not RegistryEntry.objects.filter(job_id=job.job_id).exists()


@pytest.mark.django_db
def test_the_registry_row_is_written_with_the_steps_result(tiny_snapshot):
    from research.models import RegistryEntry

    from ..builders import approve_waiting

    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    run_pass(worker())
    entry = RegistryEntry.objects.get(job_id=job.job_id)
    recorded = JobEvent.objects.get(job_id=job.job_id, event_type="REGISTRY_UPDATED").payload["summary"]
    assert (recorded["registry_entry_id"], recorded["verdict"], recorded["run_id"]) == (entry.pk, entry.verdict,
                                                                                      entry.run_id)


@pytest.mark.django_db
def test_an_approved_runspec_replaced_on_disk_stops_the_job_in_error_integrity(artifact_root, tiny_snapshot):
    # given a job whose runspec was approved, then replaced on disk behind the storage's back (in this test's
    # own artifact root: other tests compile the same runspec)
    from ..builders import approve_waiting

    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    path = artifact_storage().path(f"jobs/{job.job_id}/outputs/runspec.json")
    with open(path, "rb") as handle:
        runspec = handle.read()
    os.chmod(path, 0o644)
    with open(path, "wb") as handle:
        handle.write(runspec.replace(b'"fee_bps":', b'"fee_bps": 0, "was_fee_bps":', 1))

    # when the worker takes the job on
    run_pass(worker())

    # then nothing runs on it: ERROR with error_class integrity, no RUN_COMPLETED
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "error" and state.error["error_class"] == "integrity", state.error
    assert "has changed since it was recorded" in state.error["message"]
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="RUN_COMPLETED").exists()


@pytest.mark.django_db(transaction=True)  # the lease keeper writes on its own connection
def test_a_step_past_its_time_limit_is_failed_as_timeout_and_its_late_result_is_fenced(tiny_snapshot, settings,
                                                                                      monkeypatch):
    # given a compile step that hangs for 3 s, with a time limit of 1 s for that step
    settings.EAM_STEP_EXECUTORS = {"compile": "tests.workflow.instrumented.slow"}
    monkeypatch.setenv("EAM_TEST_SLOW_SECONDS", "3")
    settings.EAM_STEP_TIMEOUTS = {"compile": "1"}
    job = submitted(SUBMITTER, **TINY_RUN)

    # when a worker runs it
    report = run_pass(WorkerConfig.from_settings("w-slow"), max_steps=1)

    # then the step was failed as timeout at its limit, the lease released, and its late result refused
    failed = JobEvent.objects.get(job_id=job.job_id, event_type="STEP_FAILED")
    assert (failed.step, failed.payload["error_class"], failed.payload["retryable"]) == ("compile", "timeout", True)
    assert "time limit of 1s" in failed.payload["message"]
    assert [(r.step, r.outcome) for r in report.steps] == [("compile", "fenced")]
    assert "timed out" in report.steps[0].detail
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.lease_owner) == ("queued", None)
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="RUNSPEC_COMPILED").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("forgery", ["unsigned approval", "projection moved without an event"])
def test_a_worker_refuses_to_act_on_a_log_that_does_not_verify(tiny_snapshot, forgery):
    # given a compiled job waiting for its runspec's approval, approved by a forged, unsigned APPROVED that
    # the database role inserted (or by its projection alone, moved on with no event at all)
    from ..builders import forged_event

    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    head = JobState.objects.get(job_id=job.job_id)
    if forgery == "unsigned approval":
        forged_event(job.job_id, "APPROVED", step="runspec", actor={"kind": "user", "id": "ghost"},
                     payload={"comment": "", "artifact_sha256": head.review_sha256})
    else:
        JobState.objects.filter(job_id=job.job_id).update(status="queued", stage=2, next_step="run",
                                                          waiting_step=None, review_sha256=None)

    # when the worker takes the job on
    run_pass(worker())

    # then it runs nothing on it: ERROR integrity naming the problem, no RUN_COMPLETED
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "error" and state.error["error_class"] == "integrity", state.error
    expected = "APPROVED: not signed" if forgery == "unsigned approval" else "events cannot be replayed"
    assert expected in state.error["message"], state.error["message"]
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="RUN_COMPLETED").exists()
