"""Throughput of the whole blueprint pipeline: jobs/s, events/s and SQL statements per job.

For each database (SQLite file, and PostgreSQL when BENCH_PG_URL or 127.0.0.1:5432 answers) and for 1 and 2
worker processes: submit N blueprints on a tiny snapshot, run `run_jobs --once` workers (they stop at the
runspec checkpoint), approve every job through the service, run the workers again. The time covers submit,
both passes and the approvals. Statements per job are counted in-process with one worker (BEGIN, COMMIT and
SAVEPOINT included), over the same flow.

    .venv/bin/python bench/bench_orchestrator.py [--jobs 200]
"""
import argparse
import os
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


class StatementCounter:
    """Counts every statement the connection sends, plus the transaction boundaries Django issues itself."""

    def __init__(self, connection):
        self.connection, self.count = connection, 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        conn = self.connection
        self._patched = {}
        for name in ("_commit", "_rollback", "_savepoint", "_savepoint_commit", "_savepoint_rollback",
                     "_start_transaction_under_autocommit"):
            original = getattr(conn, name, None)
            if original is None:
                continue
            self._patched[name] = original

            # PostgreSQL opens each transaction with an implicit BEGIN that the driver sends itself.
            step = 2 if conn.vendor == "postgresql" and name in ("_commit", "_rollback") else 1

            def wrapped(*a, _original=original, _step=step, **k):
                self.count += _step
                return _original(*a, **k)

            setattr(conn, name, wrapped)
        self._wrapper = conn.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)
        for name, original in self._patched.items():
            setattr(self.connection, name, original)


def flow(n, workers, env, count_statements=False):
    from django.db import connection

    from jobs import services
    from jobs.actors import Actor
    from jobs.models import JobEvent, JobState
    from workflow.orchestrator import WorkerConfig, run_pass

    submitter, reviewer = Actor("user", "bench-submitter"), Actor("user", "bench-reviewer")
    events_before = JobEvent.objects.count()

    def passes():
        if count_statements:
            run_pass(WorkerConfig("bench-0", 300, 3, 5.0))
            return
        procs = [subprocess.Popen([sys.executable, "manage.py", "run_jobs", "--once", "--worker-id", f"bench-{k}"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for k in range(workers)]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                raise SystemExit(err.decode())

    counter = StatementCounter(connection)
    started = time.perf_counter()
    with counter if count_statements else _Null():
        ids = [services.submit_blueprint(blueprint=bp, snapshot_id="bench_snap", actor=submitter)[0].job_id
               for bp in blueprints(n)]
        passes()
        for state in JobState.objects.filter(job_id__in=ids, status="waiting_approval").only("job_id", "waiting_step"):
            services.approve(job_id=state.job_id, step=state.waiting_step, actor=reviewer)
        passes()
    seconds = time.perf_counter() - started
    done = JobState.objects.filter(job_id__in=ids, status="done").count()
    events = JobEvent.objects.count() - events_before
    return {"seconds": seconds, "done": done, "events": events, "statements": counter.count}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def child(url, artifacts, n, workers, count_statements):
    """One measurement in a fresh process on a fresh database; prints one result line."""
    setup_django(url, artifacts)
    from django.core.management import call_command

    from research.demo_data import demo_csv
    from research.snapshots import ingest_csv

    call_command("migrate", verbosity=0)
    ingest_csv(snapshot_id="bench_snap", data=demo_csv("bench_snap", symbols=("AAA", "BBB"), start="2019-01-01",
                                                          end="2023-01-01"))
    env = dict(os.environ)
    result = flow(n, workers, env, count_statements)
    print(repr(result))


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
    subprocess.run(["psql", f"{base}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", f"{base}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    return f"{base}/{name}", str(artifacts)


def measure(kind, n, workers, count_statements=False):
    tag = f"{kind}-{workers}-{int(count_statements)}"
    url, artifacts = fresh_database(kind, tag)
    out = subprocess.run([sys.executable, __file__, "--child", url, artifacts, str(n), str(workers),
                          str(int(count_statements))], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    import ast

    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, url, artifacts, n, workers, count = sys.argv
        child(url, artifacts, int(n), int(workers), count == "1")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"blueprint pipeline, {args.jobs} jobs, tiny snapshot (2 symbols x 4 years), real kernel steps")
    print(f"{'database':<11} {'workers':>7} {'jobs/s':>8} {'events/s':>9} {'done':>5}")
    for kind in args.databases.split(","):
        for workers in (1, 2):
            r = measure(kind, args.jobs, workers)
            print(f"{kind:<11} {workers:>7} {r['done'] / r['seconds']:>8.1f} {r['events'] / r['seconds']:>9.1f} {r['done']:>5}")
        r = measure(kind, min(args.jobs, 50), 1, count_statements=True)
        print(f"{kind:<11} statements per job (1 worker, in process): {r['statements'] / r['done']:.1f}")


if __name__ == "__main__":
    main()
