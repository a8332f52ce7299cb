"""Recompute the JobState projection from the events and report any drift."""
from django.core.management.base import BaseCommand

from jobs.audit import rebuild_states


class Command(BaseCommand):
    help = "Recompute every job's state from its events; report (and fix, unless --dry-run) any drift."

    def add_arguments(self, parser):
        parser.add_argument("--job", action="append", dest="jobs", metavar="JOB_ID")
        parser.add_argument("--dry-run", action="store_true", help="report drift without fixing it")

    def handle(self, *args, jobs=None, dry_run=False, **options):
        checked, drift = rebuild_states(jobs, apply=not dry_run)
        for finding in drift:
            self.stdout.write(f"DRIFT {finding}")
        verb = "found" if dry_run else "fixed"
        self.stdout.write(f"{checked} job(s) checked, {len(drift)} drift(s) {verb}")
