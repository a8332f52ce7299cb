"""Bad input on every endpoint: each gives a 4xx with its documented code, never a 500, and writes nothing."""
import io
import json

import pytest
from django.test import RequestFactory

from jobs.api.http import BodySizeLimitMiddleware
from jobs.models import JobState

from ..builders import (
    TINY_SYMBOLS, a_blueprint, a_job_spec, an_idea, assert_error, client_for, counts, error_job, post_json, ran_job,
    waiting_job,
)

pytestmark = pytest.mark.django_db

WRITE_URLS = (
    "/jobs", "/jobs/blueprint?snapshot_id=api_snap", "/jobs/idea?snapshot_id=api_snap",
    "/jobs/{waiting}/approve?step=runspec", "/jobs/{waiting}/reject?step=runspec",
    "/jobs/{broken}/retry", "/jobs/{waiting}/cancel",
)
READ_URLS = (
    "/jobs", "/jobs/{waiting}", "/jobs/{waiting}/events", "/jobs/{waiting}/artifacts",
    "/jobs/{ran}/artifacts/outputs/runspec.json", "/runs/{run}", "/registry", "/snapshots", "/policies",
)
BAD_IDS = ("..", "abc", "0123456789abc", "0123456789AB", "ééééééééééé1", "0123456789a%00", "%2e%2e", "null")


@pytest.fixture
def world(people):
    """A superuser's client (so that permissions never hide an input error) and jobs in each state."""
    waiting = waiting_job(people.submitter, "battery-waiting")
    broken = error_job(people.submitter, "battery-error")
    ran, run_id = ran_job(people.submitter, people.reviewer, "battery-ran")
    ids = {"waiting": waiting.job_id, "broken": broken.job_id, "ran": ran.job_id, "run": run_id}
    return client_for(people.superuser), ids


def raw_post(client, url, data: bytes, content_type="application/json", **extra):
    return client.generic("POST", url, data, content_type=content_type, **extra)


def refused(response, status, code, before) -> dict:
    body = assert_error(response, status, code)
    assert counts() == before
    return body


# -- bodies --------------------------------------------------------------------------------------------------

MALFORMED = [
    (b"{", "malformed_json"),
    (b'{"comment": "x",}', "malformed_json"),
    (b"\xff\xfe not utf-8", "malformed_json"),
    (b'{"reason": NaN}', "malformed_json"),
    (b'{"reason": Infinity}', "malformed_json"),
    (b'{"reason": 1e400}', "malformed_json"),
    (b'{"reason": "a", "reason": "b"}', "malformed_json"),
    (b"[" * 100 + b"]" * 100, "unsupported_json"),
    (b"[" * 100000, "unsupported_json"),
    (b'{"reason": "nul \\u0000 inside"}', "unsupported_json"),
    (b'{"reason": "lone \\ud800 surrogate"}', "unsupported_json"),
    (b'{"x\\u0000": 1}', "unsupported_json"),
]


@pytest.mark.parametrize("url", WRITE_URLS)
@pytest.mark.parametrize("data,code", MALFORMED, ids=[f"malformed{i}" for i in range(len(MALFORMED))])
def test_malformed_json(world, url, data, code):
    client, ids = world
    before = counts()
    refused(raw_post(client, url.format(**ids), data), 400, code, before)


@pytest.mark.parametrize("url", WRITE_URLS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"])
def test_wrong_content_type(world, url, content_type):
    client, ids = world
    before = counts()
    refused(raw_post(client, url.format(**ids), b'{"reason": "x"}', content_type=content_type), 415,
            "unsupported_media_type", before)


@pytest.mark.parametrize("url", WRITE_URLS + READ_URLS)
def test_oversized_body(world, settings, url):
    client, ids = world
    settings.EAM_MAX_BODY_BYTES = 2048
    before = counts()
    body = json.dumps({"reason": "x" * 4096}).encode()
    method = "POST" if url in WRITE_URLS else "GET"
    refused(client.generic(method, url.format(**ids), body, content_type="application/json"), 413, "body_too_large", before)


def test_default_limit_is_one_mebibyte(world):
    client, ids = world
    before = counts()
    body = json.dumps(a_blueprint(name="n" * (1024 * 1024))).encode()
    refused(raw_post(client, "/jobs/blueprint?snapshot_id=api_snap", body), 413, "body_too_large", before)


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_invalid_content_length(world, length):
    client, ids = world
    before = counts()
    response = raw_post(client, "/jobs/{waiting}/cancel".format(**ids), b"{}", CONTENT_LENGTH=length)
    refused(response, 400, "invalid_content_length", before)


# The body of each write that is wrong in one way: (url, body, status, code, JSON pointer of the error)
WRONG_BODIES = [
    ("/jobs/{waiting}/approve?step=runspec", {"comment": 5}, 400, "invalid_input", "/comment"),
    ("/jobs/{waiting}/approve?step=runspec", {"artifact_sha256": "abc"}, 400, "invalid_input", "/artifact_sha256"),
    ("/jobs/{waiting}/approve?step=runspec", {"comment": "x" * 4001}, 400, "invalid_input", "/comment"),
    ("/jobs/{waiting}/approve?step=runspec", {"extra": True}, 400, "invalid_input", "/extra"),
    ("/jobs/{waiting}/approve?step=runspec", [], 400, "invalid_input", ""),
    ("/jobs/{waiting}/approve?step=runspec", "approve", 400, "invalid_input", ""),
    ("/jobs/{waiting}/approve?step=runspec", None, 400, "invalid_input", ""),
    ("/jobs/{waiting}/reject?step=runspec", {}, 400, "reason_required", "/reason"),
    ("/jobs/{waiting}/reject?step=runspec", {"reason": ["no"]}, 400, "invalid_input", "/reason"),
    ("/jobs/{waiting}/reject?step=runspec", {"reason": "   "}, 400, "reason_required", "/reason"),
    ("/jobs/{waiting}/reject?step=runspec", {"reason": "no", "why": "x"}, 400, "invalid_input", "/why"),
    ("/jobs/{broken}/retry", {"reason": True}, 400, "invalid_input", "/reason"),
    ("/jobs/{broken}/retry", {"operator": "me"}, 400, "invalid_input", "/operator"),
    ("/jobs/{waiting}/cancel", {"reason": {"a": 1}}, 400, "invalid_input", "/reason"),
    ("/jobs/blueprint?snapshot_id=api_snap", {**a_blueprint(name="api test"), "strategy": "fast"}, 400, "invalid_job_spec", "/blueprint/strategy"),
    ("/jobs/blueprint?snapshot_id=api_snap", {**a_blueprint(name="api test"), "unknown": 1}, 400, "invalid_job_spec", "/blueprint/unknown"),
    ("/jobs/blueprint?snapshot_id=api_snap", {"schema_version": "blueprint_v1"}, 400, "invalid_job_spec", "/blueprint/evaluation"),
    ("/jobs/blueprint?snapshot_id=api_snap", [1, 2], 400, "invalid_job_spec", "/blueprint"),
    ("/jobs/idea?snapshot_id=api_snap", {"schema_version": "idea_spec_v1", "title": 3}, 400, "invalid_job_spec", "/idea/hypothesis"),
    ("/jobs", {"kind": "blueprint"}, 400, "invalid_job_spec", "/policy_bundle_id"),
    ("/jobs", {"schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": "../x", "policy_bundle_id": "default_v1",
               "blueprint": a_blueprint(name="api test")}, 400, "invalid_job_spec", "/snapshot_id"),
    ("/jobs", {"schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": "s", "policy_bundle_id": "nope",
               "blueprint": a_blueprint(name="api test")}, 400, "unknown_policy_bundle", "/policy_bundle_id"),
    ("/jobs", "spec", 400, "invalid_job_spec", ""),
]


@pytest.mark.parametrize("url,body,status,code,pointer", WRONG_BODIES)
def test_wrong_types_missing_and_unknown_fields(world, url, body, status, code, pointer):
    client, ids = world
    before = counts()
    response = post_json(client, url.format(**ids), body)
    refused(response, status, code, before)
    assert pointer in [e["path"] for e in response.json()["errors"]], response.json()


# -- ids, steps, query parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", BAD_IDS)
@pytest.mark.parametrize("template", [
    "GET /jobs/{id}", "GET /jobs/{id}/events", "GET /jobs/{id}/artifacts", "GET /jobs/{id}/artifacts/outputs/runspec.json",
    "POST /jobs/{id}/approve?step=runspec", "POST /jobs/{id}/reject?step=runspec", "POST /jobs/{id}/retry",
    "POST /jobs/{id}/cancel", "GET /runs/{id}",
])
def test_invalid_ids_are_404_before_any_lookup(world, bad_id, template):
    client, _ = world
    method, url = template.split(" ")
    before = counts()
    body = b'{"reason": "x"}' if method == "POST" else b""
    response = client.generic(method, url.format(id=bad_id), body, content_type="application/json")
    code = "invalid_run_id" if url.startswith("/runs") else "invalid_job_id"
    refused(response, 404, code, before)


@pytest.mark.parametrize("template", ["GET /jobs/{id}", "POST /jobs/{id}/cancel", "GET /runs/{id}"])
def test_unknown_well_formed_ids_are_404(world, template):
    client, _ = world
    method, url = template.split(" ")
    before = counts()
    code = "run_not_found" if url.startswith("/runs") else "job_not_found"
    refused(client.generic(method, url.format(id="0" * 12), b"{}", content_type="application/json"), 404, code, before)


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("query,status,code", [
    ("", 400, "invalid_step"),
    ("?step=", 400, "invalid_step"),
    ("?step=nope", 400, "invalid_step"),
    ("?step=RUNSPEC", 400, "invalid_step"),
    ("?step=compile", 400, "invalid_step"),
    ("?step=runspec&force=1", 400, "invalid_query"),
    ("?step=blueprint", 409, "not_waiting"),
    ("?step=improvements", 409, "not_waiting"),
])
def test_unknown_or_wrong_step(world, action, query, status, code):
    client, ids = world
    before = counts()
    refused(post_json(client, f"/jobs/{ids['waiting']}/{action}{query}", {"reason": "no"} if action == "reject" else {}),
            status, code, before)


@pytest.mark.parametrize("url", [
    "/jobs?status=nope", "/jobs?kind=recipe", "/jobs?waiting_step=compile", "/jobs?root_job_id=xyz",
    "/jobs?snapshot_id=../x", "/jobs?limit=0", "/jobs?limit=1000", "/jobs?limit=ten", "/jobs?colour=blue",
    "/jobs/{waiting}?verbose=1", "/jobs/{waiting}/events?after_seq=-1", "/jobs/{waiting}/events?after_seq=x",
    "/jobs/{waiting}/events?limit=100000", "/jobs/{waiting}/artifacts?all=1", "/registry?root_job_id=../x",
    "/registry?family=a/b", "/registry?limit=-1", "/snapshots?x=1", "/policies?x=1", "/runs/{run}?segment=../x",
    "/runs/{run}?part=curve", "/runs/{run}?segment=holdout&part=everything",
    "/jobs/blueprint?snapshot_id=a/b", "/jobs/blueprint?snapshot_id=api_snap&mode=fast", "/jobs/idea?policy_bundle_id=../p",
    "/jobs?cursor=x", "/jobs?cursor=WzFd", "/jobs?cursor=WyJ4IiwieSJd", "/registry?cursor=WyJ4Il0",
])
def test_invalid_query_parameters(world, url):
    client, ids = world
    before = counts()
    url = url.format(**ids)
    method = "POST" if url.startswith(("/jobs/blueprint", "/jobs/idea")) else "GET"
    response = client.generic(method, url, json.dumps(a_blueprint(name="q")).encode() if method == "POST" else b"",
                              content_type="application/json")
    code = "invalid_cursor" if "cursor=" in url else "invalid_query"
    refused(response, 400, code, before)


def test_submit_checks_its_references(world, settings):
    client, _ = world
    settings.EAM_DEFAULT_SNAPSHOT_ID = ""
    before = counts()
    refused(post_json(client, "/jobs/blueprint", a_blueprint(name="no snap")), 400, "snapshot_id_required", before)
    refused(post_json(client, "/jobs/idea?snapshot_id=s&policy_bundle_id=nope", {"schema_version": "idea_spec_v1",
            "title": "t", "hypothesis": "h", "universe": {"symbols": ["A"]}}), 400, "unknown_policy_bundle", before)
    # a snapshot nobody ingested: refused now, not left to fail at the compile step
    for url, body in (("/jobs/blueprint?snapshot_id=no_such_snap", a_blueprint(name="unknown snap")),
                      ("/jobs/idea?snapshot_id=no_such_snap", an_idea("unknown snap", symbols=TINY_SYMBOLS)),
                      ("/jobs", a_job_spec(a_blueprint(name="unknown snap"), snapshot_id="no_such_snap"))):
        errors = refused(post_json(client, url, body), 400, "unknown_snapshot", before)["errors"]
        assert [e["path"] for e in errors] == ["/snapshot_id"]


# -- conflicts with the job's state -----------------------------------------------------------------------------

def test_conflicts_write_nothing(world, people):
    client, ids = world
    before = counts()
    refused(post_json(client, f"/jobs/{ids['waiting']}/approve?step=runspec", {"artifact_sha256": "b" * 64}), 409,
            "stale_review", before)
    refused(post_json(client, f"/jobs/{ids['waiting']}/retry", {}), 409, "not_in_error", before)
    refused(post_json(client, f"/jobs/{ids['broken']}/approve?step=runspec", {}), 409, "not_waiting", before)
    assert post_json(client, f"/jobs/{ids['waiting']}/approve?step=runspec", {"artifact_sha256": "a" * 64}).status_code == 200
    after_first = counts()
    refused(post_json(client, f"/jobs/{ids['waiting']}/approve?step=runspec", {}), 409, "not_waiting", after_first)
    refused(post_json(client, f"/jobs/{ids['waiting']}/reject?step=runspec", {"reason": "late"}), 409, "not_waiting", after_first)
    assert post_json(client, f"/jobs/{ids['broken']}/cancel", {"reason": "give up"}).status_code == 200
    after_cancel = counts()
    refused(post_json(client, f"/jobs/{ids['broken']}/cancel", {}), 409, "job_ended", after_cancel)
    refused(post_json(client, f"/jobs/{ids['broken']}/retry", {}), 409, "not_in_error", after_cancel)
    assert JobState.objects.get(job_id=ids["broken"]).status == "cancelled"


# -- artifact paths and the holdout ------------------------------------------------------------------------------

@pytest.mark.parametrize("path,status,code", [
    ("../../../etc/passwd", 400, "unsafe_path"),
    ("outputs/../../x/job_spec.json", 400, "unsafe_path"),
    ("%2e%2e/%2e%2e/etc/passwd", 400, "unsafe_path"),
    ("%252e%252e/x", 400, "unsafe_path"),
    ("..%5c..%5cwindows", 400, "unsafe_path"),
    ("outputs\\runspec.json", 400, "unsafe_path"),
    ("outputs/runspec.json%00.txt", 400, "unsafe_path"),
    ("/etc/passwd", 400, "unsafe_path"),
    ("C:/x", 400, "unsafe_path"),
    ("outputs//runspec.json", 400, "unsafe_path"),
    ("./outputs/runspec.json", 400, "unsafe_path"),
    ("outputs/ünïcode.json", 400, "unsafe_path"),
    ("dossier/../../../etc/passwd", 400, "unsafe_path"),
    ("dossier/segments/holdout/curve.csv", 404, "holdout_hidden"),
    ("dossier/segments/holdout/trades.csv", 404, "holdout_hidden"),
    ("outputs/.tmp-x.part", 404, "artifact_not_found"),
    ("dossier", 404, "artifact_not_found"),
    ("nothing/here.json", 404, "artifact_not_found"),
])
def test_artifact_paths_never_leave_the_job(world, path, status, code):
    client, ids = world
    refused(client.get(f"/jobs/{ids['ran']}/artifacts/{path}"), status, code, counts())


@pytest.mark.parametrize("part", ["curve", "trades"])
def test_holdout_curve_and_trades_are_hidden(world, part):
    client, ids = world
    refused(client.get(f"/runs/{ids['run']}?segment=holdout&part={part}"), 404, "holdout_hidden", counts())


# -- methods and routes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,url", [
    ("GET", "/jobs/blueprint"), ("PUT", "/jobs"), ("DELETE", "/jobs/{waiting}"), ("PATCH", "/jobs/{waiting}"),
    ("GET", "/jobs/{waiting}/approve"), ("POST", "/jobs/{waiting}/events"), ("DELETE", "/runs/{run}"),
    ("POST", "/registry"), ("PUT", "/snapshots"), ("POST", "/policies"), ("POST", "/healthz"),
])
def test_methods_not_allowed(world, method, url):
    client, ids = world
    before = counts()
    response = client.generic(method, url.format(**ids), b"{}", content_type="application/json")
    refused(response, 405, "method_not_allowed", before)


@pytest.mark.parametrize("url", ["/nowhere", "/jobs/{waiting}/nothing", "/jobs/{waiting}/events/1", "/api", "/runs"])
def test_unknown_routes_are_json_404(world, url):
    client, ids = world
    response = client.get(url.format(**ids))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png", "*/*", "nonsense"])
def test_any_accept_header_gets_json(world, accept):
    client, ids = world
    response = client.get(f"/jobs/{ids['waiting']}", HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"


# -- bodies without a length ---------------------------------------------------------------------------------------

def _chunked_request(body: bytes, terminated: bool):
    request = RequestFactory().generic("POST", "/jobs", body, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.META["wsgi.input"] = io.BytesIO(body)  # as a server hands over a dechunked body: it ends
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    if terminated:
        request.META["wsgi.input_terminated"] = True
    return request


def test_chunked_bodies_are_limited_too(settings):
    settings.EAM_MAX_BODY_BYTES = 100
    seen = []
    middleware = BodySizeLimitMiddleware(lambda request: seen.append(request.body) or "passed")

    assert middleware(_chunked_request(b'{"a": 1}', terminated=True)) == "passed"
    assert seen == [b'{"a": 1}']
    too_big = middleware(_chunked_request(b"x" * 101, terminated=True))
    assert too_big.status_code == 413 and json.loads(too_big.content)["code"] == "body_too_large"
    unknown_end = middleware(_chunked_request(b"{}", terminated=False))
    assert unknown_end.status_code == 411 and json.loads(unknown_end.content)["code"] == "length_required"
    assert len(seen) == 1
