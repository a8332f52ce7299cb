"""`manage.py create_app_role --role NAME [--password-env VAR]`: the PostgreSQL role the API and the workers
connect as (docs/operations.md, section 3). It reads every table, only appends to the insert-only ones and owns
nothing, so it can neither rewrite an event nor drop or disable a guard trigger. Run it after every `migrate`."""
import os
import re

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from guards.triggers import GUARDED_TABLES

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
INSERT_ONLY = "SELECT, INSERT"
READ_ONLY = "SELECT"
READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
# Only migrations write their own history.
READ_ONLY_TABLES = frozenset({"django_migrations"})


def privileges_on(table: str) -> str:
    if table in GUARDED_TABLES:
        return INSERT_ONLY
    if table in READ_ONLY_TABLES:
        return READ_ONLY
    return READ_WRITE


class Command(BaseCommand):
    help = ("Create (or update) the PostgreSQL role the application connects as: SELECT, INSERT on the insert-only "
            "tables, SELECT on django_migrations, SELECT, INSERT, UPDATE, DELETE on the others. Safe to run again; "
            "run it after every migrate, as the owner of the tables.")

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, help="name of the role, e.g. eam_app")
        parser.add_argument("--password-env", metavar="VAR",
                            help="environment variable holding the role's password (sets it; without: unchanged)")

    def handle(self, *args, role, password_env, **options):
        if connection.vendor != "postgresql":
            raise CommandError(f"create_app_role needs PostgreSQL (the database is {connection.vendor})")
        if not ROLE_NAME.match(role):
            raise CommandError(f"role name {role!r}: lower-case letters, digits and _ only")
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"{password_env} is not set or empty")
        quoted = connection.ops.quote_name(role)
        with transaction.atomic(), connection.cursor() as cursor:
            created = self._ensure_role(cursor, role, quoted, password)
            cursor.execute("SELECT current_database(), current_schema()")
            database, schema = cursor.fetchone()
            cursor.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {connection.ops.quote_name(database)} TO {quoted}")
            cursor.execute(f"GRANT USAGE ON SCHEMA {connection.ops.quote_name(schema)} TO {quoted}")
            by_privileges: dict[str, list[str]] = {}
            for table in sorted(connection.introspection.table_names(cursor)):
                # Revoke first: whatever was granted before (by hand, or an older release) does not linger.
                cursor.execute(f"REVOKE ALL ON {connection.ops.quote_name(table)} FROM {quoted}")
                cursor.execute(f"GRANT {privileges_on(table)} ON {connection.ops.quote_name(table)} TO {quoted}")
                by_privileges.setdefault(privileges_on(table), []).append(table)
            cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {connection.ops.quote_name(schema)} "
                           f"TO {quoted}")
        self.stdout.write(f"role {role}: {'created' if created else 'exists'}"
                          f"{', password set' if password else ''}; database {database}, schema {schema}")
        for privileges, tables in sorted(by_privileges.items()):
            self.stdout.write(f"  {privileges}: {len(tables)} table(s)"
                              + (f" ({', '.join(tables)})" if privileges != READ_WRITE else ""))

    def _ensure_role(self, cursor, role: str, quoted: str, password: str | None) -> bool:
        """Create the role (LOGIN, nothing else) or check the existing one; True when created."""
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == role:
            raise CommandError(f"{role} is the role running this command (the owner): name another role")
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        found = cursor.fetchone()
        if found is None:
            cursor.execute(f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
                           + (" PASSWORD %s" if password else ""), [password] if password else None)
            return True
        if any(found):
            raise CommandError(f"{role} is a superuser or bypasses row security: privileges would not bind it")
        cursor.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                       "WHERE r.rolname = %s AND c.relkind IN ('r', 'p', 'v', 'S')", [role])
        if cursor.fetchone()[0]:
            raise CommandError(f"{role} owns tables or sequences: an owner may alter, disable or drop the guards")
        if password:
            cursor.execute(f"ALTER ROLE {quoted} WITH LOGIN PASSWORD %s", [password])
        return False
