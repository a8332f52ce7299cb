"""A database that cannot be reached, seen from real server processes (runserver and gunicorn): the API
answers 503 `database_unavailable` with Retry-After, the admin and /ui a plain 503 page, never a 500; and once
the database is back every answer is right again, without a restart. The network between server and database
is a relay the test pulls out and plugs in again; the outage test of the workers stops a real server instead
(tests/workflow/test_db_outage.py)."""
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from jobs.models import JobEvent

from ..builders import session_client, waiting_job
from .conftest import serving
from .test_http_scenario import Client

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Cable:
    """A loopback TCP relay to the database server. Pulled out, it cuts every connection through it and hangs
    up on new ones at once, as a dead network or a server being restarted does; plugged in, it relays again."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.plugged, self.open, self.lock = True, [], threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.plugged:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(source, target), daemon=True).start()

    @staticmethod
    def _relay(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            _hang_up(source)
            _hang_up(target)

    def pull(self):
        self.plugged = False
        with self.lock:
            cut, self.open = self.open, []
        for end in cut:
            _hang_up(end)

    def plug(self):
        self.plugged = True

    def close(self):
        self.listener.close()
        self.pull()


def _hang_up(end: socket.socket):
    try:
        end.shutdown(socket.SHUT_RDWR)  # wakes the relay blocked reading it, which a close alone would not
    except OSError:
        pass
    end.close()


@pytest.fixture
def cable():
    if connection.vendor != "postgresql":
        pytest.skip("needs a network between server and database to cut: runs with the suite on PostgreSQL")
    db = connection.settings_dict
    relay = Cable(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    yield relay
    relay.close()


def page(base: str, path: str, session: str) -> tuple[int, dict, bytes]:
    """GET a page with a signed-in browser's session cookie."""
    request = urllib.request.Request(base + path, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_an_unreachable_database_is_a_503_and_the_server_recovers_without_a_restart(kind, cable, process_env,
                                                                                     people, tmp_path):
    # given a server (keeping its database connections open between requests) whose database is behind the cable,
    # a superuser's token and session, and a job waiting at its checkpoint
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    env = dict(process_env, CONN_MAX_AGE="60",
               DATABASE_URL=f"postgres://{db['USER']}{password}@127.0.0.1:{cable.port}/{db['NAME']}")
    api = Client(None, Token.objects.create(user=people.superuser).key)
    session = session_client(people.superuser).cookies[settings.SESSION_COOKIE_NAME].value
    job = waiting_job(people.submitter, "outage")
    events_before = JobEvent.objects.filter(job_id=job.job_id).count()
    reads = ["/jobs", f"/jobs/{job.job_id}", f"/jobs/{job.job_id}/events", "/registry"]
    pages = ["/ui/jobs", f"/ui/jobs/{job.job_id}", "/admin/", "/admin/jobs/jobspec/"]
    with serving(kind, env, tmp_path) as base:
        api.base = base
        assert [api.call("GET", path)[0] for path in reads] == [200] * len(reads)
        assert [page(base, path, session)[0] for path in pages] == [200] * len(pages)

        # when the database cannot be reached
        cable.pull()

        # then every API call, read or write, is a 503 database_unavailable with Retry-After
        for method, path, body in [*[("GET", path, None) for path in reads],
                                   ("POST", f"/jobs/{job.job_id}/approve?step=runspec", {"comment": "fine"})]:
            status, headers, content = api.call(method, path, body)
            assert (status, json.loads(content)["code"]) == (503, "database_unavailable"), (path, content[:500])
            assert headers.get("Retry-After") == "5"
        # and the pages are a plain 503 page, no traceback; the health check says so in its own shape
        for path in pages:
            status, headers, content = page(base, path, session)
            answer = (status, headers.get("Content-Type"), headers.get("Retry-After"))
            assert answer == (503, "text/html; charset=utf-8", "5"), (path, content[:500])
            assert b"Service unavailable" in content and b"Traceback" not in content
        status, _, content = api.call("GET", "/healthz")
        assert (status, json.loads(content)["status"]) == (503, "unavailable")

        # when it is back, then the same server answers as before, with the same session, and nothing was written
        cable.plug()
        assert [api.call("GET", path)[0] for path in reads] == [200] * len(reads)
        assert [page(base, path, session)[0] for path in pages] == [200] * len(pages)
        assert api.call("GET", "/healthz")[0] == 200
    assert JobEvent.objects.filter(job_id=job.job_id).count() == events_before
