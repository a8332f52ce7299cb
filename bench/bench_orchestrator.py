"""Throughput of the blueprint pipeline: jobs/s, events/s and SQL statements per job.

Flow (per database, step kind and worker count, each on a fresh database): submit N blueprints on a tiny
snapshot, let the workers take every job to the runspec checkpoint, approve every job through the service,
let the workers finish them. The clock covers all of it: submits, both halves, approvals, waiting.

Steps:   `noop`   every step returns at once: the engine alone (claims, leases, events, hash chain, fencing,
                  approval), the work a workflow engine does, comparable with other engines' no-op figures;
         `kernel` the real research steps (compile, backtest and dossier, gates, registry).
Workers: `warm`   N `run_jobs` processes in loop mode, started before the clock (a deployed worker);
         `cold`   N `run_jobs --once` processes per half, so process start-up is inside the clock (cron).
Statements per job are counted in-process with one worker (BEGIN, COMMIT and SAVEPOINT included).

    .venv/bin/python bench/bench_orchestrator.py [--jobs 200] [--databases sqlite,postgresql]
                                                 [--steps noop,kernel] [--modes warm,cold]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(url: str, artifacts: str):
    os.environ.update(DATABASE_URL=url, EAM_ARTIFACT_ROOT=artifacts, DJANGO_SETTINGS_MODULE="eam_site.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    import django

    django.setup()


def blueprints(n):
    for i in range(n):
        yield {
            "schema_version": "blueprint_v1", "name": f"bench {i}",
            "strategy": {"family": "sma_crossover", "params": {"fast": 2 + i % 20, "slow": 25 + (i // 20) % 40}},
            "universe": {"symbols": ["AAA", "BBB"]},
            "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
        }


WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|WITH\b.*\b(INSERT|UPDATE|DELETE)\b)", re.I | re.S)


class StatementCounter:
    """Statements and commits one connection sends while it is entered.

    Statements: each one the execute_wrapper sees (SQLite's BEGIN and every SAVEPOINT/RELEASE pass through
    it), plus what the driver sends by itself: the COMMIT or ROLLBACK of `_commit`/`_rollback` and, on
    PostgreSQL, the BEGIN psycopg sends before a transaction's first statement.
    Commits: each `_commit`, plus each write run outside a transaction (it commits alone): an INSERT, UPDATE
    or DELETE, or a WITH whose parts write (EAM's append statement).
    """

    def __init__(self, connection):
        self.connection, self.count, self.commits = connection, 0, 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if not self.connection.in_atomic_block and WRITE.match(sql):
            self.commits += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        conn = self.connection
        step = 2 if conn.vendor == "postgresql" else 1  # psycopg's own BEGIN, then the COMMIT/ROLLBACK
        self._originals = {name: getattr(conn, name) for name in ("_commit", "_rollback")}

        def commit(*a, **k):
            self.count += step
            self.commits += 1
            return self._originals["_commit"](*a, **k)

        def rollback(*a, **k):
            self.count += step
            return self._originals["_rollback"](*a, **k)

        conn._commit, conn._rollback = commit, rollback
        self._wrapper = conn.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)
        for name, original in self._originals.items():
            setattr(self.connection, name, original)



NOOP_EXECUTORS = ",".join(f"{step}=bench.noop_steps.execute" for step in ("compile", "run", "gates", "registry"))
REVIEWER = ("user", "bench-reviewer")


def submit_all(n):
    from jobs import services
    from jobs.events import Actor

    submitter = Actor("user", "bench-submitter")
    return [services.submit_blueprint(blueprint=bp, snapshot_id="bench_snap", actor=submitter)[0].job_id
            for bp in blueprints(n)]


def approve_all(ids):
    from jobs import services
    from jobs.events import Actor
    from jobs.models import JobState

    for state in JobState.objects.filter(job_id__in=ids, status="waiting_approval").only("job_id", "waiting_step"):
        services.approve(job_id=state.job_id, step=state.waiting_step, actor=Actor(*REVIEWER))


def wait_for(status, n, timeout=600.0):
    """Until n jobs have `status`; fails on a job in ERROR (a broken run must not pass for a slow one)."""
    from django.db.models import Count

    from jobs.models import JobState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = dict(JobState.objects.values_list("status").annotate(n=Count("job_id")))
        if counts.get("error"):
            raise SystemExit(f"jobs went to ERROR: {counts}")
        if counts.get(status, 0) >= n:
            return
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {n} jobs in {status}")


def worker_command(k, once):
    mode = ["--once"] if once else ["--interval", "0.01"]
    return [sys.executable, "manage.py", "run_jobs", *mode, "--worker-id", f"bench-{k}"]


def flow_warm(n, workers, env):
    """Loop-mode workers, started (and past their start-up) before the clock starts."""
    procs = [subprocess.Popen(worker_command(k, once=False), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for k in range(workers)]
    try:
        time.sleep(3.0)
        started = time.perf_counter()
        ids = submit_all(n)
        wait_for("waiting_approval", n)
        approve_all(ids)
        wait_for("done", n)
        return ids, time.perf_counter() - started
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode:
                raise SystemExit(err.decode())


def flow_cold(n, workers, env):
    """`run_jobs --once` processes for each half: their start-up is on the clock, as under cron."""

    def passes():
        procs = [subprocess.Popen(worker_command(k, once=True), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for k in range(workers)]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                raise SystemExit(err.decode())

    started = time.perf_counter()
    ids = submit_all(n)
    passes()
    approve_all(ids)
    passes()
    return ids, time.perf_counter() - started


def flow_counted(n):
    """One in-process worker with every statement counted."""
    from django.db import connection

    from workflow.orchestrator import WorkerConfig, run_pass

    with StatementCounter(connection) as counter:
        started = time.perf_counter()
        ids = submit_all(n)
        run_pass(WorkerConfig("bench-0", 300, 3, 5.0))
        approve_all(ids)
        run_pass(WorkerConfig("bench-0", 300, 3, 5.0))
        seconds = time.perf_counter() - started
    return ids, seconds, counter.count


def child(url, artifacts, n, workers, mode, steps):
    """One measurement in a fresh process on a fresh database; prints one result line."""
    if steps == "noop":
        os.environ["EAM_STEP_EXECUTORS"] = NOOP_EXECUTORS
    setup_django(url, artifacts)
    from django.core.management import call_command

    from jobs.models import JobEvent, JobState
    from research.demo_data import demo_csv
    from research.snapshots import ingest_csv

    call_command("migrate", verbosity=0)
    ingest_csv(snapshot_id="bench_snap", data=demo_csv("bench_snap", symbols=("AAA", "BBB"), start="2019-01-01",
                                                          end="2023-01-01"))
    env = dict(os.environ)
    statements = None
    if mode == "counted":
        ids, seconds, statements = flow_counted(n)
    else:
        ids, seconds = (flow_warm if mode == "warm" else flow_cold)(n, workers, env)
    done = JobState.objects.filter(job_id__in=ids, status="done").count()
    print(repr({"seconds": seconds, "done": done, "events": JobEvent.objects.count(), "statements": statements}))


def fresh_database(kind, tag):
    artifacts = ROOT / "var" / f"bench-orch-artifacts-{tag}"
    subprocess.run(["rm", "-rf", str(artifacts)], check=True)
    if kind == "sqlite":
        path = ROOT / "var" / f"bench-orch-{tag}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}", str(artifacts)
    base = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    name = "eam_bench_orch_" + tag.replace("-", "_")
    quiet = ["psql", "-q", f"{base}/postgres", "-c", "SET client_min_messages = warning", "-c"]
    subprocess.run([*quiet, f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run([*quiet, f"CREATE DATABASE {name}"], check=True)
    return f"{base}/{name}", str(artifacts)


def measure(kind, n, workers, mode, steps):
    tag = f"{kind}-{steps}-{mode}-{workers}"
    url, artifacts = fresh_database(kind, tag)
    out = subprocess.run([sys.executable, __file__, "--child", url, artifacts, str(n), str(workers), mode, steps],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    import ast

    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, url, artifacts, n, workers, mode, steps = sys.argv
        child(url, artifacts, int(n), int(workers), mode, steps)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--steps", default="noop,kernel")
    parser.add_argument("--modes", default="warm,cold")
    args = parser.parse_args()
    for option, given, known in (("--steps", args.steps, {"noop", "kernel"}), ("--modes", args.modes, {"warm", "cold"}),
                                 ("--databases", args.databases, {"sqlite", "postgresql"})):
        if not set(given.split(",")) <= known:
            parser.error(f"{option} takes a comma-separated subset of {sorted(known)}")
    print(f"blueprint pipeline, {args.jobs} jobs, tiny snapshot (2 symbols x 4 years)")
    print(f"{'database':<11} {'steps':<7} {'workers':<12} {'jobs/s':>7} {'events/s':>9} {'done':>5} {'stmts/job':>9}")
    for kind in args.databases.split(","):
        for steps in args.steps.split(","):
            for mode in args.modes.split(","):
                for workers in (1, 2):
                    r = measure(kind, args.jobs, workers, mode, steps)
                    print(f"{kind:<11} {steps:<7} {f'{workers} {mode}':<12} {r['done'] / r['seconds']:>7.1f} "
                          f"{r['events'] / r['seconds']:>9.1f} {r['done']:>5} {'':>9}", flush=True)
            r = measure(kind, min(args.jobs, 50), 1, "counted", steps)
            print(f"{kind:<11} {steps:<7} {'1 in-process':<12} {r['done'] / r['seconds']:>7.1f} "
                  f"{r['events'] / r['seconds']:>9.1f} {r['done']:>5} {r['statements'] / r['done']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
