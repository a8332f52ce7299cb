"""Recreate every guard trigger that is missing or differs from its definition (idempotent): for a database that
lost one (a table rebuild) or where one was changed by hand."""
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections

from guards.triggers import guard_problems, install, uninstall


class Command(BaseCommand):
    help = "Create any missing guard trigger on the insert-only tables, and recreate any that was changed."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, database, **options):
        connection = connections[database]
        problems = guard_problems(connection, set(connection.introspection.table_names()))
        for guarded in {id(g): g for g, _, _ in problems}.values():
            uninstall(connection, guarded)  # drop and create: a changed trigger is replaced, not kept
            install(connection, guarded)
        for _, name, problem in problems:
            self.stdout.write(f"{'created' if problem == 'is missing' else 'repaired'} {name}")
        self.stdout.write(f"{len(problems)} guard trigger(s) created or repaired")
