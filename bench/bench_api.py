"""API benchmark: requests per second and p50/p99 latency of `GET /jobs/{id}` and
`GET /jobs?status=waiting_approval` with 10,000 jobs in the database, against a bare Django view that
returns a constant JSON from the same server process, in one run.

Run from the repository root: `.venv/bin/python bench/bench_api.py [--jobs 10000] [--requests 2000]
[--clients 1,4] [--database-url postgres://...]`. It makes a throwaway SQLite database (or uses the given
one, which must be empty) and artifact root, writes the jobs through `jobs.events.create_job` and
`append_events` (the real append path) in one transaction, starts `manage.py runserver` on a free loopback
port (Django's threaded development server, as `runserver` runs it, with TCP_NODELAY) with
bench/api_settings.py (the real urlconf plus the bare view) and sends a bounded number of
requests with DRF token authentication over keep-alive connections, in five alternating batches per
endpoint, so that a busy moment of the machine does not fall on one endpoint only. The server counts each
request's queries (bench/api_settings.py) and the bench prints the most any request of an endpoint sent.
Targets: a job's detail at p50 <= 3 ms with at most 3 queries a request; list p99 under 100 ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DETAIL_P50_TARGET_MS = 3.0
DETAIL_QUERIES_TARGET = 3
LIST_P99_TARGET_MS = 100.0
WAITING_EVERY = 4  # one job in four waits at its runspec checkpoint
MAX_SECONDS_PER_MEASUREMENT = 120
TURNS = 5  # batches per endpoint, alternating between the endpoints


def prepare_environment(database_url: str | None, conn_max_age: int) -> dict:
    env = dict(os.environ)
    if database_url is None:
        db_file = REPO_ROOT / "var" / "bench-api.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_file}{suffix}").unlink(missing_ok=True)
        database_url = f"sqlite:///{db_file}"
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=env.get("SECRET_KEY") or "eam-bench-only-key",
        DEBUG="false",
        EAM_ARTIFACT_ROOT=tempfile.mkdtemp(prefix="eam-bench-api-"),
        DJANGO_SETTINGS_MODULE="bench.api_settings",
        PYTHONPATH=str(REPO_ROOT),
        LOG_LEVEL="ERROR",
        CONN_MAX_AGE=str(conn_max_age),
    )
    return env


def seed(n_jobs: int) -> tuple[str, str, str]:
    """Write n_jobs blueprint jobs (every WAITING_EVERY-th waiting at runspec, the last one done); returns
    (token, a waiting job id, the done job's id)."""
    import django

    django.setup()
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from contracts import canonical_json, content_id, sha256_hex
    from jobs import events
    from jobs.events import Actor, NewEvent, append_events, create_job, now
    from jobs.models import JobSpec
    from jobs.pipelines import EventType as E
    from jobs.roles import ensure_roles

    submitter, worker = Actor.user("bench-submitter"), Actor.worker("bench-worker")
    waiting_id = None
    started = time.perf_counter()
    with transaction.atomic():
        ensure_roles(apps)
        reviewer = get_user_model().objects.create_user("bench-reviewer", password="bench-reviewer-pass")
        reviewer.groups.add(apps.get_model("auth", "Group").objects.get(name="reviewers"))
        token = Token.objects.create(user=reviewer).key
        for i in range(n_jobs):
            blueprint = {
                "schema_version": "blueprint_v1", "name": f"bench {i}",
                "strategy": {"family": "sma_crossover", "params": {"fast": 10, "slow": 50}},
                "universe": {"symbols": ["ACME", "BOLT"]}, "evaluation": {"protocol": "walk_forward"},
            }
            spec = {"schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": "bench_snap",
                    "policy_bundle_id": "default_v1", "blueprint": blueprint}
            job_id = content_id(spec)
            job = JobSpec(job_id=job_id, kind="blueprint", spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
                          snapshot_id="bench_snap", policy_bundle_id="default_v1", root_job_id=job_id,
                          created_at=now(), submitted_by=submitter.id)
            create_job(spec=job, submit_event=NewEvent(
                E.BLUEPRINT_SUBMITTED, submitter,
                payload={"submitter": submitter.id, "inputs_sha256": sha256_hex(canonical_json(blueprint))}))
            if i % WAITING_EVERY == 0:
                sha = sha256_hex(job_id)
                artifact = {"path": f"jobs/{job_id}/outputs/runspec.json", "sha256": sha, "bytes": 1000}
                append_events(job_id=job_id, expected_seq=2, events=[
                    NewEvent(E.STEP_STARTED, worker, step="compile",
                             payload={"attempt": 1, "worker": worker.id, "lease_expires_at": "2030-01-01T00:00:00.000000Z"}),
                    NewEvent(E.RUNSPEC_COMPILED, worker, step="compile",
                             payload={"artifacts": [artifact], "summary": {"run_id": job_id}}),
                    NewEvent(E.WAITING_APPROVAL, worker, step="runspec", payload={"artifact_sha256": sha}),
                ])
                waiting_id = waiting_id or job_id
        done_id = job_id
        seq = 2 if (n_jobs - 1) % WAITING_EVERY else 5
        steps = [] if seq == 5 else [("compile", E.RUNSPEC_COMPILED)]
        for step, result in steps:
            append_events(job_id=done_id, expected_seq=seq, events=[
                events.step_started(step=step, worker_id=worker.id, attempt=1, lease_expires_at=now()),
                events.step_completed(result, step=step, worker_id=worker.id, artifacts=[], summary={}),
                events.waiting_approval(checkpoint="runspec", worker_id=worker.id, artifact_sha256="a" * 64,
                                        artifact_path=None)])
            seq += 3
        append_events(job_id=done_id, expected_seq=seq, events=[
            events.approved(step="runspec", actor=Actor.user("bench-reviewer"), comment="", artifact_sha256=None),
            *[e for step, result in (("run", E.RUN_COMPLETED), ("gates", E.GATES_COMPLETED),
                                     ("registry", E.REGISTRY_UPDATED))
              for e in (events.step_started(step=step, worker_id=worker.id, attempt=1, lease_expires_at=now()),
                        events.step_completed(result, step=step, worker_id=worker.id, artifacts=[], summary={}))],
            events.done(worker_id=worker.id)])
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk load: plans from real counts
    print(f"seeded {n_jobs} jobs ({n_jobs // WAITING_EVERY + 1} waiting, 1 done) in {time.perf_counter() - started:.1f}s")
    return token, waiting_id, done_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(port: int) -> None:
    """The server process: Django's threaded development server (what runserver runs), with Nagle's
    algorithm off on each connection, so that a response written in two pieces (headers, then body) is not
    held back 40 ms waiting for the client's delayed ACK. Same server for the bare view and the API."""
    import django

    django.setup()
    from django.core.servers.basehttp import WSGIServer, run
    from django.core.wsgi import get_wsgi_application

    class NoDelayWSGIServer(WSGIServer):
        def get_request(self):
            sock, address = super().get_request()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock, address

    run("127.0.0.1", port, get_wsgi_application(), threading=True, server_cls=NoDelayWSGIServer)


def start_server(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def measure(port: int, path: str, headers: dict, n_requests: int, clients: int) -> tuple[list[float], float, int]:
    """n_requests GETs of path spread over `clients` threads, each on its own keep-alive connection:
    (the latencies, the seconds it took, the most queries one request sent)."""
    latencies: list[float] = []
    queries = [0]
    lock = threading.Lock()
    share = n_requests // clients
    deadline = time.monotonic() + MAX_SECONDS_PER_MEASUREMENT

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(share):
            if time.monotonic() > deadline:
                break
            begin = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - begin)
            queries[0] = max(queries[0], int(response.getheader("X-Queries", "0")))
            if response.status != 200:
                raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, queries[0]


def measure_in_turns(port: int, endpoints: dict, n_requests: int, clients: int) -> dict:
    """Every endpoint measured in TURNS alternating batches (bare, detail, …, bare, detail, …), so that the
    machine's slow and fast moments fall on all of them alike; figures per endpoint over all its batches."""
    latencies = {name: [] for name in endpoints}
    seconds = dict.fromkeys(endpoints, 0.0)
    queries = dict.fromkeys(endpoints, 0)
    for _ in range(TURNS):
        for name, (path, headers) in endpoints.items():
            batch, elapsed, most = measure(port, path, headers, n_requests // TURNS, clients)
            latencies[name] += batch
            seconds[name] += elapsed
            queries[name] = max(queries[name], most)
    results = {}
    for name, measured in latencies.items():
        ordered = sorted(measured)
        results[name] = {
            "requests": len(ordered),
            "rps": len(ordered) / seconds[name],
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "queries": queries[name],
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000, help="per endpoint and client count")
    parser.add_argument("--clients", default="1,4", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--database-url", default=None, help="an empty database (default: throwaway SQLite)")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="CONN_MAX_AGE of the server (persistent database connections, as in production)")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    env = prepare_environment(args.database_url, args.conn_max_age)
    os.environ.update(env)
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True)
    if migrate.returncode != 0:
        raise SystemExit(migrate.stderr)
    token, waiting_id, done_id = seed(args.jobs)
    from django.db import connections

    connections.close_all()
    port = free_port()
    server = start_server(env, port)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    endpoints = {
        "bare view": ("/bench/bare", headers),
        "bare DRF view (token auth)": ("/bench/bare-drf", headers),
        "GET /jobs/{id}": (f"/jobs/{waiting_id}", headers),
        "GET /jobs/{id} (done)": (f"/jobs/{done_id}", headers),
        "GET /jobs?status=waiting_approval": ("/jobs?status=waiting_approval", headers),
    }
    results = {}
    try:
        for path, sent in endpoints.values():
            measure(port, path, sent, 100, 1)  # warm up
        for clients in (int(c) for c in args.clients.split(",")):
            for name, figures in measure_in_turns(port, endpoints, args.requests, clients).items():
                results[(name, clients)] = figures
    finally:
        server.terminate()
        server.wait(timeout=10)

    database = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
    print(f"\n{args.jobs} jobs on {database} (CONN_MAX_AGE={args.conn_max_age}), Django's threaded dev server "
          "on loopback, token auth, keep-alive")
    print(f"{'endpoint':<36} {'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'queries':>7}")
    for (name, clients), r in results.items():
        print(f"{name:<36} {clients:>7} {r['requests']:>8} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
              f" {r['queries']:>7}")
    verdicts = []
    for clients in sorted({c for _, c in results}):
        for name in ("GET /jobs/{id}", "GET /jobs/{id} (done)"):
            detail = results[(name, clients)]
            met = detail["p50_ms"] <= DETAIL_P50_TARGET_MS and detail["queries"] <= DETAIL_QUERIES_TARGET
            verdicts.append(met)
            print(f"{clients} client(s), {name}: p50 {detail['p50_ms']:.2f} ms (target <= {DETAIL_P50_TARGET_MS}),"
                  f" {detail['queries']} queries (target <= {DETAIL_QUERIES_TARGET}): {'met' if met else 'NOT met'}")
        list_p99 = results[("GET /jobs?status=waiting_approval", clients)]["p99_ms"]
        verdicts.append(list_p99 < LIST_P99_TARGET_MS)
        print(f"{clients} client(s): list p99 {list_p99:.1f} ms (target < {LIST_P99_TARGET_MS:.0f} ms)")
    print(json.dumps({f"{name} x{clients}": r for (name, clients), r in results.items()}, indent=1))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
