"""Recompute every event hash chain; exit 1 with a report when a row was altered, removed or is missing."""
from django.core.management.base import BaseCommand, CommandError

from jobs.audit import verify_events
from jobs.errors import DomainError
from jobs.services import check_job_id


class Command(BaseCommand):
    help = "Verify the hash chain and seq continuity of job events (all jobs, or --job ID ...)."

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
        self.stdout.write(f"OK: {checked} job(s), every hash chain intact")
