"""Reject the checkpoint a job waits at, with a reason."""
from django.core.management.base import BaseCommand

from jobs import services

from ._operator import domain_errors, user_actor


class Command(BaseCommand):
    help = "Reject a job's checkpoint; the job ends."

    def add_arguments(self, parser):
        parser.add_argument("job_id")
        parser.add_argument("--step", required=True)
        parser.add_argument("--user", required=True)
        parser.add_argument("--reason", required=True)

    def handle(self, *args, job_id, step, user, reason, **options):
        with domain_errors():
            event = services.reject(job_id=job_id, step=step, actor=user_actor(user), reason=reason)
        self.stdout.write(f"{job_id} {step} rejected (event seq {event.seq})")
