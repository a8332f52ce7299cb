"""Fixtures of the API tests, and the real server processes some of them talk to; the builders are in
tests/builders/."""
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

from ..builders import MONTH, SNAPSHOT, a_snapshot
from ..conftest import REPO_ROOT

SERVERS = {
    # Django's development server, as `make serve` runs it.
    "runserver": lambda port: [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
    # What the Docker image runs, with threads so that keep-alive is on.
    "gunicorn": lambda port: [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                              "--threads", "2", "--no-control-socket", "eam_site.wsgi:application"],
    # ASGI, for the event streams: uvicorn alone, and gunicorn managing a uvicorn worker as in production.
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "eam_site.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "5"],
    "gunicorn-asgi": lambda port: [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                                   "-k", "uvicorn_worker.UvicornWorker", "--no-control-socket",
                                   "eam_site.asgi:application"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(kind: str, env: dict, folder):
    """A real server process of `kind` on a free loopback port, on the test's database; its base URL. It is
    stopped afterwards; a server that does not come up fails the test with its log."""
    port = free_port()
    log_path = folder / f"{kind}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(SERVERS[kind](port), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        try:
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(autouse=True)
def _snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    a_snapshot(SNAPSHOT, span=MONTH)
