"""What PostgreSQL announces about jobs, kept per process: the version row of each job's detail read since,
dropped as soon as the database announces a change to that job, so that a repeated read needs no query.

Triggers (migration 0005) NOTIFY `eam_job_changed` with a job's id whenever its projection row changes (a
new event, a lease taken or renewed, a repair) or a child job is inserted under it, and with "*" when
either table is truncated. Each API process LISTENs on a connection of its own and drains the notices at
the start of every read, before it trusts a kept row (a watcher thread drains them between reads). A change
this process writes is dropped when its transaction commits (`changed_here`), before the writer answers, so
this process reads its own writes.

What a kept row can miss: a change another process committed that PostgreSQL has not yet delivered to this
one; delivery follows the commit by a fraction of a millisecond. A read with `fresh=True` (an API request
with `Cache-Control: no-cache`) always asks the database. Nothing is kept or trusted inside a transaction,
which may hold changes of its own that no one announces; while the listening connection is down; when the
database has not answered its heartbeat for TRUSTED_FOR seconds; or once a notice trigger is found missing
or disabled (the heartbeat counts them).
"""
import logging
import os
import select
import threading
import time
from collections import deque
from functools import partial
from itertools import islice

import psycopg
from django.conf import settings
from django.db import connection, transaction
from psycopg import pq

from guards.triggers import always_trigger

from .models import JobSpec, JobState

log = logging.getLogger(__name__)

CHANNEL = "eam_job_changed"
EVERYTHING = "*"  # the notice of a TRUNCATE, and of a lost or new connection: forget every kept row
KEPT_ROWS = 50_000  # rows kept per process at most; the oldest goes first
RECENT_NOTICES = 4_096  # notices remembered to tell whether a row read meanwhile may still be kept
PING_EVERY = 0.5  # seconds between heartbeats on the listening connection
TRUSTED_FOR = 2.0  # kept rows are trusted only this long after the database last answered
RECONNECT_EVERY = 5.0  # seconds between attempts to (re)open the listening connection
CONNECT_TIMEOUT = 2

_PREFIX = "eam_notice_"
_STATE, _SPEC = JobState._meta.db_table, JobSpec._meta.db_table
_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_PREFIX}job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('{CHANNEL}', '{EVERYTHING}');
    ELSIF TG_TABLE_NAME = '{_SPEC}' THEN
        PERFORM pg_notify('{CHANNEL}', NEW.parent_job_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', OLD.job_id);
    ELSE
        PERFORM pg_notify('{CHANNEL}', NEW.job_id);
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    f"{_PREFIX}jobstate_changed": (_STATE, "AFTER UPDATE OR DELETE ON {table} FOR EACH ROW"),
    f"{_PREFIX}jobstate_truncated": (_STATE, "AFTER TRUNCATE ON {table} FOR EACH STATEMENT"),
    f"{_PREFIX}jobspec_child": (_SPEC, "AFTER INSERT ON {table} FOR EACH ROW WHEN (NEW.parent_job_id IS NOT NULL)"),
    f"{_PREFIX}jobspec_truncated": (_SPEC, "AFTER TRUNCATE ON {table} FOR EACH STATEMENT"),
}


# The heartbeat, and the check when connecting: every notice trigger is there and enabled.
_COUNT_TRIGGERS = ("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'A' AND tgname IN ("
                   + ", ".join(f"'{name}'" for name in TRIGGERS) + ")")
clock = time.monotonic  # a module attribute, so that tests can move this clock alone


def install(schema_editor) -> None:
    """Create the notice triggers (PostgreSQL only; SQLite has no NOTIFY and no kept rows)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(_FUNCTION)
    for name, (table, when) in TRIGGERS.items():
        # Announced even with session_replication_role = replica, as the guards refuse even then.
        definition = f"{when.format(table=table)} EXECUTE FUNCTION {_PREFIX}job_changed()"
        for statement in always_trigger(name, table, definition):
            schema_editor.execute(statement)


def uninstall(schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, _) in TRIGGERS.items():
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {_PREFIX}job_changed()")


class ChangeFeed:
    """One process's listening connection and the version rows it keeps. Safe to share between threads.

    Request threads drain the connection before each read; a watcher thread drains it too whenever it is
    readable and sends the heartbeats, so that an idle process neither holds back the database's notice
    queue (which every listener must read) nor loses its trust.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._listener = None  # a psycopg connection in autocommit, LISTENing on CHANNEL
        self._rows: dict[str, tuple] = {}
        self._generation = 0  # notices (and forgets) counted so far
        self._recent: deque[tuple[int, str]] = deque(maxlen=RECENT_NOTICES)  # (generation, job id)
        self._heard_at = float("-inf")  # clock() of the database's last answer
        self._ping_sent_at: float | None = None
        self._connect_after = 0.0
        self._ending: str | None = None  # what the server said before ending the listening session
        self._warned = False

    def read(self, job_id: str, query, *, fresh: bool = False):
        """The row `query()` would return for job_id: kept from an earlier read if no change came since."""
        with self._lock:
            ticket = self._ticket()
            if ticket is not None and not fresh:
                kept = self._rows.get(job_id)
                if kept is not None:
                    return kept
        row = query()
        if row is not None and ticket is not None:
            with self._lock:
                if self._unchanged_since(ticket, job_id):
                    self._keep(job_id, row)
        return row

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._changed(job_id)

    def close(self) -> None:
        with self._lock:
            self._drop_listener(retry_after=0.0)

    def _watch(self, listener) -> None:
        """The watcher thread of one listening connection; it ends when that connection is dropped."""
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
                self._drain_or_drop()
                if self._listener is not listener:
                    return
                fd = listener.pgconn.socket
            try:
                select.select([fd], [], [], PING_EVERY)
            except (OSError, ValueError):
                pass  # closed by another thread meanwhile: the next turn sees it dropped

    # -- under self._lock ------------------------------------------------------------------------------------

    def _ticket(self) -> int | None:
        """The generation the kept rows are good for now, or None when the feed cannot be trusted."""
        if self._listener is None and (clock() < self._connect_after or not self._listen()):
            return None
        if not self._drain_or_drop():
            return None
        return self._generation if clock() - self._heard_at <= TRUSTED_FOR else None

    def _drain_or_drop(self) -> bool:
        try:
            self._drain(clock())
        except psycopg.Error as error:
            log.warning("job change feed lost its connection (%s); reading the database until it is back", error)
            self._drop_listener(retry_after=0.0)
            return False
        return True

    def _drain(self, moment: float) -> None:
        """Take every notice and heartbeat answer that has arrived, without waiting; send a heartbeat if due."""
        pgconn = self._listener.pgconn
        pgconn.consume_input()
        while (notice := pgconn.notifies()) is not None:
            self._changed(notice.extra.decode())
            self._heard_at = moment
        if self._ending is not None:
            raise psycopg.OperationalError(f"the server is ending the connection: {self._ending}")
        while self._ping_sent_at is not None and not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                self._ping_sent_at, self._heard_at = None, moment
            elif result.status != pq.ExecStatus.TUPLES_OK:
                raise psycopg.OperationalError(f"heartbeat failed: {pgconn.get_error_message()}")
            elif int(result.get_value(0, 0)) != len(TRIGGERS):
                raise psycopg.OperationalError("a notice trigger was dropped or disabled")
        if self._ping_sent_at is None and moment - self._heard_at >= PING_EVERY:
            pgconn.send_query(_COUNT_TRIGGERS.encode())
            self._ping_sent_at = moment
        elif self._ping_sent_at is not None and moment - self._ping_sent_at > TRUSTED_FOR:
            raise psycopg.OperationalError(f"no answer to a heartbeat in {TRUSTED_FOR} s")

    def _listen(self) -> bool:
        params = connection.get_connection_params()
        params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        try:
            listener = psycopg.connect(**params, autocommit=True)
        except psycopg.Error as error:
            log.warning("job change feed cannot connect (%s); reading the database", error)
            self._connect_after = clock() + RECONNECT_EVERY
            return False
        try:
            listener.execute(f"SET statement_timeout = {int(CONNECT_TIMEOUT * 1000)}")
            listener.execute(f"LISTEN {CHANNEL}")
            (present,) = listener.execute(_COUNT_TRIGGERS).fetchone()
        except psycopg.Error as error:
            listener.close()
            log.warning("job change feed cannot listen (%s); reading the database", error)
            self._connect_after = clock() + RECONNECT_EVERY
            return False
        if present != len(TRIGGERS):
            listener.close()
            if not self._warned:
                log.warning("job change feed off: a notice trigger (%s) is missing or disabled; migrate jobs",
                            ", ".join(TRIGGERS))
                self._warned = True
            self._connect_after = clock() + RECONNECT_EVERY
            return False
        # A server that ends the session (pg_terminate_backend, shutdown) first says why; when no query runs,
        # libpq passes that to the notice handler, and only a later read of the socket sees it closed.
        listener.add_notice_handler(self._on_server_message)
        # Notices from before LISTEN were never heard: nothing kept earlier may be trusted.
        self._listener, self._heard_at, self._ping_sent_at, self._ending = listener, clock(), None, None
        self._changed(EVERYTHING)
        threading.Thread(target=self._watch, args=(listener,), name="eam-job-change-feed", daemon=True).start()
        return True

    def _on_server_message(self, diagnostic) -> None:
        if diagnostic.severity_nonlocalized in ("ERROR", "FATAL", "PANIC"):
            self._ending = diagnostic.message_primary or diagnostic.severity_nonlocalized

    def _drop_listener(self, *, retry_after: float) -> None:
        if self._listener is not None:
            self._listener.close()
        self._listener, self._ping_sent_at = None, None
        self._connect_after = clock() + retry_after
        self._changed(EVERYTHING)

    def _after_fork(self) -> None:
        """In a forked child: a thread of the parent (its watcher, say) may have held the lock, so the child
        takes a fresh one. The inherited connection is the parent's session: closing it here would end the
        parent's LISTEN, so it is kept, unused, for the life of this process; the first read opens its own."""
        self._lock = threading.Lock()
        if self._listener is not None:
            _INHERITED.append(self._listener)
        self._listener, self._ping_sent_at, self._connect_after = None, None, 0.0
        self._changed(EVERYTHING)

    def _changed(self, job_id: str) -> None:
        self._generation += 1
        self._recent.append((self._generation, job_id))
        if job_id == EVERYTHING:
            self._rows.clear()
        else:
            self._rows.pop(job_id, None)

    def _unchanged_since(self, ticket: int, job_id: str) -> bool:
        """Whether no notice since `ticket` concerned job_id (a row read after the ticket may then be kept)."""
        since = self._generation - ticket
        if since > len(self._recent):
            return False  # the notices in between are no longer remembered
        return all(job not in (job_id, EVERYTHING) for _, job in islice(reversed(self._recent), since))

    def _keep(self, job_id: str, row: tuple) -> None:
        if len(self._rows) >= KEPT_ROWS:
            del self._rows[next(iter(self._rows))]
        self._rows[job_id] = row


_INHERITED: list = []
_feed: ChangeFeed | None = None
_feed_lock = threading.Lock()


def feed() -> ChangeFeed | None:
    """This process's feed where one applies: PostgreSQL, EAM_CHANGE_FEED on, outside a transaction."""
    global _feed
    if not settings.EAM_CHANGE_FEED or connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    if _feed is None:
        with _feed_lock:
            if _feed is None:
                _feed = ChangeFeed()
    return _feed


def _after_fork_in_child() -> None:
    global _feed_lock
    _feed_lock = threading.Lock()
    if _feed is not None:
        _feed._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close() -> None:
    """Close this process's listening connection, if any (a later read opens a new one)."""
    if _feed is not None:
        _feed.close()


def changed_here(job_id: str) -> None:
    """This process writes a change to job_id: drop its kept row as soon as the transaction commits."""
    if _feed is not None:
        transaction.on_commit(partial(_feed.forget, job_id))
