"""The event streams over a real ASGI server (uvicorn, and gunicorn with a uvicorn worker): every event once and
in order, then `end`; resuming after each event in turn; unusable cursors; heartbeats; who may read what; the
per-process limit; on PostgreSQL, a notice that brings an event at once; and the /ui job page following it."""
import base64
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password
from django.db import connection
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from jobs import selectors, services
from jobs.selectors import GAP_GRACE, safe_horizon
from jobs.events import NewEvent
from jobs.models import JobEvent, JobState
from jobs.pipelines import EventType as E

from ..builders import (
    SHA_A, SUBMITTER, TINY_RUN, TINY_SNAPSHOT, WORKER, a_snapshot, a_user, append, approve_waiting, compiled,
    completed, gated, idea_waiting, new_blueprint_job, started, submitted, to_done, waiting,
)
from ..builders.jobs import SOMEONE_ELSE
from ..conftest import REPO_ROOT
from .conftest import serving

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SAFETY_POLL = 30  # seconds: on PostgreSQL only a notice can bring an event sooner


class Stream:
    """One open event stream, read message by message: `{"id", "event", "data"}`, or `{"comment"}`."""

    def __init__(self, base: str, path: str, *, token: str | None = None, headers: dict | None = None,
                 client: httpx.Client | None = None):
        self.client = client or httpx.Client(base_url=base, timeout=10)
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Token {token}"
        self.opened = self.client.stream("GET", path, headers=headers)
        self.response = self.opened.__enter__()
        self.lines = self.response.iter_lines()

    def next(self) -> dict | None:
        """The next message, heartbeats included; None when the server closed the stream."""
        found = {}
        for line in self.lines:
            if line == "":
                if found:
                    return found
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                found["comment"] = value
            elif name == "data":
                found["data"] = json.loads(value)
            else:
                found[name] = value
        return found or None

    def event(self) -> dict | None:
        """The next message that is not a heartbeat."""
        while (found := self.next()) is not None and "comment" in found:
            pass
        return found

    def rest(self) -> list[dict]:
        """Every message until the server closes the stream."""
        found = []
        while (item := self.event()) is not None:
            found.append(item)
        return found

    def close(self):
        self.opened.__exit__(None, None, None)
        self.client.close()


@pytest.fixture
def env(artifact_root, process_env):
    return {**process_env, "EAM_STREAM_HEARTBEAT_SECONDS": "0.2", "EAM_STREAM_POLL_SECONDS": "0.2",
            "EAM_STREAM_SAFETY_POLL_SECONDS": str(SAFETY_POLL)}


@pytest.fixture
def server(env, tmp_path):
    with serving("uvicorn", env, tmp_path) as base:
        yield base


@pytest.fixture
def reader(db):
    """A reviewer's token; her password is hashed as the server processes hash them (the tests' MD5 is not)."""
    user = a_user("rhea", "reviewers")
    user.password = make_password("rhea-pass-123", hasher=PBKDF2PasswordHasher())
    user.save(update_fields=["password"])
    return Token.objects.create(user=user).key


def as_sent(row) -> dict:
    return {"id": str(row.seq), "event": row.event_type, "data": selectors.event_view(row)}


def sent_events(job_id: str, after: int = 0) -> list[dict]:
    return [as_sent(row) for row in JobEvent.objects.filter(job_id=job_id, seq__gt=after).order_by("seq")]


def end(status: str) -> dict:
    return {"event": "end", "data": {"status": status}}


def cursor_invalid(found: list[dict]) -> str:
    assert len(found) == 1 and found[0]["event"] == "cursor-invalid" and "id" not in found[0], found
    return found[0]["data"]["reason"]


# -- 1. a job's stream while it runs ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn-asgi"])
def test_a_reader_gets_every_event_once_in_order_then_end(kind, env, tmp_path, reader):
    # given a job just submitted, and a reader following its stream
    job = new_blueprint_job()
    with serving(kind, env, tmp_path) as base:
        stream = Stream(base, f"/jobs/{job.job_id}/stream", token=reader)
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-cache"
        assert stream.response.headers["x-accel-buffering"] == "no"
        received = [stream.event()]

        # when the job moves on in steps, the reader reading as it goes
        append(job.job_id, started("compile"))
        received.append(stream.event())
        append(job.job_id, compiled(job.job_id), waiting("runspec", SHA_A))
        received += [stream.event(), stream.event()]
        services.approve(job_id=job.job_id, step="runspec", actor=SOMEONE_ELSE)
        received.append(stream.event())
        append(job.job_id, started("run"), completed(E.RUN_COMPLETED, "run"), started("gates"), gated("PASS"),
               started("registry"), completed(E.REGISTRY_UPDATED, "registry", verdict="PASS"), NewEvent(E.DONE, WORKER))
        received += stream.rest()
        stream.close()

    # then it got every event once, in order, with the JSON of GET /jobs/{id}/events, then `end`, then the close
    assert received == [*sent_events(job.job_id), end("done")]
    assert [int(item["id"]) for item in received[:-1]] == list(range(1, len(received)))



def test_a_reader_follows_the_engine_running_a_job_to_done(server, env, reader):
    # given a tiny job the engine can run, and a reader following its stream
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    stream = Stream(server, f"/jobs/{job.job_id}/stream", token=reader)
    assert stream.event()["event"] == "BLUEPRINT_SUBMITTED"

    # when worker processes take it to its checkpoint, a reviewer approves it and a worker finishes it
    manage(env, "run_jobs", "--once")
    received = [stream.event() for _ in range(JobState.objects.get(job_id=job.job_id).last_seq - 1)]
    assert received[-1]["event"] == "WAITING_APPROVAL"
    approve_waiting([job.job_id])
    manage(env, "run_jobs", "--once")
    received += stream.rest()
    stream.close()

    # then the reader saw every event the engine wrote, once and in order, then `end`
    assert [item["event"] for item in received][-2:] == ["DONE", "end"]
    assert received == [*sent_events(job.job_id, after=1), end("done")]


def manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# -- 2. cut after each event, resumed ---------------------------------------------------------------------------

def test_a_stream_cut_after_each_event_resumes_with_exactly_the_missing_ones(server, reader):
    # given a job that ran to DONE
    job = new_blueprint_job()
    to_done(job.job_id)
    events = sent_events(job.job_id)

    # when the reader is cut after each event in turn and comes back with Last-Event-ID (or ?cursor=)
    for cut, last in enumerate(events):
        stream = Stream(server, f"/jobs/{job.job_id}/stream", token=reader, headers={"Last-Event-ID": last["id"]})
        resumed = stream.rest()
        stream.close()
        by_query = Stream(server, f"/jobs/{job.job_id}/stream?cursor={last['id']}", token=reader)
        assert by_query.rest() == resumed
        by_query.close()

        # then each reconnect gets exactly the events after the one it names, then `end`
        assert resumed == [*events[cut + 1:], end("done")], cut

    # and the header wins over the cursor in the URL (a browser's EventSource reconnects to the same URL)
    stream = Stream(server, f"/jobs/{job.job_id}/stream?cursor=1", token=reader, headers={"Last-Event-ID": "3"})
    assert stream.rest() == [*events[3:], end("done")]
    stream.close()


def test_a_live_stream_cut_and_resumed_misses_nothing(server, reader):
    # given a reader who reads one event per connection while the job moves on
    job = new_blueprint_job()
    received, last = [], None
    steps = [lambda: append(job.job_id, started("compile")),
             lambda: append(job.job_id, compiled(job.job_id), waiting("runspec", SHA_A)),
             lambda: services.cancel(job_id=job.job_id, actor=SOMEONE_ELSE, reason="enough")]
    while True:
        stream = Stream(server, f"/jobs/{job.job_id}/stream", token=reader,
                        headers={"Last-Event-ID": last} if last else None)
        item = stream.event()
        stream.close()
        if item["event"] == "end":
            break
        received.append(item)
        last = item["id"]
        if steps and int(last) == JobState.objects.get(job_id=job.job_id).last_seq:
            steps.pop(0)()

    # then the events it put together are the log, each once
    assert received == sent_events(job.job_id) and item == end("cancelled")


# -- 3. unusable cursors ---------------------------------------------------------------------------------------

def test_an_unusable_cursor_gets_one_cursor_invalid_then_the_stream_closes(server, reader):
    # given a job with four events, and the log's last global id
    job = new_blueprint_job()
    append(job.job_id, started("compile"), compiled(job.job_id), waiting("runspec", SHA_A))
    last_id = JobEvent.objects.order_by("-id").values_list("id", flat=True)[0]

    # when a stream is asked for past the end, or with a cursor that is not an event id
    job_stream = f"/jobs/{job.job_id}/stream"
    for cursor in ("5", "99999999999", "abc", "-1", "1.5", " 1", "1e3", "99999999999999999999"):
        ways = [{"path": f"{job_stream}?cursor={cursor}"}]
        if cursor.strip() == cursor:  # a header's blanks are the server's to strip
            ways.append({"headers": {"Last-Event-ID": cursor}})
        for how in ways:
            stream = Stream(server, how.get("path", job_stream), token=reader, headers=how.get("headers"))

            # then it gets exactly one cursor-invalid event with the reason, and the server closes the stream
            assert stream.response.status_code == 200
            reason = cursor_invalid(stream.rest())
            assert ("past the end" in reason) if cursor.isdigit() and len(cursor) < 19 else ("malformed" in reason)
            stream.close()

    # and the all-jobs stream likewise refuses a non-integer, a negative id and one beyond the last
    for cursor in ("x", "-3", str(last_id + 1), "0x10"):
        stream = Stream(server, f"/events/stream?cursor={cursor}", token=reader)
        cursor_invalid(stream.rest())
        stream.close()

    # while the last seq itself is a valid cursor: nothing to replay, the stream waits (a heartbeat comes)
    stream = Stream(server, job_stream, token=reader, headers={"Last-Event-ID": "4"})
    assert stream.next() == {"comment": "heartbeat"}
    stream.close()


# -- 4. heartbeats ---------------------------------------------------------------------------------------------

def test_heartbeats_keep_an_idle_stream_open(server, reader):
    # given a job waiting for a reviewer, whose stream has sent its events
    job = new_blueprint_job()
    append(job.job_id, started("compile"), compiled(job.job_id), waiting("runspec", SHA_A))
    stream = Stream(server, f"/jobs/{job.job_id}/stream", token=reader)
    assert [stream.event() for _ in range(4)] == sent_events(job.job_id)

    # when nothing happens for a while, then a comment heartbeat comes every EAM_STREAM_HEARTBEAT_SECONDS (0.2)
    started_at = time.monotonic()
    beats = [stream.next() for _ in range(5)]
    elapsed = time.monotonic() - started_at
    assert beats == [{"comment": "heartbeat"}] * 5
    assert 0.6 < elapsed < 3, elapsed
    stream.close()


# -- 5. who may read what ----------------------------------------------------------------------------------------

def test_the_all_jobs_stream_shows_every_job_the_caller_may_read_with_its_filters(server, reader, people):
    # given two blueprint jobs (one of them the root of a tree) and an idea job
    first = new_blueprint_job(fast=10)
    to_done(first.job_id)
    second = new_blueprint_job(fast=11)
    idea = idea_waiting(people.submitter)
    every = list(JobEvent.objects.order_by("id"))

    def read(query: str, count: int, **credentials) -> list[dict]:
        stream = Stream(server, f"/events/stream?{query}", **credentials)
        found = [stream.event() for _ in range(count)]
        assert stream.next() == {"comment": "heartbeat"}  # and nothing more
        stream.close()
        return found

    def shown(rows) -> list[dict]:
        return [{"id": str(r.id), "event": r.event_type, "data": {**selectors.event_view(r), "job_id": r.job_id}}
                for r in rows]

    # then cursor=0 replays every job's events in global order, each with its job id
    assert read("cursor=0", len(every), token=reader) == shown(every)
    # and each filter keeps its own
    mine = [r for r in every if r.job_id == second.job_id]
    assert read(f"cursor=0&job_id={second.job_id}", len(mine), token=reader) == shown(mine)
    rooted = [r for r in every if r.job_id == first.job_id]
    assert read(f"cursor=0&root_job_id={first.job_id}", len(rooted), token=reader) == shown(rooted)
    ideas = [r for r in every if r.job_id == idea.job_id]
    assert read("cursor=0&kind=idea", len(ideas), token=reader) == shown(ideas)
    done = [r for r in every if r.event_type == "DONE"]
    assert read("cursor=0&event_type=DONE&kind=blueprint", len(done), token=reader) == shown(done)
    # and a resumed stream starts after the global id it names
    assert read(f"cursor={every[2].id}", len(every) - 3, token=reader) == shown(every[3:])

    # when a stream opened without a cursor waits, then it shows only what is appended from then on
    stream = Stream(server, "/events/stream", token=reader)
    assert stream.next() == {"comment": "heartbeat"}
    append(second.job_id, started("compile"))
    assert stream.event() == shown(JobEvent.objects.filter(job_id=second.job_id, seq=2))[0]
    stream.close()


def test_streams_are_read_with_the_apis_authentication_and_refusals(server, reader):
    # given a job, and a reader who signs in by token or with a password
    job = new_blueprint_job()
    basic = "Basic " + base64.b64encode(b"rhea:rhea-pass-123").decode()
    with httpx.Client(base_url=server, timeout=10) as client:
        for path in (f"/jobs/{job.job_id}/stream", "/events/stream?cursor=0"):
            # then HTTP Basic and a token open the stream
            for headers in ({"Authorization": basic}, {"Authorization": f"Token {reader}"}):
                stream = Stream(server, path, headers=headers)
                assert stream.event()["event"] == "BLUEPRINT_SUBMITTED"
                stream.close()

            # and anonymous callers get the API's 401, a wrong token its own
            anonymous = client.get(path)
            assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
            assert anonymous.headers["content-type"] == "application/json"
            assert anonymous.headers["www-authenticate"].startswith("Basic")
            wrong = client.get(path, headers={"Authorization": "Token " + "0" * 40})
            assert wrong.status_code == 401 and wrong.json()["code"] == "authentication_failed"

        # and an unknown job, a malformed id and an unknown query parameter are the API's errors
        refusals = {f"/jobs/{'f' * 12}/stream": (404, "job_not_found"), "/jobs/NOT-AN-ID/stream": (404, "invalid_job_id"),
                    f"/jobs/{job.job_id}/stream?after_seq=1": (400, "invalid_query"),
                    "/events/stream?status=done": (400, "invalid_query"),
                    "/events/stream?job_id=XYZ": (400, "invalid_query"),
                    "/events/stream?kind=other": (400, "invalid_query")}
        for path, (status, code) in refusals.items():
            answer = client.get(path, headers={"Authorization": f"Token {reader}"})
            assert (answer.status_code, answer.json()["code"]) == (status, code), path


def test_under_a_wsgi_server_a_stream_is_refused_at_once(env, tmp_path, reader):
    # given the development server (WSGI), which would gather a stream whole before sending any of it
    job = new_blueprint_job()
    with serving("runserver", env, tmp_path) as base:
        # when a stream is asked for, then the answer is an immediate 501 asgi_required
        for path in (f"/jobs/{job.job_id}/stream", "/events/stream"):
            answer = httpx.get(base + path, headers={"Authorization": f"Token {reader}"}, timeout=10)
            assert answer.status_code == 501 and answer.json()["code"] == "asgi_required"


def test_public_read_opens_the_streams_to_anonymous_readers(env, tmp_path):
    job = new_blueprint_job()
    with serving("uvicorn", {**env, "EAM_PUBLIC_READ": "true"}, tmp_path) as base:
        stream = Stream(base, f"/jobs/{job.job_id}/stream")
        assert stream.event() == sent_events(job.job_id)[0]
        stream.close()


# -- 6. the per-process limit -------------------------------------------------------------------------------------

def test_past_the_limit_of_open_streams_a_new_one_gets_503(env, tmp_path, reader):
    # given a server that holds at most two open streams, and two readers holding them
    job = new_blueprint_job()
    with serving("uvicorn", {**env, "EAM_STREAM_MAX_CONNECTIONS": "2"}, tmp_path) as base:
        held = [Stream(base, f"/jobs/{job.job_id}/stream", token=reader) for _ in range(2)]
        for stream in held:
            assert stream.event()["event"] == "BLUEPRINT_SUBMITTED"

        # when a third asks, then it gets a JSON 503 too_many_streams; other requests are served as usual
        third = httpx.get(f"{base}/events/stream", headers={"Authorization": f"Token {reader}"}, timeout=10)
        assert third.status_code == 503 and third.json()["code"] == "too_many_streams"
        assert third.headers["retry-after"] == "5"
        assert httpx.get(f"{base}/jobs/{job.job_id}", headers={"Authorization": f"Token {reader}"}).status_code == 200

        # and once one is closed, its slot is free again (refusals never held one)
        for _ in range(3):
            assert httpx.get(f"{base}/events/stream").status_code in (401, 503)
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            again = Stream(base, f"/jobs/{job.job_id}/stream", token=reader)
            if again.response.status_code == 200:
                break
            again.close()
            assert time.monotonic() < deadline, "the closed stream's slot was never given back"
            time.sleep(0.1)
        assert again.event()["event"] == "BLUEPRINT_SUBMITTED"
        again.close()
        held[0].close()


# -- 7. PostgreSQL: a notice brings the event -----------------------------------------------------------------------

def test_on_postgresql_an_event_from_another_process_arrives_by_notice(server, reader, env):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite streams poll")
    # given a job's stream and the all-jobs stream, both read to their end, on a server that polls every 30 s
    job = new_blueprint_job()
    streams = [Stream(server, f"/jobs/{job.job_id}/stream", token=reader), Stream(server, "/events/stream",
                                                                                  token=reader)]
    assert streams[0].event()["event"] == "BLUEPRINT_SUBMITTED"
    time.sleep(0.5)  # both wait now

    # when another process appends an event
    appended_at = time.monotonic()
    script = ("from tests.builders import append, started; "
              f"append({job.job_id!r}, started('compile'))")
    subprocess.run([sys.executable, "-c", f"import django; django.setup(); {script}"], cwd=REPO_ROOT,
                   env=env, check=True, timeout=60)

    # then both streams have it well before the safety poll
    for stream in streams:
        assert stream.event()["event"] == "STEP_STARTED"
        assert time.monotonic() - appended_at < 5
        stream.close()


# -- the /ui job page follows the stream ----------------------------------------------------------------------------

def test_the_job_page_gains_each_new_event_without_a_reload(chromium, env, tmp_path, reader):
    # given a production-like server (gunicorn with a uvicorn worker, DEBUG off, collected static files)
    job = new_blueprint_job()
    served = {**env, "DEBUG": "false", "EAM_STATIC_ROOT": str(tmp_path / "static"), "EAM_STATIC_MANIFEST": "false"}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=REPO_ROOT, env=served,
                   check=True, capture_output=True, timeout=300)
    with serving("gunicorn-asgi", served, tmp_path) as base:
        context = chromium.new_context(base_url=base)
        context.set_default_timeout(15_000)
        page = context.new_page()

        # and a reviewer on the job's page, its timeline following the stream
        page.goto(f"/ui/login?next=/ui/jobs/{job.job_id}")
        page.get_by_label("Username").fill("rhea")
        page.get_by_label("Password").fill("rhea-pass-123")
        page.get_by_role("button", name="Log in").click()
        timeline = page.locator("table.timeline")
        rows = timeline.locator("tbody tr")
        expect(rows).to_have_count(1)
        expect(timeline).to_have_attribute("data-live", "on")
        page.evaluate("window.sameDocument = true")

        # when the job moves on, then each event becomes a row and the status badge follows, without a reload
        append(job.job_id, started("compile"))
        expect(rows).to_have_count(2)
        expect(rows.last).to_contain_text("STEP_STARTED")
        expect(rows.last).to_contain_text("worker:worker-1")
        expect(page.locator("[data-job-status]")).to_have_text("running")
        append(job.job_id, compiled(job.job_id), waiting("runspec", SHA_A))
        expect(rows).to_have_count(4)
        expect(rows.nth(2)).to_contain_text("RUNSPEC_COMPILED")
        expect(page.locator("[data-job-status]")).to_have_text("waiting approval")
        services.cancel(job_id=job.job_id, actor=SOMEONE_ELSE, reason="enough")
        expect(rows).to_have_count(5)
        expect(page.locator("[data-job-status]")).to_have_text("cancelled")
        expect(timeline).to_have_attribute("data-live", "ended")
        assert page.evaluate("window.sameDocument") is True
        assert [int(seq) for seq in rows.evaluate_all("rows => rows.map(row => row.dataset.seq)")] == [1, 2, 3, 4, 5]
        context.close()


# -- the all-jobs stream and ids that commit out of order (PostgreSQL) ---------------------------------------------

@pytest.mark.django_db(transaction=False)
def test_the_all_jobs_stream_waits_at_a_fresh_gap_and_passes_an_old_one():
    now = datetime.now(timezone.utc)
    fresh, old = now - timedelta(seconds=1), now - GAP_GRACE - timedelta(seconds=1)
    # given ids after cursor 10: contiguous ones are sent
    assert safe_horizon([(11, fresh), (12, fresh)], 10) == (12, False)
    # a missing id whose follower is recent may still commit: the stream stops before the gap and reads again soon
    assert safe_horizon([(11, fresh), (13, fresh), (14, fresh)], 10) == (11, True)
    assert safe_horizon([(12, fresh)], 10) == (10, True)
    # one whose follower is older than GAP_GRACE was rolled back: it is passed
    assert safe_horizon([(11, old), (13, old), (14, fresh)], 10) == (14, False)
