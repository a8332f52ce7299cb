"""The database itself refuses to rewrite history: raw SQL against the guard triggers, after a full migrate.

Each attack runs in its own `transaction.atomic()` (PostgreSQL aborts the transaction on error) and is
followed by a full dump of the tables, which must be what it was before.
"""
import io
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import DatabaseError, connection, transaction

from guards.triggers import GUARDED_TABLES, existing_triggers
from jobs.models import JobEvent, JobSpec

from ..conftest import REPO_ROOT
from ..builders import append, failed, new_blueprint_job, started, store_snapshot, table_rows

pytestmark = pytest.mark.django_db

EVENT_COLUMNS = "job_id, seq, event_type, step, actor, payload, schema_version, recorded_at, prev_hash, hash"


def only_on(vendor: str):
    if connection.vendor != vendor:
        pytest.skip(f"{vendor} only")


@pytest.fixture
def job():
    """A blueprint job with three events (seq 1..3), written through the append path."""
    job = new_blueprint_job()
    append(job.job_id, started("compile"), failed("compile", 1))
    return job


def seqs() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq FROM jobs_jobevent ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def refused(sql: str, params=(), *, match: str) -> str:
    """Run `sql` expecting the database to refuse it; the store is unchanged and the message says why."""
    before = store_snapshot()
    with pytest.raises(DatabaseError) as caught:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
    message = str(caught.value)
    assert match in message, message
    assert store_snapshot() == before
    return message


def insert_event_sql(*, with_id: bool = False, verb: str = "INSERT") -> str:
    columns = ("id, " if with_id else "") + EVENT_COLUMNS
    marks = ", ".join(["%s"] * len(columns.split(",")))
    return f"{verb} INTO jobs_jobevent ({columns}) VALUES ({marks})"


def event_values(job_id: str, seq: int, *, event_id=None) -> list:
    values = [
        job_id, seq, "RERUN_REQUESTED", None, '{"kind": "user", "id": "mallory"}',
        '{"agent_id": "intent", "rerun_id": "forged"}', "job_event_v2", "2030-01-01 00:00:00+00:00", "0" * 64, "f" * 64,
    ]
    return ([event_id] if event_id is not None else []) + values


# --- UPDATE and DELETE, on both databases ------------------------------------------------------------


def test_the_tables_hold_what_the_job_wrote(job):
    # a sanity check of the dumps the other tests compare
    assert seqs() == [1, 2, 3]
    assert len(table_rows("jobs_jobspec")) == 1


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE jobs_jobevent SET payload = '{}' WHERE seq = 2",
        "UPDATE jobs_jobevent SET event_type = 'DONE' WHERE seq = 3",
        "UPDATE jobs_jobevent SET hash = prev_hash",
    ],
)
def test_an_event_cannot_be_updated(job, sql):
    refused(sql, match="jobs_jobevent is insert-only")


def test_a_job_spec_cannot_be_updated(job):
    refused("UPDATE jobs_jobspec SET submitted_by = 'mallory'", match="jobs_jobspec is insert-only")


@pytest.mark.parametrize("sql", ["DELETE FROM jobs_jobevent WHERE seq = 2", "DELETE FROM jobs_jobevent"])
def test_an_event_cannot_be_deleted(job, sql):
    refused(sql, match="jobs_jobevent is insert-only")


def test_a_job_spec_cannot_be_deleted(job):
    # the trigger refuses before any foreign key is looked at
    refused("DELETE FROM jobs_jobspec", match="jobs_jobspec is insert-only")


def test_the_orm_cannot_update_or_delete_either(job):
    before = store_snapshot()
    for attack in (
        lambda: JobEvent.objects.filter(job_id=job.job_id).update(payload={}),
        lambda: JobEvent.objects.filter(job_id=job.job_id, seq=3).delete(),
        lambda: JobSpec.objects.filter(job_id=job.job_id).update(generation=7),
    ):
        with pytest.raises(DatabaseError, match="insert-only"):
            with transaction.atomic():
                attack()
    assert store_snapshot() == before


# --- seq: gapless, unique, positive, known types -----------------------------------------------------


def test_an_event_with_seq_last_plus_one_is_accepted(job):
    # the seq trigger is not a blanket refusal: the next seq goes in (its chain is another matter)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert_event_sql(), event_values(job.job_id, 4))
    assert seqs() == [1, 2, 3, 4]


def test_a_gap_in_seq_is_refused():
    # given a job whose only event is seq 1
    job = new_blueprint_job()

    # when seq 3 is inserted
    message = refused(insert_event_sql(), event_values(job.job_id, 3), match="seq must be the last seq + 1")

    # then nothing was written (checked by `refused`) and the message names the rule
    assert "jobs_jobevent" in message


def test_the_same_seq_twice_is_refused():
    job = new_blueprint_job()
    refused(insert_event_sql(), event_values(job.job_id, 1), match="seq")


@pytest.mark.parametrize("seq", [0, 2])
def test_a_seq_that_is_not_next_is_refused_even_for_an_old_seq(job, seq):
    refused(insert_event_sql(), event_values(job.job_id, seq), match="seq")


def test_the_first_event_of_a_job_must_be_seq_1():
    job = new_blueprint_job(fast=11)
    other = new_blueprint_job(fast=12)
    # seq 2 of `other` exists nowhere yet; seq 3 would be a gap in `other`, even though `job` is at 1
    append(job.job_id, started("compile"), failed("compile", 1))
    refused(insert_event_sql(), event_values(other.job_id, 3), match="seq")


def test_an_upsert_of_an_existing_event_is_refused(job):
    # INSERT ... ON CONFLICT DO UPDATE (both databases know it): the insert or the update is refused
    existing = JobEvent.objects.get(job_id=job.job_id, seq=3)
    refused(
        insert_event_sql(with_id=True) + " ON CONFLICT (id) DO UPDATE SET payload = excluded.payload",
        event_values(job.job_id, 4, event_id=existing.id), match="jobs_jobevent",
    )


def test_an_unknown_event_type_is_refused(job):
    values = event_values(job.job_id, 4)
    values[2] = "REWRITTEN"
    refused(insert_event_sql(), values, match="jobevent_type_valid")


# --- PostgreSQL only ---------------------------------------------------------------------------------


# Transactional: rows inserted in the same transaction leave deferred foreign-key checks pending, and
# PostgreSQL then refuses TRUNCATE for that reason before the guard could.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sql", ["TRUNCATE jobs_jobevent", "TRUNCATE jobs_jobspec CASCADE",
                                 "TRUNCATE jobs_jobevent, jobs_jobspec, jobs_jobstate"])
def test_truncate_is_refused_on_postgresql(job, sql):
    only_on("postgresql")
    refused(sql, match="is insert-only: TRUNCATE refused")


def test_the_guards_fire_even_for_a_replication_session_on_postgresql(job):
    # ENABLE ALWAYS: session_replication_role = replica does not switch the guards off
    only_on("postgresql")
    before = store_snapshot()
    with pytest.raises(DatabaseError, match="insert-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("DELETE FROM jobs_jobevent")
    assert store_snapshot() == before


# --- SQLite only: INSERT OR REPLACE ------------------------------------------------------------------


def test_insert_or_replace_of_an_existing_event_id_is_refused_on_sqlite(job):
    only_on("sqlite")
    existing = JobEvent.objects.get(job_id=job.job_id, seq=3)
    refused(insert_event_sql(with_id=True, verb="INSERT OR REPLACE"),
            event_values(job.job_id, 3, event_id=existing.id), match="jobs_jobevent")


def test_insert_or_replace_of_an_existing_job_and_seq_is_refused_on_sqlite(job):
    # a new id with the (job, seq) of an existing row: REPLACE would delete the old row
    only_on("sqlite")
    refused(insert_event_sql(verb="INSERT OR REPLACE"), event_values(job.job_id, 2), match="seq")


def test_insert_or_replace_of_the_last_id_with_the_next_seq_is_refused_on_sqlite(job):
    # the right next seq, but the id of the last event: it would silently replace seq 3
    only_on("sqlite")
    existing = JobEvent.objects.get(job_id=job.job_id, seq=3)
    refused(insert_event_sql(with_id=True, verb="REPLACE"),
            event_values(job.job_id, 4, event_id=existing.id), match="a row with this key exists")


def test_insert_or_replace_of_an_existing_job_spec_is_refused_on_sqlite(job):
    only_on("sqlite")
    refused(
        "INSERT OR REPLACE INTO jobs_jobspec (job_id, kind, spec, spec_sha256, snapshot_id, policy_bundle_id, "
        "root_job_id, parent_job_id, generation, created_at, submitted_by) "
        "VALUES (%s, 'blueprint', '{}', %s, 's', 'p', %s, NULL, 0, '2030-01-01 00:00:00', 'mallory')",
        [job.job_id, "0" * 64, job.job_id],
        match="jobs_jobspec is insert-only: a row with this key exists",
    )


# --- the system check and install_guards -------------------------------------------------------------


def guard_triggers() -> list[tuple[str, str]]:
    return [(g.table, name) for g in GUARDED_TABLES.values() for name in g.trigger_names(connection.vendor)]


def check_errors() -> str:
    """What `manage.py check` says; empty when it passes."""
    try:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    except SystemCheckError as exc:
        return str(exc)
    return ""


def tamper(how: str, table: str, name: str) -> None:
    with connection.cursor() as cursor:
        if how == "drop" and connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER {name}")
        elif how == "drop":
            cursor.execute(f"DROP TRIGGER {name} ON {table}")
        elif how == "disable":
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
        elif how == "enable_origin_only":
            # ENABLE without ALWAYS: the trigger would not fire for a replication session
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {name}")


def test_every_guard_trigger_is_installed_after_migrate():
    names = {name for _, name in guard_triggers()}
    assert {"eam_guard_jobs_jobevent_no_update", "eam_guard_jobs_jobevent_seq", "eam_guard_jobs_jobspec_no_delete"} <= names
    assert names <= existing_triggers(connection)
    assert check_errors() == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["drop", "disable", "enable_origin_only"])
def test_check_fails_and_names_a_missing_or_disabled_trigger_until_install_guards(how):
    if how != "drop":
        only_on("postgresql")
    for table, name in guard_triggers():
        if not table.startswith("jobs_"):
            continue
        try:
            # given a guard trigger removed (or switched off) by hand
            tamper(how, table, name)

            # when the system check runs, then it fails and names exactly that trigger
            errors = check_errors()
            assert name in errors, (how, name, errors)
            assert errors.count("eam_guard_") == 1, errors
            assert "guards.E001" in errors
        finally:
            call_command("install_guards", stdout=io.StringIO())

        # and after install_guards it passes again
        assert check_errors() == "", (how, name)


@pytest.mark.django_db(transaction=True)
def test_install_guards_restores_the_refusal_itself_not_only_the_name(job):
    # given the no_update trigger of the events dropped by hand, and an update that then goes through
    name = "eam_guard_jobs_jobevent_no_update"
    try:
        tamper("drop", "jobs_jobevent", name)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE jobs_jobevent SET step = step WHERE seq = 1")
    finally:
        # when install_guards runs
        out = io.StringIO()
        call_command("install_guards", stdout=out)

    # then it reports what it created and the update is refused again
    assert f"created {name}" in out.getvalue()
    assert "1 guard trigger(s) created" in out.getvalue()
    refused("UPDATE jobs_jobevent SET step = step WHERE seq = 1", match="jobs_jobevent is insert-only")


@pytest.mark.django_db(transaction=True)
def test_install_guards_is_idempotent():
    out = io.StringIO()
    call_command("install_guards", stdout=out)
    assert out.getvalue().strip() == "0 guard trigger(s) created or repaired"


@pytest.mark.slow
def test_manage_py_check_exits_non_zero_in_a_real_process_when_a_trigger_is_missing(process_env, python):
    name = "eam_guard_jobs_jobevent_no_delete"
    try:
        tamper("drop", "jobs_jobevent", name)
        broken = subprocess.run([python, "manage.py", "check"], cwd=REPO_ROOT, env=process_env,
                                capture_output=True, text=True, timeout=120)
    finally:
        call_command("install_guards", stdout=io.StringIO())
    repaired = subprocess.run([python, "manage.py", "check"], cwd=REPO_ROOT, env=process_env,
                              capture_output=True, text=True, timeout=120)

    assert broken.returncode != 0
    assert name in broken.stderr
    assert repaired.returncode == 0, repaired.stderr


def test_insert_or_replace_of_an_existing_registry_job_and_run_is_refused_on_sqlite():
    # a new id with the (job_id, run_id) of an existing trial: REPLACE would delete the original row without
    # firing the delete guard
    only_on("sqlite")
    from research.models import RegistryEntry

    entry = RegistryEntry.objects.create(
        run_id="0123456789ab", job_id="abcdefabcdef", root_job_id="abcdefabcdef", family="buy_and_hold",
        params_sha256="0" * 64, snapshot_id="s", policy_bundle_id="p", verdict="PASS", metrics={},
        created_at="2030-01-01T00:00:00Z",
    )
    before = list(RegistryEntry.objects.values_list("id", "job_id", "run_id", "verdict"))
    refused(
        "INSERT OR REPLACE INTO research_registryentry (id, run_id, job_id, root_job_id, family, params_sha256, "
        "snapshot_id, policy_bundle_id, verdict, metrics, created_at) "
        "VALUES (%s, %s, %s, %s, 'buy_and_hold', %s, 's', 'p', 'FAIL', '{}', '2030-01-02 00:00:00')",
        [entry.id + 1000, entry.run_id, entry.job_id, entry.root_job_id, "0" * 64],
        match="research_registryentry is insert-only: a row with this key exists",
    )
    assert list(RegistryEntry.objects.values_list("id", "job_id", "run_id", "verdict")) == before


# --- guards checked by definition, not by name ---------------------------------------------------------------

NEUTERED = {
    # how -> (vendor, statements that keep the trigger's name but take its teeth, the triggers they change)
    "sqlite trigger WHEN 0": ("sqlite", [
        "DROP TRIGGER eam_guard_jobs_jobevent_no_update",
        "CREATE TRIGGER eam_guard_jobs_jobevent_no_update BEFORE UPDATE ON jobs_jobevent WHEN 0 "
        "BEGIN SELECT RAISE(ABORT, 'jobs_jobevent is insert-only: UPDATE refused'); END",
    ], ["eam_guard_jobs_jobevent_no_update"]),
    "postgresql function RETURN NEW": ("postgresql", [
        "CREATE OR REPLACE FUNCTION eam_guard_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    ], ["eam_guard_jobs_jobevent_no_update", "eam_guard_jobs_jobspec_no_delete"]),
    "postgresql trigger WHEN (false)": ("postgresql", [
        "CREATE OR REPLACE TRIGGER eam_guard_jobs_jobevent_no_update BEFORE UPDATE ON jobs_jobevent FOR EACH ROW "
        "WHEN (false) EXECUTE FUNCTION eam_guard_refuse()",
        "ALTER TABLE jobs_jobevent ENABLE ALWAYS TRIGGER eam_guard_jobs_jobevent_no_update",
    ], ["eam_guard_jobs_jobevent_no_update"]),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", sorted(NEUTERED))
def test_a_neutered_guard_fails_the_check_and_install_guards_repairs_it(job, how):
    vendor, statements, named = NEUTERED[how]
    only_on(vendor)
    try:
        # given a guard trigger that keeps its name but no longer refuses anything
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

        # when the system check runs, then it fails and names it
        errors = check_errors()
        assert "guards.E001" in errors
        for name in named:
            assert f"Guard trigger {name} " in errors and "differs from its definition" in errors, (name, errors)
    finally:
        out = io.StringIO()
        call_command("install_guards", stdout=out)

    # and install_guards repairs it: the check passes and the update is refused again
    assert f"repaired {named[0]}" in out.getvalue()
    assert check_errors() == ""
    refused("UPDATE jobs_jobevent SET step = step WHERE seq = 1", match="jobs_jobevent is insert-only")


@pytest.mark.django_db(transaction=True)
def test_a_table_swap_fails_the_check_and_install_guards_guards_the_table_in_place(job):
    # given the events table renamed and an unguarded copy put in its place
    copy = ("CREATE TABLE jobs_jobevent AS SELECT * FROM jobs_jobevent_swapped WHERE 0" if connection.vendor == "sqlite"
            else "CREATE TABLE jobs_jobevent (LIKE jobs_jobevent_swapped INCLUDING ALL)")
    try:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE jobs_jobevent RENAME TO jobs_jobevent_swapped")
            cursor.execute(copy)

        # when the system check runs, then it fails and names the events' guards
        errors = check_errors()
        assert "Guard trigger eam_guard_jobs_jobevent_no_update on table jobs_jobevent" in errors, errors

        # and install_guards guards the table in place again (a DELETE there is refused)
        call_command("install_guards", stdout=io.StringIO())
        assert check_errors() == ""
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO jobs_jobevent SELECT * FROM jobs_jobevent_swapped WHERE seq = 1")
        with pytest.raises(DatabaseError, match="insert-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM jobs_jobevent")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS jobs_jobevent")
            cursor.execute("ALTER TABLE jobs_jobevent_swapped RENAME TO jobs_jobevent")
        call_command("install_guards", stdout=io.StringIO())
    assert check_errors() == ""
