"""Recreate every guard trigger (idempotent); for a database that lost one, e.g. after a table rebuild."""
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections

from guards.triggers import GUARDED_TABLES, existing_triggers, install


class Command(BaseCommand):
    help = "Create any missing guard trigger on the insert-only tables."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, database, **options):
        connection = connections[database]
        before = existing_triggers(connection)
        tables = set(connection.introspection.table_names())
        for guarded in GUARDED_TABLES.values():
            if guarded.table in tables:
                install(connection, guarded)
        created = sorted(existing_triggers(connection) - before)
        for name in created:
            self.stdout.write(f"created {name}")
        self.stdout.write(f"{len(created)} guard trigger(s) created")
