"""Rebuild each job's rerun_state.json from its events, bring its rerun_log.jsonl up to them, and report."""
from django.core.management.base import BaseCommand, CommandError

from jobs.reruns import rebuild, rerun_jobs
from jobs.services import check_job_id
from research.errors import ArtifactConflict


class Command(BaseCommand):
    help = ("Rebuild outputs/reruns/rerun_state.json from the events (byte for byte) and append to "
            "outputs/reruns/rerun_log.jsonl what the events say it lacks; every job with a rerun, or the ones named.")

    def add_arguments(self, parser):
        parser.add_argument("job_ids", nargs="*", metavar="JOB_ID")

    def handle(self, *args, job_ids=(), **options):
        conflicts = []
        for job_id in job_ids or rerun_jobs():
            check_job_id(job_id)
            try:
                found = rebuild(job_id)
            except ArtifactConflict as exc:
                conflicts.append(job_id)
                self.stdout.write(f"{job_id}  CONFLICT {exc}")
                continue
            self.stdout.write(f"{job_id}  rerun_state.json {found['rerun_state']}, "
                              f"rerun_log.jsonl {found['rerun_log']}")
        if conflicts:
            raise CommandError(f"{len(conflicts)} rerun log(s) hold lines the events do not: a person must look",
                               returncode=1)
