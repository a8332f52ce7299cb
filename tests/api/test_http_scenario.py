"""A REST client's whole journey over real HTTP: a server process, the engine as `run_jobs --once`, urllib.

Submit a blueprint as a submitter, let the engine compile it, see the runspec checkpoint (which the
submitter may not approve and a reviewer may), approve it, let the engine run, and read the result: DONE,
the gate verdict, the dossier metrics, and runspec.json whose sha256 is the one the events recorded.
"""
import base64
import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.apps import apps
from rest_framework.authtoken.models import Token

from jobs.roles import ensure_roles

from ..builders import a_blueprint, a_user
from .conftest import serving

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = "api_http_snap"


def manage(env, *args, timeout=600) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Client:
    """A tiny JSON client over urllib, authenticated with a DRF token."""

    def __init__(self, base: str, token: str | None):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None) -> tuple[int, dict, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, body=None, expect: int = 200) -> dict:
        status, _, content = self.call(method, path, body)
        assert status == expect, (method, path, status, content[:1000])
        return json.loads(content)


@pytest.fixture
def server(process_env, tmp_path):
    with serving("runserver", process_env, tmp_path) as base:
        yield base


@pytest.mark.slow
def test_submit_review_run_and_read_over_http(process_env, server):
    # given a snapshot, a submitter and a reviewer with API tokens
    manage(process_env, "demo_ingest", "--snapshot-id", SNAPSHOT)
    ensure_roles(apps)
    sam = Client(server, Token.objects.create(user=a_user("sam", "submitters")).key)
    rita = Client(server, Token.objects.create(user=a_user("rita", "reviewers")).key)
    anonymous = Client(server, None)
    blueprint = a_blueprint(name="over http", fast=10, slow=50, symbols=("ACME", "BOLT"))

    # when the submitter submits a blueprint
    status, headers, content = sam.call("POST", f"/jobs/blueprint?snapshot_id={SNAPSHOT}", blueprint)
    assert status == 201, content
    job_id = json.loads(content)["job_id"]
    assert headers["Location"] == f"/jobs/{job_id}"
    assert anonymous.call("GET", f"/jobs/{job_id}")[0] == 401
    assert sam.json("POST", f"/jobs/blueprint?snapshot_id={SNAPSHOT}", blueprint)["created"] is False

    # and the engine takes a pass, then the job waits for the runspec to be reviewed
    manage(process_env, "run_jobs", "--once")
    as_submitter = sam.json("GET", f"/jobs/{job_id}")
    assert as_submitter["status"] == "waiting_approval" and as_submitter["waiting_step"] == "runspec"
    assert as_submitter["can_approve"] is False  # four eyes
    as_reviewer = rita.json("GET", f"/jobs/{job_id}")
    assert as_reviewer["can_approve"] is True and as_reviewer["can_reject"] is True
    review_sha = as_reviewer["review_sha256"]
    assert sam.json("POST", f"/jobs/{job_id}/approve?step=runspec", {}, expect=403)["code"] == "permission_denied"

    # when the reviewer approves what they saw, and the engine takes another pass
    approved = rita.json("POST", f"/jobs/{job_id}/approve?step=runspec",
                         {"comment": "looks right", "artifact_sha256": review_sha})
    assert approved["event_type"] == "APPROVED" and approved["actor"] == {"kind": "user", "id": "rita"}
    manage(process_env, "run_jobs", "--once")

    # then the job is done, with a gate verdict, a dossier, and the runspec the events recorded
    done = rita.json("GET", f"/jobs/{job_id}")
    assert done["status"] == "done", done
    assert done["can_approve"] is False and done["can_cancel"] is False
    events = rita.json("GET", f"/jobs/{job_id}/events")["events"]
    by_type = {e["event_type"]: e for e in events}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert by_type["DONE"]["seq"] == len(events)
    verdict = by_type["GATES_COMPLETED"]["payload"]["summary"]["verdict"]
    assert verdict in ("PASS", "FAIL")

    run_id = done["run_id"]
    assert run_id == by_type["RUNSPEC_COMPILED"]["payload"]["summary"]["run_id"]
    run = rita.json("GET", f"/runs/{run_id}")
    assert "sharpe" in run["metrics"]["oos"] and run["holdout_visibility"] == "metrics_only"
    assert any(s["role"] == "holdout" for s in run["segments"])
    assert [t["job_id"] for t in run["trials"]] == [job_id]

    recorded = next(a for a in by_type["RUNSPEC_COMPILED"]["payload"]["artifacts"]
                    if a["path"].endswith("outputs/runspec.json"))
    assert recorded["sha256"] == review_sha
    status, headers, runspec = rita.call("GET", f"/jobs/{job_id}/artifacts/outputs/runspec.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert hashlib.sha256(runspec).hexdigest() == recorded["sha256"]
    assert json.loads(runspec)["data"]["snapshot_id"] == SNAPSHOT

    listed = {a["path"]: a for a in rita.json("GET", f"/jobs/{job_id}/artifacts")["artifacts"]}
    assert listed["outputs/runspec.json"]["sha256"] == recorded["sha256"]
    gate_results = rita.json("GET", f"/jobs/{job_id}/artifacts/outputs/gate_results.json")
    assert gate_results["verdict"] == verdict and gate_results["run_id"] == run_id
    assert "dossier/metrics.json" in listed
    holdout = rita.call("GET", f"/runs/{run_id}?segment=holdout&part=curve")
    assert holdout[0] == 404 and json.loads(holdout[2])["code"] == "holdout_hidden"

    # and the same reads work with HTTP Basic and are refused without credentials
    assert anonymous.call("GET", f"/runs/{run_id}")[0] == 401
    basic = base64.b64encode(b"rita:wrong").decode()
    request = urllib.request.Request(f"{server}/jobs", headers={"Authorization": f"Basic {basic}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
