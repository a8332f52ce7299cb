"""`manage.py notify`: plan and send notifications, once (`--once`) or in a loop, for operators who run it apart
from the workers (run_jobs does the same after each of its passes)."""
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from notifications.services import run_pass


class Command(BaseCommand):
    help = "Plan notifications of new events and send those due (e-mail, webhooks); every attempt is recorded."
    requires_system_checks = ["guards", "notifications"]

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron and timers)")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between passes in loop mode")

    def handle(self, *args, once, interval, **options):
        if interval <= 0:
            raise CommandError("--interval must be positive")
        try:
            while True:
                summary = run_pass()
                if once or summary.planned or summary.outcomes:
                    self.stdout.write(summary.line())
                if once:
                    return
                connection.close()
                time.sleep(interval)
        except KeyboardInterrupt:
            return
