"""The access log of artifact reads is insert-only in the database itself, like the events: raw SQL and the ORM
cannot change or remove a row, and the system check fails while one of its guard triggers is missing."""
import io

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from guards.triggers import GUARDED_TABLES, existing_triggers
from jobs import access
from jobs.models import ArtifactRead

from ..builders import table_rows
from .test_triggers import check_errors, only_on, tamper

pytestmark = pytest.mark.django_db

TABLE = "jobs_artifactread"
COLUMNS = "who, job_id, path, storage_path, sha256, bytes, at, request_id, via"


@pytest.fixture
def logged() -> list[ArtifactRead]:
    """Two reads, written as the download writes them."""
    reader = access.Reader(who="rita", request_id="req-1", via="api")
    return [
        access.record_read(reader=reader, job_id="0123456789ab", path=path, storage_path=f"jobs/0123456789ab/{path}",
                           sha256="a" * 64, size=10)
        for path in ("outputs/runspec.json", "outputs/gate_results.json")
    ]


def refused(sql: str, params=(), *, match: str) -> None:
    before = table_rows(TABLE)
    with pytest.raises(DatabaseError) as caught:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    assert match in str(caught.value), str(caught.value)
    assert table_rows(TABLE) == before


@pytest.mark.parametrize("sql", [
    "UPDATE jobs_artifactread SET who = 'nobody'",
    "UPDATE jobs_artifactread SET sha256 = 'b' WHERE path = 'outputs/runspec.json'",
])
def test_a_read_cannot_be_updated(logged, sql):
    refused(sql, match="jobs_artifactread is insert-only")


@pytest.mark.parametrize("sql", ["DELETE FROM jobs_artifactread", "DELETE FROM jobs_artifactread WHERE who = 'rita'"])
def test_a_read_cannot_be_deleted(logged, sql):
    refused(sql, match="jobs_artifactread is insert-only")


def test_the_orm_cannot_update_or_delete_a_read_either(logged):
    before = table_rows(TABLE)
    for attack in (
        lambda: ArtifactRead.objects.filter(who="rita").update(who="mallory"),
        lambda: ArtifactRead.objects.filter(pk=logged[0].pk).delete(),
        lambda: logged[1].delete(),
    ):
        with pytest.raises(DatabaseError, match="insert-only"):
            with transaction.atomic():
                attack()
    assert table_rows(TABLE) == before and len(before) == 2


def test_a_new_read_goes_in(logged):
    # the guards refuse changes, not appends
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES ('nina', '0123456789ab', 'p', 'jobs/p', %s, 1, "
                       "'2030-01-01 00:00:00+00:00', 'r', 'ui')", ["c" * 64])
    assert len(table_rows(TABLE)) == 3


@pytest.mark.django_db(transaction=True)
def test_truncate_of_the_reads_is_refused_on_postgresql(logged):
    only_on("postgresql")
    refused("TRUNCATE jobs_artifactread", match="jobs_artifactread is insert-only: TRUNCATE refused")


def test_insert_or_replace_of_an_existing_read_is_refused_on_sqlite(logged):
    only_on("sqlite")
    refused(f"INSERT OR REPLACE INTO {TABLE} (id, {COLUMNS}) VALUES (%s, 'mallory', '0123456789ab', 'p', 'p', %s, "
            "1, '2030-01-01 00:00:00', 'r', 'api')", [logged[0].id, "0" * 64],
            match="jobs_artifactread is insert-only: a row with this key exists")


def test_the_reads_are_guarded_and_the_check_covers_them():
    names = set(GUARDED_TABLES[TABLE].trigger_names(connection.vendor))
    assert {f"eam_guard_{TABLE}_no_update", f"eam_guard_{TABLE}_no_delete"} <= names
    assert names <= existing_triggers(connection)
    assert check_errors() == ""


@pytest.mark.django_db(transaction=True)
def test_check_fails_while_a_read_guard_is_missing_until_install_guards():
    name = f"eam_guard_{TABLE}_no_delete"
    try:
        tamper("drop", TABLE, name)
        errors = check_errors()
        assert name in errors and "guards.E001" in errors, errors
    finally:
        call_command("install_guards", stdout=io.StringIO())
    assert check_errors() == ""
