"""The worker: advance every runnable job, once (`--once`, for cron) or in a loop.

On SIGTERM or SIGINT a loop worker stops claiming at once: it starts no job and no step, lets the step in
flight finish and write its result, and exits 0. A step still running after `--grace-seconds` is stopped:
it fails as `worker_stopped`, its lease is released with that event, and another worker takes the job on.
"""
import math
import os
import signal
import socket
import time

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from jobs.errors import DomainError
from jobs.services import check_job_id
from workflow import claims
from workflow.orchestrator import GraceExpired, PassSummary, WorkerConfig, run_pass, step_in_flight


class _Stop(Exception):
    """SIGTERM arrived while the worker was idle."""


class Command(BaseCommand):
    help = "Advance runnable jobs: run each due step until the job waits for approval or ends."
    # A worker refuses to start without the guard triggers, but skips the URL checks: they import the
    # whole web stack, which a cron worker never serves, and would double its start-up time.
    requires_system_checks = ["guards", Tags.models]

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron and timers)")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between passes in loop mode")
        parser.add_argument("--job", action="append", dest="jobs", metavar="JOB_ID", help="only these jobs")
        parser.add_argument("--max-steps", type=int, default=None, help="stop a pass after this many steps")
        parser.add_argument("--worker-id", default=None, help="name recorded on events and leases")
        parser.add_argument("--lease-seconds", type=int, default=None, help="lease length (default EAM_LEASE_SECONDS)")
        parser.add_argument("--grace-seconds", type=float, default=30.0,
                            help="after SIGTERM/SIGINT, how long the step in flight may still run (loop mode)")

    def handle(self, *args, once, interval, jobs, max_steps, worker_id, lease_seconds, grace_seconds, **options):
        for job_id in jobs or []:
            try:
                check_job_id(job_id)
            except DomainError as exc:
                raise CommandError(f"--job {job_id!r}: {exc.detail}") from exc
        if grace_seconds <= 0:
            raise CommandError("--grace-seconds must be positive")
        if max_steps is not None and max_steps < 1:
            raise CommandError("--max-steps must be at least 1")
        if lease_seconds is not None and lease_seconds < 1:
            raise CommandError("--lease-seconds must be at least 1")
        worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        config = WorkerConfig.from_settings(worker_id, lease_seconds)
        stopping, waiting = [], []

        def on_stop(signum, _frame):
            if not stopping:
                self.stderr.write(f"{signal.Signals(signum).name}: claiming no more work; the step in flight may run "
                                  f"{grace_seconds:g}s more")
                signal.alarm(max(1, math.ceil(grace_seconds)))
            stopping.append(True)
            if waiting:  # idle between passes: stop now rather than at the end of the wait
                raise _Stop

        def on_grace_over(*_):
            if step_in_flight():
                raise GraceExpired(f"the worker was stopped and the step ran past its grace period of "
                                   f"{grace_seconds:g}s; another worker takes the job on")

        if not once:
            signal.signal(signal.SIGTERM, on_stop)
            signal.signal(signal.SIGINT, on_stop)
            signal.signal(signal.SIGALRM, on_grace_over)
        while True:
            started = time.monotonic()
            try:
                # An idle worker polls with one read; only a pass that can find work takes the write lock.
                idle = not once and not claims.any_runnable(jobs)
                summary = PassSummary() if idle else run_pass(
                    config, job_ids=jobs, max_steps=max_steps, report=lambda r: self.stdout.write(r.line()),
                    stopping=lambda: bool(stopping),
                )
            except DatabaseError as exc:
                if once:
                    raise
                # The database went away (restart, network): start again with a new connection.
                self.stderr.write(f"database error, retrying in {interval:.0f}s: {exc}")
                connection.close()
                summary = PassSummary()
            if once or summary.steps:
                self.stdout.write(
                    f"pass by {worker_id}: {len(summary.steps)} step(s), {summary.count('completed')} completed, "
                    f"{summary.count('failed_will_retry')} to retry, {summary.count('error')} error(s), "
                    f"{summary.count('fenced')} fenced, in {time.monotonic() - started:.2f}s"
                )
            if once or stopping:
                return
            if not summary.steps:
                try:
                    waiting.append(True)
                    try:
                        claims.wait_for_work(interval)
                    except DatabaseError:
                        connection.close()
                        time.sleep(interval)
                    finally:
                        waiting.clear()
                except _Stop:
                    return

