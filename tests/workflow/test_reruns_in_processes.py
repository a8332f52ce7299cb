"""A worker process killed in the middle of an agent rerun: after its lease, another worker finishes the rerun
from the files the first one wrote. Nothing is lost, nothing is done twice, the model is not asked again."""
import json
import time

import pytest
from django.apps import apps

from jobs import reruns
from jobs.events import Actor
from jobs.models import JobEvent, JobState
from jobs.roles import ensure_roles
from research.artifacts import read_artifact

from ..builders import TINY_SNAPSHOT, a_model_server, a_snapshot, a_user, an_idea_for_tiny, as_actor
from .conftest import events_of, kill_once_executed, run_jobs

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_rerun_is_recovered_without_a_second_model_call(artifact_root, process_env, tmp_path):
    from jobs import services

    a_snapshot(TINY_SNAPSHOT)
    ensure_roles(apps)
    submitter = a_user("sam", "submitters")
    with a_model_server() as server:
        model = {"intent": {"provider": "openai_compatible", "base_url": server.url, "model": "m",
                            "backoff_seconds": 0.01}}
        env = dict(process_env, EAM_AGENT_PROVIDERS=json.dumps(model))
        # given an idea job waiting at its blueprint checkpoint, and a rerun of intent asked for
        job, _ = services.submit_idea(idea=an_idea_for_tiny(), actor=as_actor(submitter), snapshot_id=TINY_SNAPSHOT)
        assert run_jobs(env, "--once").returncode == 0
        reruns.request_rerun(job_id=job.job_id, agent_id="intent", actor=Actor("user", "rita"), reason="again")
        calls = len(server.requests)

        # when the worker running it is killed after writing the rerun's files, before recording its result
        log = tmp_path / "executions.log"
        slow_env = dict(env, EAM_STEP_EXECUTORS="rerun=tests.workflow.instrumented.slow_after",
                        EAM_TEST_EXECUTION_LOG=str(log), EAM_TEST_SLOW_SECONDS="60")
        kill_once_executed(slow_env, log, [(job.job_id, "rerun")], "--once", "--worker-id", "victim",
                           "--lease-seconds", "2")
        assert len(server.requests) == calls + 1
        assert JobState.objects.get(job_id=job.job_id).reruns[0]["running"] is True

        # then, after the lease, another worker finishes it from the files written, without asking the model again
        time.sleep(2.5)
        rescue = run_jobs(env, "--once", "--worker-id", "rescuer")
        assert rescue.returncode == 0, rescue.stderr
        assert len(server.requests) == calls + 1

    starts = JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED", step="rerun").order_by("seq")
    assert [(e.payload["worker"], e.payload["attempt"], e.payload["recovered_from"]) for e in starts] == [
        ("victim", 1, None), ("rescuer", 2, "victim")]
    assert events_of(job.job_id).count("RERUN_COMPLETED") == 1
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.waiting_step, state.reruns) == ("waiting_approval", "blueprint", None)
    lines = [json.loads(line) for line in read_artifact(reruns.log_path(job.job_id)).splitlines()]
    assert [line["kind"] for line in lines] == ["request", "completion"]
