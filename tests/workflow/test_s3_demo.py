"""Artifacts on a local S3 server, through the whole system: the engine runs a blueprint there, the API serves its
files from there, and the demo runs there in real processes, its event log and anchors verifying afterwards."""
import subprocess

import pytest

from contracts import sha256_hex
from jobs.audit import verify_events
from jobs.models import JobEvent, JobState
from workflow.orchestrator import WorkerConfig, run_pass

from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, approve_waiting, client_for, ran_job, submitted
from ..conftest import REPO_ROOT

WORKER = WorkerConfig(worker_id="w-s3", lease_seconds=600, max_attempts=3, retry_backoff_seconds=0)


def manage(python, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([python, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.django_db
def test_a_blueprint_runs_to_done_with_its_artifacts_in_the_bucket(s3_bucket):
    # given a snapshot and a submitted blueprint, everything they write going to the bucket
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)

    # when it runs to the checkpoint, is approved, and runs to the end
    run_pass(WORKER)
    approve_waiting([job.job_id])
    run_pass(WORKER)

    # then it is DONE, and every artifact its events record is in the bucket with the recorded sha256
    assert JobState.objects.get(job_id=job.job_id).status == "done"
    assert verify_events([job.job_id]) == (1, [])
    recorded = [artifact for payload in JobEvent.objects.filter(job_id=job.job_id).values_list("payload", flat=True)
                for artifact in payload.get("artifacts", [])]
    assert recorded
    for artifact in recorded:
        assert sha256_hex(s3_bucket.get(artifact["path"])) == artifact["sha256"], artifact["path"]
    assert f"jobs/{job.job_id}/outputs/runspec.json" in s3_bucket.keys("jobs/")


@pytest.mark.django_db
def test_an_approved_runspec_replaced_in_the_bucket_stops_the_job_in_error_integrity(s3_bucket):
    # given a job whose runspec was approved, then replaced in the bucket behind the storage's back
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(WORKER)
    approve_waiting([job.job_id])
    path = f"jobs/{job.job_id}/outputs/runspec.json"
    s3_bucket.put(path, s3_bucket.get(path).replace(b'"fee_bps":', b'"fee_bps": 0, "was_fee_bps":', 1))

    # when the worker takes the job on
    run_pass(WORKER)

    # then nothing runs on it: ERROR with error_class integrity, no RUN_COMPLETED
    state = JobState.objects.get(job_id=job.job_id)
    assert state.status == "error" and state.error["error_class"] == "integrity", state.error
    assert "has changed since it was recorded" in state.error["message"]
    assert not JobEvent.objects.filter(job_id=job.job_id, event_type="RUN_COMPLETED").exists()


@pytest.mark.django_db
def test_the_api_lists_and_serves_a_job_s_files_from_the_bucket(s3_bucket, people):
    # given a job whose run completed, its files in the bucket
    job, run_id = ran_job(people.submitter, people.reviewer)
    client = client_for(people.operator)

    # when listing and downloading them
    listed = {a["path"]: a for a in client.get(f"/jobs/{job.job_id}/artifacts").json()["artifacts"]}
    runspec = client.get(f"/jobs/{job.job_id}/artifacts/outputs/runspec.json")

    # then they are the bucket's objects, and nothing outside the job's folders is reachable
    assert listed["outputs/runspec.json"]["sha256"] == sha256_hex(s3_bucket.get(f"jobs/{job.job_id}/outputs/runspec.json"))
    assert listed["dossier/metrics.json"]["storage_path"] == f"dossiers/{run_id}/metrics.json"
    assert runspec.status_code == 200 and runspec["Content-Type"] == "application/json"
    assert sha256_hex(runspec.content) == listed["outputs/runspec.json"]["sha256"]
    assert client.get(f"/jobs/{job.job_id}/artifacts/outputs/nothing.json").status_code == 404
    assert client.get(f"/jobs/{job.job_id}/artifacts/..%2F..%2Fanchors").status_code in (400, 404)


@pytest.mark.slow
def test_the_demo_runs_with_artifacts_on_the_local_s3_server_and_verifies_there(s3_bucket, process_env, python,
                                                                               tmp_path):
    # given child processes pointed at the bucket, and a local artifact root that must stay unused
    unused = tmp_path / "unused-artifact-root"
    env = s3_bucket.env({**process_env, "EAM_ARTIFACT_ROOT": str(unused)})

    # when the demo runs, an anchor is written, the event log is verified against it, and the reconciler
    # re-hashes every recorded file
    demo = manage(python, env, "demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    anchor = manage(python, env, "anchor_heads")
    assert anchor.returncode == 0, anchor.stderr[-3000:]
    verify = manage(python, env, "verify_events")
    reconcile = manage(python, env, "reconcile")

    # then everything verifies and agrees, and every file went to the bucket, none to the local root
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    assert reconcile.returncode == 0, reconcile.stdout[-3000:] + reconcile.stderr[-3000:]
    keys = s3_bucket.keys()
    assert {key.split("/", 1)[0] for key in keys} >= {"jobs", "dossiers", "snapshots", "anchors"}
    # the append-only log and the derived state of the demo's rerun, on S3 too
    assert [key.rsplit("/", 1)[1] for key in keys if "/outputs/reruns/" in key] == ["rerun_log.jsonl",
                                                                                   "rerun_state.json"]
    assert not unused.exists()
