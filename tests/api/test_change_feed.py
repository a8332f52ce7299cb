"""The job change feed (jobs.change_feed): on PostgreSQL a job's detail, read again, asks the database nothing
until the database announces a change to the job. Every kind of change is announced (raw SQL on another
connection, a worker in another process) and shows on the next read; this process's own writes show at
once; a lost listening connection, missing triggers or a silent database stop the kept rows being trusted."""
import os
import signal
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs import change_feed, services
from jobs.actors import Actor
from jobs.api import detail

from ..conftest import database_url
from ..workflow.conftest import ingest_tiny, run_jobs, submit
from .builders import client_for, submitted, waiting_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def feed():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite every read asks the database, in process")
    change_feed.close()  # each test starts with a new listening connection and nothing kept
    live = change_feed.feed()
    assert live is not None
    yield live
    change_feed.close()


def read(client, job_id: str, **headers):
    response = client.get(f"/jobs/{job_id}", **headers)
    assert response.status_code == 200, response.content
    return response.json()


def queries_of(call) -> tuple[list[str], object]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return [q["sql"] for q in captured.captured_queries], result


def other_connection() -> psycopg.Connection:
    """A connection of its own, as another process would have: its commits reach us only as notices."""
    return psycopg.connect(database_url().replace("postgres://", "postgresql://", 1), autocommit=True)


def kept_job(people, name: str):
    """A job waiting for approval whose version row this process keeps: (job, the reviewer's client)."""
    job = waiting_job(people.submitter, name)
    reviewer = client_for(people.reviewer)
    read(reviewer, job.job_id)
    assert queries_of(lambda: read(reviewer, job.job_id))[0] == []
    return job, reviewer


def lease_taken_elsewhere(job_id: str, owner: str) -> None:
    """Another connection takes the job's lease with raw SQL: no event, no code of ours, only the trigger."""
    with other_connection() as other:
        other.execute("UPDATE jobs_jobstate SET lease_owner = %s WHERE job_id = %s", [owner, job_id])


@contextmanager
def notice_trigger_disabled():
    name, (table, _) = next(iter(change_feed.TRIGGERS.items()))
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")


def assert_reads_ask_the_database(client, job_id: str, times: int = 3) -> None:
    for _ in range(times):
        asked, body = queries_of(lambda: read(client, job_id))
        assert len(asked) >= 1 and body["status"] == "waiting_approval", asked


def read_until(client, job_id: str, shown, seconds: float = 2.0) -> tuple[dict, float]:
    """Read until `shown(detail)` holds (the notice of a commit elsewhere is on its way); (detail, seconds)."""
    begin = time.monotonic()
    while True:
        body = read(client, job_id)
        if shown(body) or time.monotonic() - begin > seconds:
            return body, time.monotonic() - begin
        time.sleep(0.005)


def test_a_repeated_read_asks_the_database_nothing(feed, people):
    # given a job waiting for approval, read once by a reviewer
    job = waiting_job(people.submitter, "kept")
    reviewer = client_for(people.reviewer)
    first = read(reviewer, job.job_id)

    # when the reviewer reads it again, and the submitter reads it twice
    asked, again = queries_of(lambda: read(reviewer, job.job_id))
    submitter = client_for(people.submitter)
    asked_first_by_submitter, as_submitter = queries_of(lambda: read(submitter, job.job_id))
    asked_again_by_submitter, _ = queries_of(lambda: read(submitter, job.job_id))

    # then the reviewer's second read asked the database nothing; the submitter's first built the submitter's
    # own body (and found the token) but did not read the job's version again; the second asked nothing
    assert asked == [] and again == first
    assert not [sql for sql in asked_first_by_submitter if "last_hash" in sql], asked_first_by_submitter
    assert asked_again_by_submitter == []
    assert as_submitter["last_seq"] == first["last_seq"]
    assert (first["can_approve"], as_submitter["can_approve"]) == (True, False)


def test_cache_control_no_cache_asks_the_database(feed, people):
    job = waiting_job(people.submitter, "fresh")
    reviewer = client_for(people.reviewer)
    read(reviewer, job.job_id)
    for header in ("no-cache", "max-age=0", "No-Cache, no-transform"):
        asked, body = queries_of(lambda: read(reviewer, job.job_id, HTTP_CACHE_CONTROL=header))
        assert len(asked) == 1 and "last_hash" in asked[0], (header, asked)
        assert body["status"] == "waiting_approval"


def test_this_process_reads_its_own_write_at_once(feed, people):
    # given a waiting job whose version row this process keeps
    job = waiting_job(people.submitter, "own write")
    reviewer = client_for(people.reviewer)
    assert read(reviewer, job.job_id)["can_approve"] is True

    # when the reviewer approves through this process
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(people.reviewer))

    # then the kept row went when the approval committed, before any notice was drained
    assert job.job_id not in feed._rows
    after = read(reviewer, job.job_id)
    assert (after["status"], after["can_approve"]) == ("queued", False)


def test_a_write_rolled_back_leaves_the_kept_row(feed, people):
    job = waiting_job(people.submitter, "rolled back")
    reviewer = client_for(people.reviewer)
    read(reviewer, job.job_id)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(people.reviewer))
        raise RuntimeError("abandon the approval")
    assert job.job_id in feed._rows
    asked, body = queries_of(lambda: read(reviewer, job.job_id))
    assert asked == [] and body["status"] == "waiting_approval"


def test_a_change_on_another_connection_shows_on_the_next_reads(feed, people):
    # given a job waiting for approval, read and kept
    job, reviewer = kept_job(people, "elsewhere")
    before = read(reviewer, job.job_id)

    # when another connection takes the job's lease with raw SQL (no event, no code of ours)
    lease_taken_elsewhere(job.job_id, "worker-x")

    # then a read shows it, as soon as the database's notice arrives
    after, waited = read_until(reviewer, job.job_id, lambda body: body["lease_owner"] == "worker-x")
    assert after["lease_owner"] == "worker-x", f"not shown after {waited:.3f}s"
    assert after["last_seq"] == before["last_seq"]
    assert waited < 1.0


def test_a_worker_process_moving_the_job_on_shows_on_the_next_read(feed, process_env, people):
    # given a submitted job, read (and kept) by its submitter
    ingest_tiny()
    job = submit()
    submitter = client_for(people.submitter)
    assert read(submitter, job.job_id)["status"] == "queued"
    assert queries_of(lambda: read(submitter, job.job_id))[0] == []

    # when a worker process compiles it and stops at the runspec checkpoint
    done = run_jobs(process_env, "--once")
    assert done.returncode == 0, done.stderr

    # then the very next read shows the checkpoint: the notices arrived while the worker exited
    after = read(submitter, job.job_id)
    assert (after["status"], after["waiting_step"]) == ("waiting_approval", "runspec")
    assert after["last_seq"] > 2


def test_a_new_child_job_shows_in_its_parents_detail(feed, people):
    # given a job, read and kept
    parent = submitted(people.submitter, "parent")
    submitter = client_for(people.submitter)
    assert read(submitter, parent.job_id)["lineage"]["children"] == []

    # when another connection inserts a child under it (raw SQL: the spec row only, as a spawn writes it)
    with other_connection() as other:
        other.execute(
            "INSERT INTO jobs_jobspec (job_id, kind, spec, spec_sha256, snapshot_id, policy_bundle_id, root_job_id,"
            " parent_job_id, generation, created_at, submitted_by)"
            " SELECT 'c0ffee000001', kind, spec, spec_sha256, snapshot_id, policy_bundle_id, root_job_id, job_id,"
            " generation + 1, created_at, submitted_by FROM jobs_jobspec WHERE job_id = %s", [parent.job_id])

    # then the parent's detail lists it
    after, waited = read_until(submitter, parent.job_id, lambda body: body["lineage"]["children"])
    assert after["lineage"]["children"] == ["c0ffee000001"], waited


def test_the_database_announces_every_kind_of_change(feed, people):
    """The triggers themselves, with raw SQL: what is announced, and with which payload."""
    job, other_job = submitted(people.submitter, "announced"), submitted(people.submitter, "announced too")
    with other_connection() as listener, other_connection() as writer:
        listener.execute(f"LISTEN {change_feed.CHANNEL}")
        writer.execute("UPDATE jobs_jobstate SET lease_owner = 'w' WHERE job_id = %s", [job.job_id])
        writer.execute("INSERT INTO jobs_jobspec (job_id, kind, spec, spec_sha256, snapshot_id, policy_bundle_id,"
                       " root_job_id, parent_job_id, generation, created_at, submitted_by) SELECT 'c0ffee000002',"
                       " kind, spec, spec_sha256, snapshot_id, policy_bundle_id, root_job_id, job_id, 1, created_at,"
                       " submitted_by FROM jobs_jobspec WHERE job_id = %s", [job.job_id])
        writer.execute("DELETE FROM jobs_jobstate WHERE job_id = %s", [other_job.job_id])
        with writer.transaction(force_rollback=True):  # a change rolled back is not announced
            writer.execute("UPDATE jobs_jobstate SET lease_owner = 'gone' WHERE job_id = %s", [job.job_id])
        writer.execute("TRUNCATE jobs_jobstate")
        notices = [n.payload for n in listener.notifies(timeout=2, stop_after=4)]
    assert notices == [job.job_id, job.job_id, other_job.job_id, change_feed.EVERYTHING]


def test_a_lost_listening_connection_costs_queries_not_stale_reads(feed, people):
    job, reviewer = kept_job(people, "lost")

    # when the listening connection is ended by the server, and meanwhile another connection changes the job
    with other_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [feed._listener.pgconn.backend_pid])
    lease_taken_elsewhere(job.job_id, "unseen")
    time.sleep(0.1)  # the termination reaches the socket

    # then the next read asks the database and shows the change (its notice was never heard)
    asked, after = queries_of(lambda: read(reviewer, job.job_id))
    assert len(asked) >= 1 and after["lease_owner"] == "unseen"
    # and the feed listens again: the read after that keeps, the one after asks nothing
    read(reviewer, job.job_id)
    assert queries_of(lambda: read(reviewer, job.job_id))[0] == []


def test_a_silent_database_stops_the_kept_rows_being_trusted(feed, people):
    job, reviewer = kept_job(people, "silent")

    # when the server process behind the listening connection stops answering (its socket stays open),
    # and meanwhile another connection changes the job
    backend = feed._listener.pgconn.backend_pid
    try:
        os.kill(backend, signal.SIGSTOP)
    except PermissionError:
        pytest.skip("this user may not signal the database server's processes")
    try:
        lease_taken_elsewhere(job.job_id, "while silent")
        began = time.monotonic()

        # then within TRUSTED_FOR (and a heartbeat) reads ask the database again and show the change
        bound = change_feed.TRUSTED_FOR + 2 * change_feed.PING_EVERY
        after, _ = read_until(reviewer, job.job_id, lambda body: body["lease_owner"] == "while silent",
                              seconds=bound + 1)
        assert after["lease_owner"] == "while silent"
        assert time.monotonic() - began <= bound + 0.5
    finally:
        os.kill(backend, signal.SIGCONT)
    # and once the database answers again (the same session, with its notices, or a new one), reads keep
    deadline = time.monotonic() + change_feed.TRUSTED_FOR + 1
    while queries_of(lambda: read(reviewer, job.job_id))[0]:
        assert time.monotonic() < deadline, "reads never kept again"
        time.sleep(0.05)


def test_a_notice_trigger_disabled_later_stops_the_feed(feed, people):
    job, reviewer = kept_job(people, "disabled later")
    with notice_trigger_disabled():
        time.sleep(2 * change_feed.PING_EVERY + 0.2)  # the next heartbeat counts the triggers
        assert_reads_ask_the_database(reviewer, job.job_id)


def test_an_idle_process_still_takes_its_notices(feed, people):
    # given a kept job and no request coming in
    job, _ = kept_job(people, "idle")
    assert job.job_id in feed._rows

    # when another connection changes the job
    lease_taken_elsewhere(job.job_id, "nobody reads")

    # then the watcher thread takes the notice (the database's queue is not held back) and drops the row
    deadline = time.monotonic() + 2
    while job.job_id in feed._rows:
        assert time.monotonic() < deadline, "the notice was not taken without a read"
        time.sleep(0.01)


def test_missing_triggers_turn_the_feed_off(feed, people):
    job = waiting_job(people.submitter, "untriggered")
    with notice_trigger_disabled():
        change_feed.close()
        assert_reads_ask_the_database(client_for(people.reviewer), job.job_id)
        assert change_feed.feed()._listener is None


def test_a_row_read_while_its_job_changed_is_not_kept(feed, people):
    job = waiting_job(people.submitter, "raced")

    def read_while_another_thread_hears_a_change():
        row = detail._version_row(job.job_id)
        feed.forget(job.job_id)  # what a notice drained by another request thread meanwhile does
        return row

    feed.read(job.job_id, read_while_another_thread_hears_a_change)
    assert job.job_id not in feed._rows
    feed.read(job.job_id, lambda: detail._version_row(job.job_id))
    assert job.job_id in feed._rows


def test_a_forked_child_opens_its_own_listener_and_leaves_the_parents_alone(feed, people):
    # given a parent process with a kept job, where another thread holds the feed's lock at the fork
    job, reviewer = kept_job(people, "forked")
    parents_backend = feed._listener.pgconn.backend_pid
    readable, writable = os.pipe()
    held, forked = threading.Event(), threading.Event()

    def hold_the_lock_over_the_fork():
        with feed._lock:
            held.set()
            forked.wait(10)

    holder = threading.Thread(target=hold_the_lock_over_the_fork)
    holder.start()
    held.wait(10)
    child = os.fork()
    if child == 0:  # the child: report what its first read saw, then leave without running any finalizer
        try:
            inherited = connection.connection
            connection.connection = None  # the parent's session: not to be used, nor closed, here
            row = change_feed.feed().read(job.job_id, lambda: detail._version_row(job.job_id))
            own_backend = change_feed.feed()._listener.pgconn.backend_pid
            os.write(writable, f"{row[0]} {own_backend} {inherited is not None}".encode())
        finally:
            os._exit(0)
    forked.set()
    holder.join()
    os.close(writable)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(child, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            pytest.fail("the child hung on its first read (a lock held at the fork)")
        time.sleep(0.05)
    status = done[1]
    last_seq, childs_backend, _ = os.read(readable, 200).decode().split()
    os.close(readable)

    # then the child read through a listening connection of its own (it did not deadlock on the lock)
    assert status == 0 and int(last_seq) == read(reviewer, job.job_id)["last_seq"]
    assert int(childs_backend) != parents_backend
    # and the parent's listener lives on: a change elsewhere still reaches it, kept reads still ask nothing
    assert feed._listener.pgconn.backend_pid == parents_backend
    lease_taken_elsewhere(job.job_id, "after the fork")
    after, _ = read_until(reviewer, job.job_id, lambda body: body["lease_owner"] == "after the fork")
    assert after["lease_owner"] == "after the fork"
    assert queries_of(lambda: read(reviewer, job.job_id))[0] == []


def test_no_feed_inside_a_transaction_or_without_postgresql(settings):
    with transaction.atomic():
        assert change_feed.feed() is None  # a transaction may hold changes of its own that no one announces
    if connection.vendor != "postgresql":
        assert change_feed.feed() is None
    settings.EAM_CHANGE_FEED = False
    assert change_feed.feed() is None


def test_without_the_feed_each_read_asks_once(people, settings):
    settings.EAM_CHANGE_FEED = False
    job = waiting_job(people.submitter, "plain")
    reviewer = client_for(people.reviewer)
    read(reviewer, job.job_id)
    for _ in range(2):
        asked, _ = queries_of(lambda: read(reviewer, job.job_id))
        assert len(asked) == 1 and "last_hash" in asked[0]


def test_a_change_elsewhere_moves_the_etag_on(feed, people):
    job, reviewer = kept_job(people, "etag")
    first = reviewer.get(f"/jobs/{job.job_id}")
    assert reviewer.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    lease_taken_elsewhere(job.job_id, "someone")
    deadline = time.monotonic() + 2
    while reviewer.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304:
        assert time.monotonic() < deadline, "the ETag never moved on"
        time.sleep(0.005)
