"""Make a job in ERROR runnable again, or cancel a job (operator actions)."""
from django.core.management.base import BaseCommand

from jobs import services

from ._operator import domain_errors, user_actor


class Command(BaseCommand):
    help = "Retry a job in error (or cancel it with --cancel)."

    def add_arguments(self, parser):
        parser.add_argument("job_id")
        parser.add_argument("--user", required=True)
        parser.add_argument("--reason", default="")
        parser.add_argument("--cancel", action="store_true", help="cancel the job instead of retrying it")

    def handle(self, *args, job_id, user, reason, cancel, **options):
        action = services.cancel if cancel else services.retry
        with domain_errors():
            event = action(job_id=job_id, actor=user_actor(user), reason=reason)
        self.stdout.write(f"{job_id} {event.event_type} (event seq {event.seq})")
