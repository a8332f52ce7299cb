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


# PostgreSQL's pg_trigger.tgtype bits: FOR EACH ROW, BEFORE, and the events.
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 4, 8, 16, 32


def expected_definitions(g: GuardedTable, vendor: str) -> dict[str, str]:
    """Each guard trigger of `g` as the database should hold it, in the form `installed_definitions` reads.

    SQLite: the CREATE statement as sqlite_master keeps it (without IF NOT EXISTS). PostgreSQL: the table,
    the timing and events, ALWAYS enabled, no WHEN, and the body of the function it runs."""
    if vendor == "sqlite":
        return {
            statement.split()[5]: statement.replace("CREATE TRIGGER IF NOT EXISTS ", "CREATE TRIGGER ", 1)
            for statement in _sqlite_statements(g)
        }
    t, p = g.table, GUARD_PREFIX
    refuse = _function_body(_PG_REFUSE_FUNCTION)
    found = {
        f"{p}{t}_no_update": _pg_definition(t, _ROW | _BEFORE | _UPDATE, f"{p}refuse", refuse),
        f"{p}{t}_no_delete": _pg_definition(t, _ROW | _BEFORE | _DELETE, f"{p}refuse", refuse),
        f"{p}{t}_no_truncate": _pg_definition(t, _BEFORE | _TRUNCATE, f"{p}refuse", refuse),
    }
    if g.seq_column:
        found[f"{p}{t}_seq"] = _pg_definition(t, _ROW | _BEFORE | _INSERT, f"{p}{t}_seq",
                                              _function_body(_pg_seq_function(g)))
    return found


def _function_body(create_function: str) -> str:
    return create_function.split("$$", 2)[1]


def _pg_definition(table: str, tgtype: int, function: str, body: str) -> str:
    return f"on {table}; type {tgtype}; enabled A; when -; runs {function}: {body}"


def installed_definitions(connection) -> dict[str, set[str]]:
    """The guard triggers present, name -> their definitions in the form `expected_definitions` gives."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT t.tgname, c.relname, t.tgtype, t.tgenabled, t.tgqual IS NULL, p.proname, p.prosrc "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE t.tgname LIKE %s", [GUARD_PREFIX + "%"],
            )
            rows = [(name, f"on {table}; type {tgtype}; enabled {enabled}; when {'-' if no_when else 'set'}; "
                           f"runs {function}: {body}")
                    for name, table, tgtype, enabled, no_when, function, body in cursor.fetchall()]
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                           [GUARD_PREFIX + "%"])
            rows = cursor.fetchall()
    found: dict[str, set[str]] = {}
    for name, definition in rows:  # on PostgreSQL a name may stand on several tables (after a table swap)
        found.setdefault(name, set()).add(definition)
    return found


def guard_problems(connection, tables: set[str]) -> list[tuple[GuardedTable, str, str]]:
    """(table, trigger, what is wrong) for every guard trigger of the migrated `tables` that is missing or
    differs from its definition: on another table, another timing or event, disabled, with a WHEN clause, or
    running a changed function."""
    installed = installed_definitions(connection)
    problems = []
    for g in GUARDED_TABLES.values():
        if g.table not in tables:
            continue
        for name, definition in expected_definitions(g, connection.vendor).items():
            if name not in installed:
                problems.append((g, name, "is missing"))
            elif definition not in installed[name]:
                problems.append((g, name, "differs from its definition (table, timing, events, enabled state, "
                                          "WHEN clause or function body)"))
    return problems


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
