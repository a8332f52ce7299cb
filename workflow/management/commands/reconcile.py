"""Find what the events, the projection, the leases and the artifact files disagree on: release expired leases
and repair drift (each reported), report jobs queued too long and artifacts changed, missing or recorded by no
event. Exit 1 when a person must look (docs/operations.md, section 5)."""
import os
import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workflow.reconcile import reconcile


class Command(BaseCommand):
    help = ("Release expired leases, repair projection drift, and report stale queued jobs and artifacts that are "
            "missing, changed or recorded by no event. Exit 1 when a person must look.")

    def add_arguments(self, parser):
        parser.add_argument("--stale-after", type=float, default=None, metavar="SECONDS",
                            help="report a job whose step has been due this long (default EAM_RECONCILE_STALE_SECONDS)")
        parser.add_argument("--sample", type=int, default=None, metavar="N",
                            help="re-hash N recorded files drawn at random instead of all of them")
        parser.add_argument("--seed", type=int, default=None, help="seed of the --sample draw (repeatable runs)")
        parser.add_argument("--worker-id", default=None, help="name recorded on the events (default reconcile-<host>-<pid>)")

    def handle(self, *args, stale_after, sample, seed, worker_id, **options):
        if sample is not None and sample < 1:
            raise CommandError("--sample must be at least 1")
        stale_after = settings.EAM_RECONCILE_STALE_SECONDS if stale_after is None else stale_after
        if stale_after < 0:
            raise CommandError("--stale-after must not be negative")
        report = reconcile(worker_id=worker_id or f"reconcile-{socket.gethostname()}-{os.getpid()}",
                           max_attempts=settings.EAM_MAX_ATTEMPTS, stale_after=stale_after, sample=sample, seed=seed)
        for line in report.lines():
            self.stdout.write(line)
        if report.needs_person:
            raise CommandError("the reconciler found what a person must look at", returncode=1)
