"""`manage.py setup_roles`: create the groups submitters, reviewers, operators and their permissions (idempotent)."""
from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from jobs.roles import ROLES, ensure_roles


class Command(BaseCommand):
    help = "Create the groups " + ", ".join(ROLES) + " with their permissions on jobs; safe to run again."

    def handle(self, *args, **options):
        with transaction.atomic():
            changes = ensure_roles(apps)
        for change in changes:
            if change.created:
                what = "created"
            elif change.added:
                what = "updated"
            else:
                what = "up to date"
            added = f" (added {', '.join(change.added)})" if change.added else ""
            self.stdout.write(f"{change.group}: {what}{added}; may {', '.join(ROLES[change.group])}")
