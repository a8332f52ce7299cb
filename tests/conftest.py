"""Shared fixtures: users and actors, and what real-process tests need to reach the test database."""
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from guards.triggers import GUARDED_TABLES, install, uninstall

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def guards_lifted(conn):
    """Test-only: drop the guard triggers around a flush, then put them back exactly as migrations do."""
    tables = set(conn.introspection.table_names())
    present = [g for g in GUARDED_TABLES.values() if g.table in tables]
    for guarded in present:
        uninstall(conn, guarded)
    try:
        yield
    finally:
        for guarded in present:
            install(conn, guarded)


@pytest.fixture(scope="session", autouse=True)
def _flush_through_guards():
    """Transactional tests empty the tables between tests; the guards would (rightly) refuse that."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with guards_lifted(self.connection):
            original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


def database_url() -> str:
    """A DATABASE_URL for the test database this session created, for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture
def process_env(transactional_db, settings):
    """Environment for `manage.py` child processes that work on this test's (committed) database."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=database_url(),
        SECRET_KEY="eam-test-only-key",
        EAM_ARTIFACT_ROOT=str(settings.EAM_ARTIFACT_ROOT),
        DJANGO_SETTINGS_MODULE="eam_site.settings",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, *groups: str):
        from django.contrib.auth.models import Group

        user = django_user_model.objects.create_user(username=username, password=f"{username}-pass-123")
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make
