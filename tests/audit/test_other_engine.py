"""Export -> import into a fresh database on the other engine -> export again: byte-identical bundles.

The other database is a scratch one, reached only by `manage.py` child processes (migrate, import_jobstore,
export_job) that share the artifact storage and the keys: a SQLite file when the tests run on PostgreSQL; a new
PostgreSQL database when they run on SQLite, made on the server EAM_TEST_OTHER_POSTGRES names (default: the local
one, as user postgres) and dropped afterwards."""
import io
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from ..builders import finished_jobs
from ..conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@contextmanager
def other_database(tmp_path):
    if connection.vendor == "postgresql":
        yield f"sqlite:///{tmp_path / 'other.sqlite3'}"
        return
    import psycopg

    server = os.environ.get("EAM_TEST_OTHER_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"eam_other_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server to make the other database on ({exc})")
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env, *args) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_bundle_imported_on_the_other_engine_exports_byte_identical(artifact_root, tiny_snapshot, people, tmp_path):
    jobs = finished_jobs(people)
    ids = sorted(jobs.values())
    call_command("export_job", *ids, "--root", str(tmp_path / "first"), stdout=io.StringIO())
    call_command("export_job", *ids, "--archive", str(tmp_path / "first.tar.gz"), stdout=io.StringIO())
    with other_database(tmp_path) as url:
        env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "EAM_TEST_SQLITE_NAME")}
        env.update(DATABASE_URL=url, SECRET_KEY="eam-test-only-key", DJANGO_SETTINGS_MODULE="eam_site.settings",
                   EAM_ARTIFACT_ROOT=str(artifact_root), EAM_KEY_DIR=str(settings.EAM_KEY_DIR),
                   EAM_SIGNING_KEYS=",".join(f"{k}={v}" for k, v in settings.EAM_SIGNING_KEYS.items()),
                   EAM_PUBLIC_KEYS=",".join(f"{k}={v}" for k, v in settings.EAM_PUBLIC_KEYS.items()),
                   EAM_ANCHOR_SECONDS="0", PYTHONPATH=str(REPO_ROOT))
        manage(env, "migrate", "--noinput")
        report = manage(env, "import_jobstore", str(tmp_path / "first"))
        assert report.count(" imported ") == 2, report
        manage(env, "export_job", *ids, "--root", str(tmp_path / "second"))
        manage(env, "export_job", *ids, "--archive", str(tmp_path / "second.tar.gz"))
        assert "2 skipped" in manage(env, "import_jobstore", str(tmp_path / "first"))
        # the imported chains verify there too (the children spawned, anchored but not exported, are not asked for)
        manage(env, "verify_events", *(arg for job_id in ids for arg in ("--job", job_id)))

    assert tree(tmp_path / "second") == tree(tmp_path / "first")
    assert (tmp_path / "second.tar.gz").read_bytes() == (tmp_path / "first.tar.gz").read_bytes()
