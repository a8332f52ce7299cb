"""The worker: advance every runnable job, once (`--once`, for cron) or in a loop.

On SIGTERM or SIGINT a loop worker stops claiming at once: it starts no job and no step, lets the step in
flight finish and write its result, and exits 0. A step still running after `--grace-seconds` is stopped:
it fails as `worker_stopped`, its lease is released with that event, and another worker takes the job on.

A loop worker also writes an anchor of every job's head when it starts and every EAM_ANCHOR_SECONDS
(jobs.anchors; none when nothing moved), and every EAM_RECONCILE_SECONDS releases expired leases with an event
(workflow.reconcile, the cheap part of `manage.py reconcile`).

After each pass the worker plans and sends notifications (notifications.services.run_pass): the events it
announces have committed, and a notification that fails waits for a later pass, never the jobs.

A loop worker that loses its database (a restart, a network cut) logs it and keeps trying, each pause longer
than the last up to 30 s, until the database is back (`claims.retrying`).
"""
import math
import os
import signal
import socket
import time
from functools import partial

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from jobs import deadlines
from jobs.anchors import anchor_heads
from jobs.errors import DomainError
from jobs.services import check_job_id
from notifications.services import run_pass as notify
from workflow import claims
from workflow.orchestrator import GraceExpired, PassSummary, WorkerConfig, run_pass, step_in_flight
from workflow.reconcile import recover_expired_leases


class _Stop(Exception):
    """SIGTERM arrived while the worker was idle."""


class Command(BaseCommand):
    help = "Advance runnable jobs: run each due step until the job waits for approval or ends."
    # A worker refuses to start without the guard triggers, but skips the URL checks: they import the
    # whole web stack, which a cron worker never serves, and would double its start-up time.
    requires_system_checks = ["guards", "signing", "agents", "notifications", Tags.models]

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

        def look_for_work() -> PassSummary:
            # Deadlines first: a checkpoint that timed out is rejected (or escalated, or reminded) in this pass.
            for action in deadlines.sweep(job_ids=jobs):
                self.stdout.write(f"deadline: {action.job_id} {action.step} {action.action} ({action.outcome})")
            # An idle worker polls with one read; only a pass that can find work takes the write lock.
            if not once and not claims.any_runnable(jobs):
                return PassSummary()
            return run_pass(config, job_ids=jobs, max_steps=max_steps, report=lambda r: self.stdout.write(r.line()),
                            stopping=lambda: bool(stopping))

        def idle(wait, seconds):
            waiting.append(True)  # between passes a stop signal ends the wait at once
            try:
                wait(seconds)
            finally:
                waiting.clear()

        # A loop worker waits a database outage out, trying again with a growing pause, until it is asked to stop;
        # a one-off pass gives up at once (in both, a step in flight still writes its outcome: see drive()).
        retrying = partial(claims.retrying, giving_up=lambda: once or bool(stopping), pause=partial(idle, time.sleep))
        anchor_every, anchor_due = settings.EAM_ANCHOR_SECONDS, time.monotonic()

        def anchor_if_due():
            nonlocal anchor_due
            if once or anchor_every <= 0 or time.monotonic() < anchor_due:
                return
            anchor_due = time.monotonic() + anchor_every
            try:
                anchor, written = anchor_heads()
            except Exception as exc:  # an anchor is worth a warning, never the worker
                self.stderr.write(f"could not write an anchor: {exc}")
                connection.close()
                return
            if written:
                self.stdout.write(f"anchored {anchor.doc['jobs']} job(s) in {anchor.path}")

        # The first release one period after start: a worker that just started leaves an expired lease to claims.
        reconcile_every = settings.EAM_RECONCILE_SECONDS
        reconcile_due = time.monotonic() + reconcile_every

        def reconcile_if_due():
            nonlocal reconcile_due
            if once or stopping or reconcile_every <= 0 or time.monotonic() < reconcile_due:
                return
            reconcile_due = time.monotonic() + reconcile_every
            try:
                recovered = recover_expired_leases(worker_id=worker_id, max_attempts=config.max_attempts)
            except DatabaseError as exc:  # the claims recover those leases too; the next period tries again
                self.stderr.write(f"could not release expired leases: {exc}")
                connection.close()
                return
            for recovery in recovered:
                self.stdout.write(f"lease released: {recovery.line()}")

        def notify_after_pass():
            try:
                summary = notify()
            except Exception as exc:  # a notification is worth a warning, never the worker
                self.stderr.write(f"could not send notifications: {exc}")
                connection.close()
                return
            if once or summary.planned or summary.outcomes:
                self.stdout.write(summary.line())

        if not once:
            signal.signal(signal.SIGTERM, on_stop)
            signal.signal(signal.SIGINT, on_stop)
            signal.signal(signal.SIGALRM, on_grace_over)
        try:
            while True:
                anchor_if_due()
                reconcile_if_due()
                started = time.monotonic()
                try:
                    summary = retrying(look_for_work, doing="looking for work")
                except DatabaseError as exc:
                    if once:
                        raise
                    if not stopping:  # not an outage, which is waited out above: report it and go on
                        self.stderr.write(f"database error, trying again in {interval:g}s: {exc}")
                    connection.close()
                    summary = PassSummary()
                if once or summary.steps:
                    self.stdout.write(
                        f"pass by {worker_id}: {len(summary.steps)} step(s), {summary.count('completed')} completed, "
                        f"{summary.count('failed_will_retry')} to retry, {summary.count('error')} error(s), "
                        f"{summary.count('fenced')} fenced, in {time.monotonic() - started:.2f}s"
                    )
                notify_after_pass()
                if once or stopping:
                    return
                if not summary.steps:
                    try:
                        retrying(partial(idle, claims.wait_for_work, interval), doing="waiting for work")
                    except DatabaseError:
                        connection.close()
                        if stopping:
                            return
                        idle(time.sleep, interval)
        except _Stop:
            return
