"""The edges of HTTP, sent byte for byte over a socket to real server processes: runserver (what `make serve`
runs) and gunicorn (what the Docker image runs). Django's test client builds its requests itself and skips
the server, so it cannot see what these do. Every refusal is a 4xx with the documented JSON `code` (or, where
the server itself refuses a request before the application sees it, the server's own 4xx); never a 5xx, and
nothing is written."""
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from research.artifacts import write_artifact

from ..builders import a_blueprint, counts, waiting_job
from .conftest import serving

pytestmark = pytest.mark.slow


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    @property
    def code(self) -> str | None:
        if not self.headers.get("content-type", "").startswith("application/json"):
            return None
        return json.loads(self.body).get("code")


def exchange(base: str, head: str, body: bytes = b"") -> Answer:
    """Send one request as raw bytes (`head` without its final blank line) and read the answer."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            assert chunk, f"the server closed the connection without an answer: {received!r}"
            received += chunk
        top, rest = received.split(b"\r\n\r\n", 1)
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(rest) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return Answer(status, headers, rest[:length])
        # No length (runserver, whose connection stays open while it reads and drops a refused body): the
        # body is what comes before the server closes the connection or goes quiet.
        conn.settimeout(2)
        try:
            while chunk := conn.recv(65536):
                rest += chunk
        except TimeoutError:
            pass
    if headers.get("transfer-encoding", "").lower() == "chunked":
        rest = dechunked(rest)
    return Answer(status, headers, rest)


def dechunked(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2:]
    return body


@pytest.fixture(params=["runserver", "gunicorn"])
def server(request, artifact_root, process_env, tmp_path):  # the test's own artifact root, also the server's
    with serving(request.param, process_env, tmp_path) as base:
        yield request.param, base


@pytest.fixture
def given(people, artifact_root, tmp_path):
    """A superuser's token, a job waiting at its runspec checkpoint, one of its files on disk, and a folder
    linked into the job's folder from outside the job (with a name no artifact could have)."""
    token = Token.objects.create(user=people.superuser).key
    job = waiting_job(people.submitter, "edges")
    write_artifact(f"jobs/{job.job_id}/outputs/note.json", b'{"note": 1}\n')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "not ours.txt").write_text("outside the storage root")
    (artifact_root / "jobs" / job.job_id / "linked").symlink_to(outside, target_is_directory=True)
    return token, job.job_id


def post(path: str, token: str, *headers: str) -> str:
    return "\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Token {token}", *headers])


def get(path: str, token: str, *headers: str) -> str:
    return "\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Token {token}",
                      "Connection: close", *headers])


def test_every_refusal_is_a_json_4xx_with_its_code(server, given):
    kind, base = server
    token, job_id = given
    body = b'{"comment": "fine"}'
    approve = f"/jobs/{job_id}/approve?step=runspec"
    json_type = "Content-Type: application/json"
    refusals = {
        # point 11: the body size check, whatever the Content-Length says (and chunked bodies on runserver)
        "Content-Length over the limit": (
            post(approve, token, json_type, f"Content-Length: {settings.EAM_MAX_BODY_BYTES + 1}", "Connection: close"),
            body, 413, "body_too_large"),
        "Content-Length abc": (post(approve, token, json_type, "Content-Length: abc", "Connection: close"), body,
                               400, "invalid_content_length"),
        "Content-Length -1": (post(approve, token, json_type, "Content-Length: -1", "Connection: close"), body,
                              400, "invalid_content_length"),
        "Content-Length 2, 2": (post(approve, token, json_type, "Content-Length: 2, 2", "Connection: close"), body,
                                400, "invalid_content_length"),
        "Content-Length 0x2": (post(approve, token, json_type, "Content-Length: 0x2", "Connection: close"), body,
                               400, "invalid_content_length"),
        # point 14: documented codes, strict queries, ids as given, JSON named exactly
        "reject without a reason": (
            post(f"/jobs/{job_id}/reject?step=runspec", token, json_type, "Content-Length: 2", "Connection: close"),
            b"{}", 400, "reason_required"),
        "a step where none is taken": (
            post(f"/jobs/{job_id}/retry?step=runspec", token, json_type, "Content-Length: 2", "Connection: close"),
            b"{}", 400, "invalid_query"),
        "a parameter given twice": (
            post(approve + "&step=runspec", token, json_type, f"Content-Length: {len(body)}", "Connection: close"),
            body, 400, "invalid_query"),
        "Content-Type */*": (post(approve, token, "Content-Type: */*", f"Content-Length: {len(body)}",
                                  "Connection: close"), body, 415, "unsupported_media_type"),
        "Content-Type application/*": (post(approve, token, "Content-Type: application/*",
                                            f"Content-Length: {len(body)}", "Connection: close"),
                                       body, 415, "unsupported_media_type"),
        "an unknown charset": (post(approve, token, "Content-Type: application/json; charset=latin-1",
                                    f"Content-Length: {len(body)}", "Connection: close"),
                               body, 415, "unsupported_media_type"),
        "a job id with blanks around it": (get(f"/jobs?root_job_id=%20{job_id}%20", token), b"", 400, "invalid_query"),
        "a job id with a trailing newline": (get(f"/jobs?root_job_id={job_id}%0a", token), b"", 400, "invalid_query"),
        "a path id with a trailing newline": (get(f"/jobs/{job_id}%0a", token), b"", 404, "invalid_job_id"),
        "a status that does not exist": (get("/jobs?status=bogus", token), b"", 400, "invalid_query"),
        "a family that does not exist": (get("/registry?family=bogus", token), b"", 400, "invalid_query"),
        # point 12: a name longer than any file system allows
        "a path part of 300 bytes": (get(f"/jobs/{job_id}/artifacts/outputs/{'a' * 300}", token), b"", 404,
                                     "artifact_not_found"),
    }
    if kind == "runserver":
        # wsgiref cannot tell where a chunked body ends; gunicorn decodes it (tested below)
        refusals["chunked"] = (post(approve, token, json_type, "Transfer-Encoding: chunked", "Connection: close"),
                               b"13\r\n" + body + b"\r\n0\r\n\r\n", 411, "length_required")
    before = counts()
    for name, (head, sent, status, code) in refusals.items():
        answer = exchange(base, head, sent)
        assert answer.status < 500, (name, answer)
        if answer.code is None and kind == "gunicorn" and name.startswith("Content-Length"):
            # gunicorn refuses a malformed Content-Length itself, before the application sees the request
            assert answer.status == 400, (name, answer)
            continue
        assert (answer.status, answer.code) == (status, code), (name, answer)
    assert counts() == before


def test_what_is_not_refused(server, given):
    kind, base = server
    token, job_id = given

    # point 13: the listing neither follows nor shows a folder linked in from outside the job
    listing = exchange(base, get(f"/jobs/{job_id}/artifacts", token))
    assert listing.status == 200, listing
    paths = [artifact["path"] for artifact in json.loads(listing.body)["artifacts"]]
    assert "outputs/note.json" in paths and not any(path.startswith("linked") for path in paths), paths

    # point 14: an artifact's ETag answers a 304
    note = exchange(base, get(f"/jobs/{job_id}/artifacts/outputs/note.json", token))
    assert note.status == 200 and note.body == b'{"note": 1}\n', note
    again = exchange(base, get(f"/jobs/{job_id}/artifacts/outputs/note.json", token,
                               f"If-None-Match: {note.headers['etag']}"))
    assert (again.status, again.body, again.headers["etag"]) == (304, b"", note.headers["etag"])

    # UTF-8 named outright is JSON too
    blueprint = json.dumps(a_blueprint(name=f"utf-8 on {kind}")).encode()
    named = exchange(base, post("/jobs/blueprint?snapshot_id=api_snap", token,
                                "Content-Type: application/json; charset=UTF-8", f"Content-Length: {len(blueprint)}",
                                "Connection: close"), blueprint)
    assert named.status == 201, named
    if kind == "gunicorn":
        # gunicorn decodes a chunked body for the application, which then reads it like any other
        chunked = json.dumps(a_blueprint(name="chunked")).encode()
        sent = f"{len(chunked):x}\r\n".encode() + chunked + b"\r\n0\r\n\r\n"
        answer = exchange(base, post("/jobs/blueprint?snapshot_id=api_snap", token, "Content-Type: application/json",
                                     "Transfer-Encoding: chunked", "Connection: close"), sent)
        assert answer.status == 201, answer
