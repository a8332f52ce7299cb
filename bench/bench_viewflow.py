"""EAM's workflow engine against django-viewflow 2.4 on the same flow, with no-op steps: jobs/s,
statements and commits per job.

The flow: start -> compile -> approve (a human checkpoint) -> run -> gates -> registry -> end, every
automatic step a no-op, N jobs per round. Each side runs in its own process and virtual environment
on a fresh database, one thread, no broker, and times the same span: from the first submit/start until
the last job is done, the approvals included.

EAM      (the repository's .venv, which runs this script): `jobs.services.submit_blueprint` for each
         blueprint; one in-process worker, `workflow.orchestrator.run_pass`, takes every job through
         compile to the runspec checkpoint; `jobs.services.approve` for each job as a second user; a
         second `run_pass` finishes them (run, gates, registry). The steps are bench/noop_steps.py
         (EAM_STEP_EXECUTORS), as in bench_orchestrator.py. An in-process pass, not a worker process,
         because viewflow's automatic tasks run in the caller's own process and transaction.
viewflow (var/bench-viewflow-venv, created here with pinned versions): the flow in bench/viewflow_flow/.
         `BlueprintFlow.start.run()` starts each process and, synchronously in the same transaction
         (flow.Function nodes), runs compile and creates the approve task; then, as a reviewer would
         through viewflow's assign and execute views, each approve task is assigned to the reviewer
         (one transaction) and started, its process saved and the task executed (another), which
         runs run, gates, registry and end synchronously.

Databases (`--databases`), each round on a fresh database per side (files removed, or PostgreSQL
databases created and dropped through the `postgres` database):
  sqlite        each side's shipped settings: EAM's (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, read from
                eam_site/settings.py at run time) and Django's defaults for viewflow, which ships none.
  sqlite-equal  viewflow given the very SQLite OPTIONS that EAM's settings produce (printed).
  postgresql    127.0.0.1:5432, user postgres, trust auth (BENCH_PG_URL overrides), Django's defaults.
The two sides alternate within each round, the first side swapping from round to round.

Statements are counted in each process by bench_orchestrator's StatementCounter (a connection
execute_wrapper, plus the BEGIN/COMMIT the driver sends by itself), each statement once (see Counter).
Commits are counted by wrapping the connection's _commit (each transaction Django commits), plus every
INSERT/UPDATE/DELETE run outside a transaction (autocommit: it commits on its own); not from
pg_stat_database, which also counts each autocommitted read. Counting is on during the timed span, on
both sides alike.

    .venv/bin/python bench/bench_viewflow.py [--rounds 5] [--jobs 300]
                                             [--databases sqlite,sqlite-equal,postgresql]
"""
import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_orchestrator import NOOP_EXECUTORS, StatementCounter, blueprints  # noqa: E402

VENV = ROOT / "var" / "bench-viewflow-venv"
VIEWFLOW_PINS = ("django-viewflow==2.4.0", "Django==5.2.19", "psycopg[binary]==3.2.10")
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
SNAPSHOT = "bench_snap"
CHECKPOINT = "runspec"  # the blueprint pipeline's human checkpoint (docs/api.md)
SIDES = ("eam", "viewflow")
DATABASES = ("sqlite", "sqlite-equal", "postgresql")


# ---- the two sides, each run as a child process in its own virtual environment ----

def run_eam(n):
    from django.core.management import call_command
    from django.db import connection

    from jobs import services
    from jobs.events import Actor
    from workflow.orchestrator import WorkerConfig, run_pass

    call_command("migrate", verbosity=0)
    call_command("demo_ingest", snapshot_id=SNAPSHOT, stdout=io.StringIO())  # submit refuses unknown snapshots
    submitter, reviewer = Actor("user", "bench-submitter"), Actor("user", "bench-reviewer")
    config = WorkerConfig.from_settings("bench-0")
    with StatementCounter(connection) as counter:
        started = time.perf_counter()
        ids = [services.submit_blueprint(blueprint=bp, snapshot_id=SNAPSHOT, actor=submitter)[0].job_id
               for bp in blueprints(n)]
        run_pass(config)  # compile, up to the checkpoint
        for job_id in ids:
            services.approve(job_id=job_id, step=CHECKPOINT, actor=reviewer)
        run_pass(config)  # run, gates, registry
        seconds = time.perf_counter() - started
    done = sum(services.get_job(job_id).state.status == "done" for job_id in ids)
    return seconds, done, counter


def run_viewflow(n):
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from viewflow.workflow.models import Process, Task
    from viewflow.workflow.status import PROCESS, STATUS

    from bench.viewflow_flow.flows import BlueprintFlow

    call_command("migrate", verbosity=0)
    reviewer = User.objects.create(username="bench-reviewer")
    approve = BlueprintFlow.approve
    with StatementCounter(connection) as counter:
        started = time.perf_counter()
        for bp in blueprints(n):
            BlueprintFlow.start.run(blueprint=bp)  # compile runs inside, then the approve task waits
        # The reviewer's task list, then what AssignTaskView and the approve task's execute view do
        # on POST (lock and transaction, permission check, transition), without the HTTP around them.
        for task in Task.objects.filter(flow_task=approve, status=STATUS.NEW):
            with task.activation() as activation:
                if not approve.can_assign(reviewer, activation.task):
                    raise SystemExit(f"reviewer may not take task {task.pk}")
                activation.assign(reviewer)
            with task.activation() as activation:
                if not approve.can_execute(reviewer, activation.task):
                    raise SystemExit(f"reviewer may not execute task {task.pk}")
                activation.start(None)  # the request argument is unused by ViewActivation.start
                activation.process.save()  # UpdateProcessView's form.save()
                activation.execute()  # run, gates, registry and end, synchronously
        seconds = time.perf_counter() - started
    done = Process.objects.filter(flow_class=BlueprintFlow, status=PROCESS.DONE).count()
    return seconds, done, counter


def child(side, n):
    import django

    django.setup()
    seconds, done, counter = (run_eam if side == "eam" else run_viewflow)(n)
    if done != n:
        raise SystemExit(f"{side}: only {done} of {n} jobs done")
    print(json.dumps({"seconds": seconds, "statements": counter.count, "commits": counter.commits}))


def probe_sqlite_options():
    """The SQLite OPTIONS EAM's settings give a sqlite DATABASE_URL (printed by an EAM child)."""
    os.environ.update(DATABASE_URL="sqlite:///probe.sqlite3", DJANGO_SETTINGS_MODULE="eam_site.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    from django.conf import settings

    print(json.dumps(settings.DATABASES["default"].get("OPTIONS", {})))


# ---- the parent: environments, databases, rounds ----

def ensure_viewflow_venv():
    """Create var/bench-viewflow-venv with the pinned versions, unless it already has them."""
    python, stamp = VENV / "bin" / "python", VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(VIEWFLOW_PINS):
        return python
    print(f"installing {', '.join(VIEWFLOW_PINS)} into var/{VENV.name}", flush=True)
    subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *VIEWFLOW_PINS], check=True)
    stamp.write_text("\n".join(VIEWFLOW_PINS))
    return python


def pg_admin(*statements):
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def fresh_database(side, kind, eam_sqlite_options):
    """Environment variables that point `side` at a new, empty database of `kind`, and a cleanup."""
    var = ROOT / "var"
    artifacts = var / f"bench-vf-{side}-artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    if kind == "postgresql":
        name = f"bench_vf_{side}"
        pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
        cleanup = lambda: pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # noqa: E731
        url, server = f"{PG_URL}/{name}", urlsplit(PG_URL)
        vf_db = {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": server.username or "",
                 "PASSWORD": server.password or "", "HOST": server.hostname, "PORT": server.port or 5432}
    else:
        path = var / f"bench-vf-{side}.sqlite3"
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]

        def cleanup():
            for file in files:
                file.unlink(missing_ok=True)

        cleanup()
        url = f"sqlite:///{path}"
        vf_db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        if kind == "sqlite-equal":
            vf_db["OPTIONS"] = eam_sqlite_options
    if side == "eam":
        env = {"DATABASE_URL": url, "EAM_ARTIFACT_ROOT": str(artifacts), "EAM_STEP_EXECUTORS": NOOP_EXECUTORS,
               "DJANGO_SETTINGS_MODULE": "eam_site.settings", "SECRET_KEY": "bench-only"}
    else:
        env = {"BENCH_VIEWFLOW_DATABASE": json.dumps(vf_db), "DJANGO_SETTINGS_MODULE": "bench.viewflow_flow.settings"}
    return env, lambda: (cleanup(), shutil.rmtree(artifacts, ignore_errors=True))


def measure(side, python, kind, n, eam_sqlite_options):
    env, cleanup = fresh_database(side, kind, eam_sqlite_options)
    try:
        out = subprocess.run([str(python), __file__, "--child", side, str(n)], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, **env}, timeout=3600)
    finally:
        cleanup()
    if out.returncode:
        raise SystemExit(f"{side} on {kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--probe-sqlite-options"]:
        probe_sqlite_options()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--databases", default=",".join(DATABASES))
    args = parser.parse_args()
    kinds = args.databases.split(",")
    if not set(kinds) <= set(DATABASES):
        parser.error(f"--databases takes a comma-separated subset of {list(DATABASES)}")

    pythons = {"eam": Path(sys.executable), "viewflow": ensure_viewflow_venv()}
    probe = subprocess.run([sys.executable, __file__, "--probe-sqlite-options"], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    eam_sqlite_options = json.loads(probe.stdout)
    version = subprocess.run([str(pythons["viewflow"]), "-c", "import importlib.metadata as m; "
                              "print(m.version('django-viewflow'), m.version('Django'))"],
                             capture_output=True, text=True, check=True).stdout.split()
    print(f"EAM (no-op steps, one in-process worker) vs django-viewflow {version[0]} (Django {version[1]}, "
          f"synchronous Function nodes): {args.jobs} jobs per round, {args.rounds} rounds per database")
    if "sqlite-equal" in kinds:
        print(f"sqlite-equal: viewflow uses EAM's SQLite OPTIONS {eam_sqlite_options}")
    print(f"{'database':<13} {'round':>5} {'first':>9} {'EAM jobs/s':>11} {'viewflow jobs/s':>16} {'EAM/viewflow':>13}")
    summary = []
    for kind in kinds:
        results = {side: [] for side in SIDES}
        for r in range(args.rounds):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for side in order:
                results[side].append(measure(side, pythons[side], kind, args.jobs, eam_sqlite_options))
            eam, vf = (args.jobs / results[side][-1]["seconds"] for side in SIDES)
            print(f"{kind:<13} {r + 1:>5} {order[0]:>9} {eam:>11.1f} {vf:>16.1f} {eam / vf:>13.2f}", flush=True)
        ratios = [v["seconds"] / e["seconds"] for e, v in zip(results["eam"], results["viewflow"])]  # jobs/s ratio
        per_job = {side: {key: statistics.mean(x[key] for x in results[side]) / args.jobs
                          for key in ("statements", "commits")} for side in SIDES}
        summary.append((kind, statistics.median(ratios), per_job))

    print(f"\n{'database':<13} {'median EAM/viewflow':>20} {'EAM stmts/job':>14} {'EAM commits/job':>16} "
          f"{'viewflow stmts/job':>19} {'viewflow commits/job':>21}")
    for kind, ratio, per_job in summary:
        print(f"{kind:<13} {ratio:>20.2f} {per_job['eam']['statements']:>14.1f} {per_job['eam']['commits']:>16.1f} "
              f"{per_job['viewflow']['statements']:>19.1f} {per_job['viewflow']['commits']:>21.1f}")
    print("statements: every statement sent, BEGIN/COMMIT/SAVEPOINT included, each once; "
          "commits: the connection's _commit calls plus writes run in autocommit")


if __name__ == "__main__":
    main()
