"""System check: `manage.py check` fails when a guard trigger is missing or differs from its definition (on
another table, another timing or event, disabled, with a WHEN clause, or running a changed function).

SQLite drops a table's triggers when a migration rebuilds the table, so this check runs with every
command that runs system checks, not only with `--database`.
"""
from django.core.checks import Error, register
from django.db import connections
from django.db.utils import DatabaseError

from .triggers import guard_problems


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
        for guarded, name, problem in guard_problems(connection, _migrated_tables(connection)):
            errors.append(
                Error(
                    f"Guard trigger {name} on table {guarded.table} {problem} (database '{alias}').",
                    hint="Run `python manage.py install_guards` to recreate it, then find what changed it.",
                    id="guards.E001",
                )
            )
    return errors
