"""The guard triggers, as SQL for SQLite and PostgreSQL, and the list of tables they protect.

Every guarded table refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL). On SQLite a BEFORE INSERT
trigger also refuses an insert whose primary key, or any other unique key, already exists, so `INSERT OR
REPLACE` (whose delete of the conflicting row fires no delete trigger) cannot remove a row. A table with a per-parent sequence (`seq_scope`) refuses any insert whose seq is not last+1.
"""
from dataclasses import dataclass

GUARD_PREFIX = "eam_guard_"


@dataclass(frozen=True)
class GuardedTable:
    """One insert-only table: its name, primary key column, other unique keys and optional gapless sequence."""

    table: str
    pk: str
    seq_column: str | None = None
    seq_scope: str | None = None
    unique: tuple[tuple[str, ...], ...] = ()

    def trigger_names(self, vendor: str) -> list[str]:
        names = [f"{GUARD_PREFIX}{self.table}_no_update", f"{GUARD_PREFIX}{self.table}_no_delete"]
        if vendor == "postgresql":
            names.append(f"{GUARD_PREFIX}{self.table}_no_truncate")
        else:
            names.append(f"{GUARD_PREFIX}{self.table}_no_replace")
        if self.seq_column:
            names.append(f"{GUARD_PREFIX}{self.table}_seq")
        return names


# Filled by each app's models module through `register`; read by the system check and install_guards.
GUARDED_TABLES: dict[str, GuardedTable] = {}


def register(guarded: GuardedTable) -> GuardedTable:
    GUARDED_TABLES[guarded.table] = guarded
    return guarded


def _sqlite_statements(g: GuardedTable) -> list[str]:
    t, p = g.table, GUARD_PREFIX
    stmts = [
        f"CREATE TRIGGER IF NOT EXISTS {p}{t}_no_update BEFORE UPDATE ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{t} is insert-only: UPDATE refused'); END",
        f"CREATE TRIGGER IF NOT EXISTS {p}{t}_no_delete BEFORE DELETE ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{t} is insert-only: DELETE refused'); END",
        f"CREATE TRIGGER IF NOT EXISTS {p}{t}_no_replace BEFORE INSERT ON {t} "
        f"WHEN {' OR '.join(_exists(t, key) for key in ((g.pk,), *g.unique))} "
        f"BEGIN SELECT RAISE(ABORT, '{t} is insert-only: a row with this key exists'); END",
    ]
    if g.seq_column:
        c, s = g.seq_column, g.seq_scope
        stmts.append(
            f"CREATE TRIGGER IF NOT EXISTS {p}{t}_seq BEFORE INSERT ON {t} "
            f"WHEN NEW.{c} IS NOT COALESCE((SELECT MAX({c}) FROM {t} WHERE {s} = NEW.{s}), 0) + 1 "
            f"BEGIN SELECT RAISE(ABORT, '{t}: {c} must be the last {c} + 1'); END"
        )
    return stmts


def _exists(table: str, key: tuple[str, ...]) -> str:
    matches = " AND ".join(f"{column} = NEW.{column}" for column in key)
    return f"EXISTS (SELECT 1 FROM {table} WHERE {matches})"


_PG_REFUSE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {GUARD_PREFIX}refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is insert-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def _pg_seq_function(g: GuardedTable) -> str:
    t, c, s = g.table, g.seq_column, g.seq_scope
    return f"""
CREATE OR REPLACE FUNCTION {GUARD_PREFIX}{t}_seq() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE last_seq bigint;
BEGIN
    SELECT COALESCE(MAX({c}), 0) INTO last_seq FROM {t} WHERE {s} = NEW.{s};
    IF NEW.{c} IS DISTINCT FROM last_seq + 1 THEN
        RAISE EXCEPTION '%: {c} must be the last {c} + 1 (last %, got %)', TG_TABLE_NAME, last_seq, NEW.{c}
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def always_trigger(name: str, table: str, definition: str) -> list[str]:
    """PostgreSQL: create (or replace) trigger `name` on `table` (`definition`: from BEFORE/AFTER to the
    function), enabled ALWAYS, so that it fires even with session_replication_role = replica."""
    return [f"CREATE OR REPLACE TRIGGER {name} {definition}", f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"]


def _postgresql_statements(g: GuardedTable) -> list[str]:
    t, p = g.table, GUARD_PREFIX
    triggers = [
        (f"{p}{t}_no_update", f"BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {p}refuse()"),
        (f"{p}{t}_no_delete", f"BEFORE DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {p}refuse()"),
        (f"{p}{t}_no_truncate", f"BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {p}refuse()"),
    ]
    stmts = [_PG_REFUSE_FUNCTION]
    if g.seq_column:
        stmts.append(_pg_seq_function(g))
        triggers.append((f"{p}{t}_seq", f"BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {p}{t}_seq()"))
    for name, body in triggers:
        stmts += always_trigger(name, t, body)
    return stmts


def install_statements(g: GuardedTable, vendor: str) -> list[str]:
    if vendor == "postgresql":
        return _postgresql_statements(g)
    if vendor == "sqlite":
        return _sqlite_statements(g)
    raise NotImplementedError(f"no guard triggers for database vendor {vendor!r}")


def install(connection, g: GuardedTable) -> None:
    with connection.cursor() as cursor:
        for sql in install_statements(g, connection.vendor):
            cursor.execute(sql)


def uninstall(connection, g: GuardedTable) -> None:
    with connection.cursor() as cursor:
        for name in g.trigger_names(connection.vendor):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {g.table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def existing_triggers(connection) -> set[str]:
    """Names of the guard triggers present and enabled in the database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgname LIKE %s AND tgenabled = 'A'", [GUARD_PREFIX + "%"]
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s", [GUARD_PREFIX + "%"])
        return {row[0] for row in cursor.fetchall()}


def reinstall_operation(guarded: GuardedTable):
    """A migration operation that drops and installs again the guards of one table on SQLite, where they are
    created `IF NOT EXISTS`: for a database whose triggers an earlier definition created."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            uninstall(schema_editor.connection, guarded)
            install(schema_editor.connection, guarded)

    return migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)


def install_operation(guarded: GuardedTable):
    """A migration operation that installs the guards of one table (reversible)."""
    from django.db import migrations

    def forwards(apps, schema_editor):
        install(schema_editor.connection, guarded)

    def backwards(apps, schema_editor):
        uninstall(schema_editor.connection, guarded)

    return migrations.RunPython(forwards, backwards, elidable=False)
