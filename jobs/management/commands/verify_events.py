"""Recompute every event hash chain, check every signature and compare with the latest anchor; exit 1 with a
report when a row was altered, forged, removed or is missing."""
from django.core.management.base import BaseCommand, CommandError

from jobs.anchors import latest_anchor
from jobs.audit import verify_events
from jobs.errors import DomainError
from jobs.services import check_job_id


class Command(BaseCommand):
    help = ("Verify the hash chains, signatures and seq continuity of job events against the latest anchor "
            "(all jobs, or --job ID ...).")

    def add_arguments(self, parser):
        parser.add_argument("--job", action="append", dest="jobs", metavar="JOB_ID", help="check only this job (repeatable)")

    def handle(self, *args, jobs=None, **options):
        for job_id in jobs or []:
            try:
                check_job_id(job_id)
            except DomainError as exc:
                raise CommandError(f"invalid job id {job_id!r}") from exc
        checked, findings = verify_events(jobs)
        for finding in findings:
            self.stdout.write(f"FAIL {finding}")
        if findings:
            raise CommandError(f"{len(findings)} problem(s) in the event log of {checked} job(s)", returncode=1)
        anchor = latest_anchor()
        against = f"; anchor {anchor.path} ({anchor.doc['jobs']} job(s)) agrees" if anchor else "; no anchor yet"
        self.stdout.write(f"OK: {checked} job(s), every hash chain intact and signed{against}")
