"""Structured logs joined to the audit events, from real processes: a server answers with the request's id and
logs JSON lines that carry it, an approval's event records it, and a worker's step lines and events share a trace
id. The default format stays plain text."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from rest_framework.authtoken.models import Token

from jobs.models import JobEvent

from .api.conftest import SERVERS, free_port
from .builders import MONTH, SNAPSHOT, SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, submitted, waiting_job
from .conftest import REPO_ROOT

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@contextmanager
def a_server(kind: str, env: dict, folder):
    """A server process of `kind` (tests/api/conftest.py) whose stderr, where the application logs, is kept apart
    from its stdout and from gunicorn's own log; yields (base URL, path of the stderr file)."""
    port, err_path = free_port(), folder / f"{kind}.stderr"
    command = SERVERS[kind](port)
    if "gunicorn" in command:
        command += ["--error-logfile", str(folder / "gunicorn.log")]
    with (folder / f"{kind}.stdout").open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while not answers(base + "/healthz"):
            assert process.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.2)
        try:
            yield base, err_path
        finally:
            process.terminate()
            process.wait(timeout=20)


def answers(url: str) -> bool:
    try:
        return call(url)[0] == 200
    except OSError:
        return False


def call(url: str, *, method: str = "GET", headers: dict | None = None, body: dict | None = None):
    """(status, headers) of one request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, error.headers


def json_lines(text: str) -> list[dict]:
    """Every line of `text` as JSON (a line that is not JSON fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def manage(env: dict, *args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def json_env(process_env):
    return {**process_env, "EAM_LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_a_server_answers_with_the_request_id_logs_it_and_the_approval_records_it(kind, json_env, people, tmp_path):
    # given a job waiting at runspec, and a reviewer with a token
    a_snapshot(SNAPSHOT, span=MONTH)
    job = waiting_job(people.submitter, "logged")
    reviewer = {"Authorization": f"Token {Token.objects.create(user=people.reviewer).key}"}

    with a_server(kind, json_env, tmp_path) as (base, stderr):
        # when a caller names its request id, names an unusable one, or names none
        _, named = call(base + "/healthz", headers={"X-Request-ID": "abc-123"})
        unusable = [call(base + "/jobs", headers={**reviewer, "X-Request-ID": bad})[1]["X-Request-ID"]
                    for bad in ("x" * 200, "abc 123", "abc\t123", "-starts-with-a-dash", "a/b")]
        _, unnamed = call(base + "/jobs", headers=reviewer)
        # and the reviewer approves, then approves again (409)
        status, approval = call(base + f"/jobs/{job.job_id}/approve?step=runspec", method="POST",
                                headers=reviewer, body={"comment": "fine"})
        conflict, again = call(base + f"/jobs/{job.job_id}/approve?step=runspec", method="POST",
                               headers=reviewer, body={"comment": "fine"})
        missing, not_found = call(base + "/jobs/000000000000", headers=reviewer)

    # then every answer carries an id: the caller's if usable, else a new one
    assert named["X-Request-ID"] == "abc-123"
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in unusable), unusable
    assert len(set(unusable)) == len(unusable)
    assert (status, conflict, missing) == (200, 409, 404)
    generated = [unnamed["X-Request-ID"], approval["X-Request-ID"], again["X-Request-ID"], not_found["X-Request-ID"]]
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in generated), generated
    assert len(set(generated)) == len(generated)

    # and the approval's event records the id of the request that wrote it
    approved = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVED")
    assert approved.payload["trace"] == {"request_id": approval["X-Request-ID"]}
    assert approved.payload["comment"] == "fine"

    # and the server's log is JSON lines, one per request, carrying the same ids
    lines = json_lines(stderr.read_text())
    assert all({"timestamp", "level", "logger", "event"} <= line.keys() for line in lines)
    requests = {line["request_id"]: line for line in lines if line["event"] == "request"}
    assert requests["abc-123"]["path"] == "/healthz" and requests["abc-123"]["status"] == 200
    assert requests["abc-123"]["timestamp"].endswith("Z") and requests["abc-123"]["level"] == "info"
    approving = requests[approval["X-Request-ID"]]
    assert (approving["method"], approving["path"], approving["status"], approving["user"]) == (
        "POST", f"/jobs/{job.job_id}/approve", 200, people.reviewer.username)
    assert isinstance(approving["duration_ms"], float)
    assert requests[again["X-Request-ID"]]["status"] == 409
    assert requests[not_found["X-Request-ID"]]["status"] == 404
    assert all(request_id in requests for request_id in unusable)


def test_a_worker_step_logs_json_lines_with_the_trace_id_its_events_record(json_env, tmp_path):
    # given a queued job
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)

    # when a worker runs it to its runspec checkpoint, logging JSON
    done = manage(json_env, "run_jobs", "--once", "--worker-id", "w-logs")

    # then its result and the checkpoint record the step's trace id, and the claim's STEP_STARTED one of its own
    rows = {row.event_type: row for row in JobEvent.objects.filter(job_id=job.job_id)}
    assert "trace" not in rows["BLUEPRINT_SUBMITTED"].payload  # appended outside any request or step
    trace_id = rows["RUNSPEC_COMPILED"].payload["trace"]["trace_id"]
    assert re.fullmatch(r"w-[0-9a-f]{16}", trace_id)
    assert rows["WAITING_APPROVAL"].payload["trace"] == {"trace_id": trace_id}
    assert re.fullmatch(r"w-[0-9a-f]{16}", rows["STEP_STARTED"].payload["trace"]["trace_id"])

    # and its step line carries the same trace id with the job, step, worker and attempt
    lines = json_lines(done.stderr)
    (step_line,) = [line for line in lines if line["event"] == "step completed"]
    assert {k: step_line[k] for k in ("trace_id", "job_id", "step", "worker_id", "attempt", "outcome")} == {
        "trace_id": trace_id, "job_id": job.job_id, "step": "compile", "worker_id": "w-logs", "attempt": 1,
        "outcome": "completed"}
    assert step_line["logger"] == "workflow.orchestrator" and step_line["run_id"]
    assert isinstance(step_line["seconds"], float)
    # the plain step line and the summary stay on stdout
    assert f"{job.job_id}  compile" in done.stdout and "pass by w-logs: 1 step(s)" in done.stdout


def test_by_default_the_log_is_plain_text(process_env):
    # given a queued job
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)

    # when a worker runs it with the default format
    done = manage({**process_env, "LOG_LEVEL": "INFO"}, "run_jobs", "--once", "--worker-id", "w-plain")

    # then its log lines are text, with the step's context as key=value pairs
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    (step_line,) = [line for line in lines if "step completed" in line]
    assert f"job_id={job.job_id}" in step_line and "step=compile" in step_line and "worker_id=w-plain" in step_line
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)


def test_an_unknown_format_is_refused_when_the_settings_load():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "eam_site.settings", "SECRET_KEY": "eam-test-only-key",
           "EAM_LOG_FORMAT": "xml"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode != 0 and "EAM_LOG_FORMAT must be one of console, json, not 'xml'" in done.stderr
