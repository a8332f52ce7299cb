"""Database outages: a worker that loses its connection waits for the database and carries on, and no step is
lost or run twice. First in one process, the connection cut where it hurts (a step's reads, the write of its
outcome, the acknowledgment of that write); then for real, with a PostgreSQL server of the test's own stopped
in immediate mode in the middle of a run of two loop workers over 100 jobs."""
import collections
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.db import IntegrityError, OperationalError, connection
from django.utils import timezone
from django.utils.module_loading import import_string

from jobs import services
from jobs.events import RUNNABLE_CHANNEL, Actor
from jobs.models import JobEvent, JobState
from jobs.pipelines import BLUEPRINT_PIPELINE, EventType, Step
from workflow import claims, orchestrator
from workflow.orchestrator import DEFAULT_EXECUTORS, WorkerConfig, run_pass

from ..api.conftest import free_port, serving
from ..api.test_http_scenario import Client
from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, approve_waiting, submitted
from . import instrumented
from .conftest import REPO_ROOT, events_of, executions
from .test_processes import STEPS, many_blueprints, recording_env, run_jobs_verify

pytestmark = pytest.mark.django_db(transaction=True)  # a lost connection is closed: no test transaction around it
LOST = "server closed the connection unexpectedly"
RESULT_EVENTS = {stage.name: stage.result_event for stage in BLUEPRINT_PIPELINE if isinstance(stage, Step)}


def worker(lease_seconds=600):
    return WorkerConfig(worker_id="w-outage", lease_seconds=lease_seconds, max_attempts=3, retry_backoff_seconds=0)


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """The waits between attempts, shortened: what is tested is that they happen, not how long they are."""
    monkeypatch.setattr(claims, "FIRST_WAIT_SECONDS", 0.02)


@contextmanager
def connection_lost(*, on, times=1):
    """The test's connection fails, as if the server went away, on the first `times` statements that carry `on`
    (an event type among their parameters), before they run. Yields the statements refused."""
    refused = []

    def cut(execute, sql, params, many, context):
        if len(refused) < times and on in [str(p) for p in params or ()]:
            refused.append(sql)
            raise OperationalError(LOST)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(cut):
        yield refused


def starts_and_results(job_id):
    """(STEP_STARTED count, result event count) per step of the job."""
    rows = JobEvent.objects.filter(job_id=job_id)
    started = collections.Counter(rows.filter(event_type=EventType.STEP_STARTED).values_list("step", flat=True))
    done = collections.Counter(rows.filter(event_type__in=list(RESULT_EVENTS.values())).values_list("step", flat=True))
    return {step: (started[step], done[step]) for step in started | done}


def test_a_result_whose_write_lost_the_connection_is_written_once_the_database_is_back(tiny_snapshot, settings,
                                                                                       tmp_path, monkeypatch):
    # given a job whose compiled result cannot be written twice in a row: the connection is gone
    log = tmp_path / "executions.log"
    monkeypatch.setenv("EAM_TEST_EXECUTION_LOG", str(log))
    settings.EAM_STEP_EXECUTORS = {"compile": "tests.workflow.instrumented.recording"}
    job = submitted(SUBMITTER, **TINY_RUN)
    # when a worker runs it
    with connection_lost(on=EventType.RUNSPEC_COMPILED, times=2) as refused:
        summary = run_pass(worker())
    # then the worker kept the outcome and wrote it on the third attempt: one step, run once, recorded once
    assert len(refused) == 2
    assert [s.outcome for s in summary.steps] == ["completed"]
    assert executions(log) == [(job.job_id, "compile")]
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED", "RUNSPEC_COMPILED", "WAITING_APPROVAL"]
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"


def test_an_append_that_committed_but_lost_its_acknowledgment_counts_as_written(tiny_snapshot, monkeypatch):
    # given an approved job, and a connection that breaks right after the run step's result (and the hand-over
    # to the gates step) committed, before the worker hears of it
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    real_append, lost = orchestrator.append_events, []

    def append_events(**kwargs):
        appended = real_append(**kwargs)
        if kwargs["events"][0].event_type == EventType.RUN_COMPLETED and not lost:
            lost.append(kwargs["expected_seq"])
            raise OperationalError(LOST)
        return appended

    monkeypatch.setattr(orchestrator, "append_events", append_events)
    # when the worker runs it
    summary = run_pass(worker())
    # then its retry found the seq taken by its own events, went on with the job it still holds, and finished it:
    # every step started once and recorded once
    assert lost and [(s.step, s.outcome) for s in summary.steps] == [
        ("run", "completed"), ("gates", "completed"), ("registry", "completed")]
    assert starts_and_results(job.job_id) == {step: (1, 1) for step in STEPS}
    assert events_of(job.job_id)[-1] == "DONE"


def test_a_seq_taken_by_someone_else_during_the_outage_is_still_fenced(tiny_snapshot, monkeypatch):
    # given a job whose compiled result meets a lost connection, while an operator cancels the job meanwhile
    job = submitted(SUBMITTER, **TINY_RUN)
    real_append = orchestrator.append_events

    def append_events(**kwargs):
        if JobState.objects.get(job_id=job.job_id).status == "running":
            services.cancel(job_id=job.job_id, actor=Actor.user("otto"), reason="not needed")
            raise OperationalError(LOST)
        return real_append(**kwargs)

    monkeypatch.setattr(orchestrator, "append_events", append_events)
    # when the worker runs it, then its retry is refused, and nothing of it is written
    summary = run_pass(worker())
    assert [s.outcome for s in summary.steps] == ["fenced"]
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED", "CANCELLED"]


def compile_losing_its_connection_once(context):
    """The real compile, recorded; the first time it runs, its database reads find the connection gone."""
    recording = import_string("tests.workflow.instrumented.recording")
    if len(executions(Path(os.environ["EAM_TEST_EXECUTION_LOG"]))) > 0:
        return recording(context)

    def gone(execute, sql, params, many, ctx):
        raise OperationalError(LOST)

    with connection.execute_wrapper(gone):
        return recording(context)


def run_then_pause(context):
    """The real run step, recorded once it ran, then a pause of EAM_TEST_SLOW_SECONDS before its result is
    written (the outage test stops the server in that pause)."""
    outcome = import_string(DEFAULT_EXECUTORS["run"])(context)
    instrumented._record(context)
    time.sleep(float(os.environ["EAM_TEST_SLOW_SECONDS"]))
    return outcome


def test_a_step_whose_reads_lost_the_connection_runs_again_within_its_claim(tiny_snapshot, settings, tmp_path,
                                                                            monkeypatch):
    # given a job whose compile step loses the connection the first time it reads
    log = tmp_path / "executions.log"
    monkeypatch.setenv("EAM_TEST_EXECUTION_LOG", str(log))
    settings.EAM_STEP_EXECUTORS = {"compile": f"{__name__}.compile_losing_its_connection_once"}
    job = submitted(SUBMITTER, **TINY_RUN)
    # when a worker runs it
    summary = run_pass(worker())
    # then the step ran again once the database answered, under the same STEP_STARTED: no failure recorded
    assert executions(log) == [(job.job_id, "compile"), (job.job_id, "compile")]
    assert [s.outcome for s in summary.steps] == ["completed"]
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED", "RUNSPEC_COMPILED", "WAITING_APPROVAL"]


def test_an_outage_longer_than_the_lease_is_given_up_and_left_to_recovery(tiny_snapshot):
    # given a job whose compiled result can never be written, and a worker with a one-second lease
    job = submitted(SUBMITTER, **TINY_RUN)
    # when the worker runs it, then it stops trying once its lease may have expired, and writes nothing
    with connection_lost(on=EventType.RUNSPEC_COMPILED, times=1000) as refused, pytest.raises(OperationalError):
        run_pass(worker(lease_seconds=1))
    assert len(refused) > 1
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED"]
    # and the job is recovered like a crashed worker's once the lease has expired
    time.sleep(1.1)
    run_pass(worker())
    starts = JobEvent.objects.filter(job_id=job.job_id, event_type=EventType.STEP_STARTED).order_by("seq")
    assert [s.payload["recovered_from"] for s in starts] == [None, "w-outage"]
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"


def test_a_constraint_error_on_the_write_is_not_retried(tiny_snapshot, monkeypatch):
    # given a write of the step's outcome that breaks a constraint (not an outage)
    job = submitted(SUBMITTER, **TINY_RUN)
    tried = []

    def append_events(**kwargs):
        tried.append(kwargs["expected_seq"])
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(orchestrator, "append_events", append_events)
    # when a worker runs it, then the error is raised after one attempt, and nothing is written
    with pytest.raises(IntegrityError):
        run_pass(worker())
    assert len(tried) == 1
    assert events_of(job.job_id) == ["BLUEPRINT_SUBMITTED", "STEP_STARTED"]


def test_on_postgresql_a_listen_wait_cut_short_by_a_lost_connection_listens_again_on_a_new_one(caplog):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers sleep between polls")
    # given an idle worker's LISTEN wait, whose server process is terminated half a second into it
    connection.ensure_connection()
    first = connection.connection.info.backend_pid

    def terminate():
        time.sleep(0.5)
        with connection.cursor() as cursor:  # this thread's own connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        connection.close()

    killer = threading.Thread(target=terminate)
    killer.start()
    # when it waits through the outage helper, then the lost connection is reported and the wait goes on
    # on a new connection, LISTENing again
    claims.retrying(partial(claims.wait_for_work, 1.5), doing="waiting for work")
    killer.join()
    assert "database unreachable while waiting for work" in caplog.text
    assert connection.connection.info.backend_pid != first
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_listening_channels()")
        assert cursor.fetchall() == [(RUNNABLE_CHANNEL,)]

# -- for real: a PostgreSQL server of the test's own, stopped in immediate mode mid-run --------------------------

OUTAGE_DB = "eam_outage_run"
OUTAGE_SECONDS = 5.0


def postgresql_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, the folder of an initdb on the PATH, or the newest
    /usr/lib/postgresql/<version>/bin."""
    candidates = []
    if shutil.which("pg_config"):
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                         reverse=True)
    found = (Path(c) for c in candidates if c)
    return next((c for c in found if all((c / name).is_file() for name in ("initdb", "pg_ctl", "createdb"))), None)


class OwnPostgreSQL:
    """A new cluster in a temporary folder under /tmp, trust authentication, listening on one free loopback port
    and nowhere else. Run as the `postgres` system user when the test runs as root (initdb refuses root), so
    the folder is that user's."""

    def __init__(self, bindir: Path):
        self.bindir, self.port = bindir, free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="eam_outage_", dir="/tmp"))
        self.data = self.folder / "data"
        self.as_owner = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        done = subprocess.run([*self.as_owner, str(self.bindir / program), *args], cwd=self.folder,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 or not check, f"{program} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        # fsync off: a stop in immediate mode kills the server's processes, not the machine, so nothing is lost.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options, "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        """Immediate mode: every server process quits at once, without a checkpoint, as in a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def own_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("runs once, with the suite on PostgreSQL (it starts a PostgreSQL server of its own and points "
                    "the test's PostgreSQL connection at it)")
    bindir = postgresql_bindir()
    problem = None if bindir else "PostgreSQL's initdb and pg_ctl were not found (pg_config, PATH, /usr/lib/postgresql)"
    if os.geteuid() == 0 and not problem:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            problem = "running as root, and there is no `postgres` system user to run initdb as"
        if not shutil.which("runuser"):
            problem = "running as root, and runuser (util-linux) is missing"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    server = OwnPostgreSQL(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@contextmanager
def connected_to(server: OwnPostgreSQL, name: str):
    """The test's own connection on the server's database, as Django's test runner points it at the test
    database; the suite's settings come back afterwards."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(NAME=name, HOST="127.0.0.1", PORT=str(server.port), USER="postgres", PASSWORD="")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def start_worker(env, name: str, folder: Path, *args: str) -> subprocess.Popen:
    """A loop worker whose output goes to files (a pipe nobody reads would fill up over 400 steps)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_jobs", "--interval", "0.2", "--worker-id", name, *args], cwd=REPO_ROOT,
        env=env, stdout=(folder / f"{name}.out").open("w"), stderr=(folder / f"{name}.err").open("w"),
    )


def stopped(process: subprocess.Popen) -> int | None:
    """SIGTERM, and SIGKILL if it has not exited 30 s later: its exit code (None when it had to be killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def done_count(job_ids) -> int:
    return JobState.objects.filter(job_id__in=job_ids, status="done").count()


def approve_until(job_ids, condition, timeout: float) -> None:
    """Approve jobs one at a time as they reach their checkpoint, until `condition()` holds (it is checked
    between two approvals, so the test acts on it within a few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out with {done_count(job_ids)} of {len(job_ids)} jobs done"
        failed = JobState.objects.filter(job_id__in=job_ids, status="error").first()
        assert failed is None, f"job {failed and failed.job_id} failed: {failed and failed.error}"
        waiting = JobState.objects.filter(job_id__in=job_ids, status="waiting_approval").first()
        if waiting is None:
            time.sleep(0.02)
        else:
            approve_waiting([waiting.job_id])


@pytest.mark.slow
def test_two_loop_workers_ride_out_a_database_server_stopped_mid_run(own_postgresql, artifact_root, process_env,
                                                                     tmp_path):  # the test's own artifact root first
    began = time.monotonic()
    server = own_postgresql
    server.create_database(OUTAGE_DB)
    env = dict(process_env, DATABASE_URL=server.url(OUTAGE_DB))
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    # Each run step waits 0.3 s before its result is written, so that results are in flight when the server stops.
    worker_env = recording_env(env, tmp_path / "executions.log", EAM_TEST_SLOW_SECONDS="0.3")
    executors = {step: "tests.workflow.instrumented.recording" for step in STEPS}
    executors["run"] = f"{__name__}.run_then_pause"
    worker_env["EAM_STEP_EXECUTORS"] = ",".join(f"{step}={path}" for step, path in executors.items())
    worker_env["EAM_ANCHOR_SECONDS"] = "1"  # the workers anchor as they go, through the outage too
    with connected_to(server, OUTAGE_DB), serving("runserver", dict(env, EAM_PUBLIC_READ="true"), tmp_path) as base:
        # given 100 jobs, two loop workers going through them, and one kept idle (it waits for a job that does not
        # exist: its polls and its LISTEN meet the outage)
        a_snapshot(TINY_SNAPSHOT)
        job_ids = [submitted(SUBMITTER, blueprint=bp, snapshot_id=TINY_SNAPSHOT).job_id for bp in many_blueprints(100)]
        api = Client(base, None)
        workers = [start_worker(worker_env, f"outage-w{n}", tmp_path) for n in (1, 2)]
        workers.append(start_worker(worker_env, "outage-idle", tmp_path, "--job", "000000000000"))
        try:
            approve_until(job_ids, lambda: done_count(job_ids) >= 25, timeout=60)
            seen = len(executions(tmp_path / "executions.log"))  # the outage starts as a run step pauses
            approve_until(job_ids, lambda: "run" in [s for _, s in executions(tmp_path / "executions.log")[seen:]],
                          timeout=30)

            # when the database server is stopped in immediate mode, and started again 5 s later
            stopped_at = timezone.now()
            server.stop()
            answers = []
            while timezone.now() < stopped_at + timedelta(seconds=OUTAGE_SECONDS):
                status, headers, content = api.call("GET", "/jobs?limit=1")
                answers.append((status, json.loads(content).get("code"), headers.get("Retry-After")))
                time.sleep(0.2)
            server.start()
            connection.close()  # the test's own connection died with the server too

            # then the workers carry on: every job is done, each step started once and recorded once
            approve_until(job_ids, lambda: done_count(job_ids) == len(job_ids), timeout=60)
            assert [w.poll() for w in workers] == [None, None, None], "a worker died"
        finally:
            codes = [stopped(process) for process in workers]
        assert codes == [0, 0, 0]
        assert answers and set(answers) == {(503, "database_unavailable", "5")}, collections.Counter(answers)
        assert api.call("GET", "/jobs?limit=1")[0] == 200
        for job_id in job_ids:
            assert starts_and_results(job_id) == {step: (1, 1) for step in STEPS}, job_id
        assert not JobEvent.objects.filter(job_id__in=job_ids, event_type__in=["STEP_FAILED", "ERROR"]).exists()
        in_flight = in_flight_at(job_ids, stopped_at)
    verify = run_jobs_verify(env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "; anchor anchors/" in verify.stdout, verify.stdout  # checked against the workers' latest anchor
    errors = "".join((tmp_path / f"{name}.err").read_text() for name in ("outage-w1", "outage-w2", "outage-idle"))
    assert "Traceback" not in errors, errors
    idle_retries = (tmp_path / "outage-idle.err").read_text().count("database unreachable while")
    assert idle_retries > 0, "the idle worker never met the outage"
    assert "while writing the outcome" in errors, "no result was in flight when the server stopped"
    executed = collections.Counter(executions(tmp_path / "executions.log"))
    print(f"\noutage test: {time.monotonic() - began:.1f}s; {len(answers)} answers during the outage, all 503; "
          f"{in_flight} step(s) in flight at the outage; attempts retried: result writes "
          f"{errors.count('while writing the outcome')}, step runs {errors.count('while running step')}, "
          f"polls and passes {errors.count('looking for work')}, LISTEN waits {errors.count('waiting for work')}; "
          f"steps executed twice under one STEP_STARTED: {sum(1 for n in executed.values() if n > 1)}")


def in_flight_at(job_ids, stopped_at) -> int:
    """Steps started before the server stopped whose result was recorded after (so once it was back)."""
    rows = JobEvent.objects.filter(job_id__in=job_ids).values_list("job_id", "step", "event_type", "recorded_at")
    started = {(job, step): at for job, step, kind, at in rows if kind == EventType.STEP_STARTED}
    results = set(RESULT_EVENTS.values())
    return sum(1 for job, step, kind, at in rows
               if kind in results and at > stopped_at and started[(job, step)] < stopped_at)
