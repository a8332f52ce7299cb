"""System check: `manage.py check` fails when a guard trigger is missing or disabled.

SQLite drops a table's triggers when a migration rebuilds the table, so this check runs with every
command that runs system checks, not only with `--database`.
"""
from django.core.checks import Error, register
from django.db import connections
from django.db.utils import DatabaseError

from .triggers import GUARDED_TABLES, existing_triggers


def _migrated_tables(connection) -> set[str]:
    try:
        return set(connection.introspection.table_names())
    except DatabaseError:
        return set()


@register("guards")
def check_guard_triggers(app_configs=None, **kwargs):
    errors = []
    databases = kwargs.get("databases") or ["default"]
    for alias in databases:
        connection = connections[alias]
        tables = _migrated_tables(connection)
        guarded = [g for g in GUARDED_TABLES.values() if g.table in tables]
        if not guarded:
            continue
        present = existing_triggers(connection)
        for g in guarded:
            for name in g.trigger_names(connection.vendor):
                if name not in present:
                    errors.append(
                        Error(
                            f"Guard trigger {name} on table {g.table} is missing or disabled "
                            f"(database '{alias}').",
                            hint="Run `python manage.py install_guards` to recreate it, then find what removed it.",
                            id="guards.E001",
                        )
                    )
    return errors
