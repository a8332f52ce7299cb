"""An agent rerun asked for over real HTTP (runserver and gunicorn processes), run by `run_jobs --once` in its
own process, and read back: the request, its refusals, and the log the worker appended."""
import json

import pytest
from django.apps import apps
from rest_framework.authtoken.models import Token

from jobs.roles import ensure_roles

from ..builders import TINY_SNAPSHOT, a_snapshot, a_user, an_idea_for_tiny
from .conftest import serving
from .test_http_scenario import Client, manage

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_a_rerun_over_http_is_accepted_refused_while_pending_and_run_by_the_worker(artifact_root, process_env, tmp_path,
                                                                                 kind):
    a_snapshot(TINY_SNAPSHOT)
    ensure_roles(apps)
    with serving(kind, process_env, tmp_path) as base:
        sam = Client(base, Token.objects.create(user=a_user("sam", "submitters")).key)
        rita = Client(base, Token.objects.create(user=a_user("rita", "reviewers")).key)
        job_id = sam.json("POST", f"/jobs/idea?snapshot_id={TINY_SNAPSHOT}", an_idea_for_tiny(), expect=201)["job_id"]
        manage(process_env, "run_jobs", "--once")
        assert rita.json("GET", f"/jobs/{job_id}")["waiting_step"] == "blueprint"

        # when a reviewer asks for intent again
        asked = rita.json("POST", f"/jobs/{job_id}/rerun", {"agent_id": "intent", "reason": "again, please"},
                          expect=202)
        assert asked["event_type"] == "RERUN_REQUESTED" and asked["payload"]["agent_id"] == "intent"

        # then a second request while it is pending, a submitter, and a body that is not JSON are refused
        again = rita.json("POST", f"/jobs/{job_id}/rerun", {"agent_id": "intent", "reason": "twice"}, expect=409)
        assert again["code"] == "rerun_pending"
        assert sam.json("POST", f"/jobs/{job_id}/rerun", {"agent_id": "intent", "reason": "r"},
                        expect=403)["code"] == "permission_denied"
        status, _, content = rita.call("POST", f"/jobs/{job_id}/rerun", None)
        assert status == 400 and json.loads(content)["code"] == "reason_required"
        detail = rita.json("GET", f"/jobs/{job_id}")
        assert [r["agent_id"] for r in detail["reruns"]] == ["intent"] and detail["can_rerun"] is True

        # and once a worker process takes a pass, the rerun is done and logged
        manage(process_env, "run_jobs", "--once")
        detail = rita.json("GET", f"/jobs/{job_id}")
        assert detail["reruns"] == [] and detail["rerun_agents"] == ["intent"]
        assert detail["status"] == "waiting_approval"
        events = rita.json("GET", f"/jobs/{job_id}/events")["events"]
        assert [e["event_type"] for e in events][-3:] == ["RERUN_REQUESTED", "STEP_STARTED", "RERUN_COMPLETED"], \
            events[-1]["payload"]
        status, _, log = rita.call("GET", f"/jobs/{job_id}/artifacts/outputs/reruns/rerun_log.jsonl")
        assert status == 200 and [json.loads(line)["kind"] for line in log.splitlines()] == ["request", "completion"]
