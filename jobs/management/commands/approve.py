"""Approve the checkpoint a job waits at, as a named reviewer."""
from django.core.management.base import BaseCommand

from jobs import services

from ._operator import domain_errors, user_actor


class Command(BaseCommand):
    help = "Approve a job's checkpoint (four eyes apply: the submitter cannot approve)."

    def add_arguments(self, parser):
        parser.add_argument("job_id")
        parser.add_argument("--step", required=True, help="the checkpoint, e.g. runspec")
        parser.add_argument("--user", required=True, help="the reviewer's username")
        parser.add_argument("--comment", default="")
        parser.add_argument("--artifact-sha256", default=None, help="sha256 of the artifact you reviewed")

    def handle(self, *args, job_id, step, user, comment, artifact_sha256, **options):
        with domain_errors():
            event = services.approve(job_id=job_id, step=step, actor=user_actor(user), comment=comment,
                                     artifact_sha256=artifact_sha256)
        self.stdout.write(f"{job_id} {step} approved (event seq {event.seq})")
