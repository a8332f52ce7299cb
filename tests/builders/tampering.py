"""What an attacker with the application's database role can do, and what needs the guards lifted: how the
tests forge, rewrite and remove what the event log holds."""
from contextlib import contextmanager

from django.db import connection, transaction

from contracts import canonical_json
from jobs.events import chain_hash, event_document, now
from jobs.models import JobEvent, JobState
from jobs.pipelines import EVENT_SCHEMA
from jobs.signing import EVENT_CONTEXT
from jobs.state import apply_event, format_time, projection_fields, state_from_row


@contextmanager
def guard_off(trigger: str, table: str = "jobs_jobevent"):
    """Switch one guard trigger of `table` off for the statements inside, then back on."""
    from guards.triggers import GUARDED_TABLES, install

    name = f"eam_guard_{table}_{trigger}"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred check may be pending at ENABLE
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {name}")
            yield cursor
            cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")
        else:
            cursor.execute(f"DROP TRIGGER {name}")
            yield cursor
            install(connection, GUARDED_TABLES[table])


def _sql_value(value):
    if isinstance(value, (dict, list)):
        return canonical_json(value).decode()
    if hasattr(value, "tzinfo"):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def insert_rows(rows: list[JobEvent]) -> None:
    """INSERT event rows as they are, with plain SQL: what the application role may do without the service."""
    columns = ("job_id", "seq", "event_type", "step", "actor", "payload", "schema_version", "recorded_at",
               "prev_hash", "hash", "key_id", "signature")
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(f"INSERT INTO jobs_jobevent ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                           [_sql_value(getattr(row, c)) for c in columns])


def forged_event(job_id: str, event_type: str, *, step: str | None, actor: dict, payload: dict,
                 key_id: str | None = None, signer=None) -> JobEvent:
    """The job's next event with a correct hash, signed by `signer` (a private key, not the service's) under
    `key_id` or not signed, inserted with plain SQL, and the projection moved to match it: everything the
    database role can do."""
    last = JobEvent.objects.filter(job_id=job_id).order_by("-seq").first()
    moment = now()
    doc = event_document(job_id=job_id, seq=last.seq + 1, event_type=event_type, step=step, actor=actor,
                         payload=payload, recorded_at=format_time(moment), prev_hash=last.hash,
                         schema_version=EVENT_SCHEMA)
    row = JobEvent(job_id=job_id, seq=doc["seq"], event_type=event_type, step=step, actor=actor, payload=payload,
                   schema_version=EVENT_SCHEMA, recorded_at=moment, prev_hash=last.hash,
                   hash=chain_hash(last.hash, doc), key_id=key_id)
    if signer is not None:
        row.signature = signer.sign(EVENT_CONTEXT + row.hash.encode()).hex()
    insert_rows([row])
    state = apply_event(state_from_row(JobState.objects.get(job_id=job_id)), {**doc, "hash": row.hash})
    JobState.objects.filter(job_id=job_id).update(**projection_fields(state))
    return row
