"""The application's PostgreSQL role (`manage.py create_app_role`): the application runs as it, and the database
itself refuses it any change to an event, by privileges alone, before a guard trigger is reached."""
import os
import subprocess

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from jobs.models import JobEvent, JobSpec

from .builders import MONTH, SNAPSHOT, a_snapshot, a_user
from .conftest import REPO_ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL roles and privileges")

PASSWORD_VAR = "EAM_TEST_APP_ROLE_PASSWORD"
INSERT_ONLY = ["jobs_jobevent", "jobs_jobspec", "research_datasnapshot", "research_registryentry"]


@pytest.fixture
def app_role(monkeypatch):
    """A role name of this test run's own (roles belong to the whole server), dropped afterwards."""
    role = f"eam_app_test_{os.getpid()}"
    monkeypatch.setenv(PASSWORD_VAR, "app-role-secret")
    yield role
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone():
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


def as_role(role: str) -> str:
    """The test database's URL with the application role's credentials."""
    rest = database_url().split("@", 1)[1]
    return f"postgres://{role}:app-role-secret@{rest}"


def privileges(role: str, table: str) -> tuple[bool, ...]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"has_table_privilege(%s, %s, '{p}')" for p in
                                              ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")),
                       [role, table] * 5)
        return cursor.fetchone()


@on_postgresql
def test_the_application_runs_as_the_role_and_may_only_append_events(app_role, process_env, python):
    # given a snapshot and a submitter, and the role created (twice: the command is idempotent)
    a_snapshot(SNAPSHOT, span=MONTH)
    a_user("sam", "submitters")
    call_command("create_app_role", role=app_role, password_env=PASSWORD_VAR)
    call_command("create_app_role", role=app_role, password_env=PASSWORD_VAR)

    # when the application submits a job connected as the role
    env = {**process_env, "DATABASE_URL": as_role(app_role)}
    submitted = subprocess.run(
        [python, "manage.py", "submit_blueprint", "examples/buy_and_hold_bolt.json", "--snapshot-id", SNAPSHOT,
         "--user", "sam"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    # then it could write the spec, the event and the projection
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert JobSpec.objects.filter(job_id=job_id).exists()
    events = list(JobEvent.objects.filter(job_id=job_id).values_list("id", "seq", "event_type", "hash"))
    assert events

    # and the role may read and append to the insert-only tables, nothing more, and owns none of them
    for table in INSERT_ONLY:
        assert privileges(app_role, table) == (True, True, False, False, False), table
    assert privileges(app_role, "jobs_jobstate") == (True, True, True, True, False)
    assert privileges(app_role, "django_migrations") == (True, False, False, False, False)

    # when the role tries to change, delete or empty the event log
    refused = []
    with psycopg.connect(as_role(app_role), autocommit=True) as conn:
        for statement in ("UPDATE jobs_jobevent SET event_type = 'APPROVED'", "DELETE FROM jobs_jobevent",
                          "TRUNCATE jobs_jobevent", "TRUNCATE jobs_jobspec CASCADE",
                          "ALTER TABLE jobs_jobevent DISABLE TRIGGER ALL",
                          "DROP TRIGGER eam_guard_jobs_jobevent_no_update ON jobs_jobevent"):
            try:
                conn.execute(statement)
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.DependentObjectsStillExist) as exc:
                refused.append(type(exc))

    # then the privileges refuse each (a permission error, not a guard trigger's), and nothing changed
    assert refused == [psycopg.errors.InsufficientPrivilege] * 6
    assert list(JobEvent.objects.filter(job_id=job_id).values_list("id", "seq", "event_type", "hash")) == events


@on_postgresql
def test_an_owner_or_superuser_is_refused_as_the_application_role(app_role):
    # given the role running the command (the owner of every table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]

    # when it is named as the application role, then the command refuses and grants nothing
    with pytest.raises(CommandError, match="owner|superuser"):
        call_command("create_app_role", role=owner)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_role])
        assert cursor.fetchone() is None


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the SQLite refusal")
def test_on_sqlite_the_command_refuses():
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("create_app_role", role="eam_app")
