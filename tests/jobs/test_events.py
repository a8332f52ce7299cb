"""The single append path (`jobs.events`): hash chain, optimistic seq, contract and state checks, projection."""
import pytest

from contracts import canonical_json, sha256_hex
from jobs.events import Actor
from jobs.errors import Conflict, InvalidInput, NotFound
from jobs.events import Lease, NewEvent, append_event, append_events, document_of, event_document
from jobs.models import JobEvent, JobState
from jobs.pipelines import EventType as E
from jobs.state import ZERO_HASH, derive_state, format_time, state_from_row

from ..builders import (
    SHA_A, WORKER, append, completed, new_blueprint_job, rerun, started, store_snapshot, to_done, to_runspec_review,
)

# Transactional: the append path owns its transaction, as it does in production, so "nothing was written"
# is checked on committed data and not hidden by a test-wide rollback.
pytestmark = pytest.mark.django_db(transaction=True)


def events_of(job_id):
    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))


def test_a_new_job_has_its_submit_event_chained_from_zero_and_a_projection():
    # when a job is created
    job = new_blueprint_job()

    # then its one event is seq 1, chained from 64 zeros, with a hash over its canonical document
    (first,) = events_of(job.job_id)
    assert (first.seq, first.event_type, first.step, first.prev_hash) == (1, "BLUEPRINT_SUBMITTED", None, ZERO_HASH)
    assert first.actor == {"kind": "user", "id": "alice"}
    assert first.schema_version == "job_event_v2"
    assert first.hash == sha256_hex(ZERO_HASH.encode() + canonical_json(document_of(first)))
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.next_step, state.last_seq, state.last_hash) == ("queued", "compile", 1, first.hash)


def test_appended_events_extend_the_chain_and_the_projection_follows():
    # given a job
    job = new_blueprint_job()

    # when compile runs and the runspec checkpoint opens
    to_runspec_review(job.job_id)

    # then every event chains to the one before, and the projection is what the events say
    rows = events_of(job.job_id)
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    for before, row in zip(rows, rows[1:]):
        assert row.prev_hash == before.hash
        assert row.hash == sha256_hex(row.prev_hash.encode() + canonical_json(document_of(row)))
    derived = derive_state(
        [{"event_type": r.event_type, "step": r.step, "payload": r.payload, "seq": r.seq, "hash": r.hash} for r in rows]
    )
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.waiting_step, state.review_sha256) == ("waiting_approval", "runspec", SHA_A)
    assert (state.last_seq, state.last_event_type, state.last_hash) == (4, "WAITING_APPROVAL", rows[-1].hash)
    assert (derived.status, derived.last_hash) == (state.status, state.last_hash)


def test_the_hashed_document_is_the_stored_row_read_back():
    # the hash is computed before the insert; what the database returns must hash the same
    job = new_blueprint_job()
    row = append_event(job_id=job.job_id, expected_seq=2, event=started("compile"))
    stored = JobEvent.objects.get(pk=row.pk)

    assert document_of(stored) == event_document(
        job_id=job.job_id, seq=2, event_type="STEP_STARTED", step="compile", actor=WORKER.as_dict(),
        payload=row.payload, recorded_at=format_time(row.recorded_at), prev_hash=row.prev_hash,
        schema_version="job_event_v2",
    )
    assert stored.hash == row.hash


def test_state_changes_are_written_with_the_event():
    job = new_blueprint_job()
    append_events(job_id=job.job_id, expected_seq=2, events=[started("compile")], lease=Lease("w9"))
    assert JobState.objects.get(job_id=job.job_id).lease_owner == "w9"


@pytest.mark.parametrize("expected_seq", [1, 3, 10])
def test_an_append_with_a_stale_or_future_seq_is_a_conflict_and_writes_nothing(expected_seq):
    # given a job whose last event is seq 1
    job = new_blueprint_job()
    before = store_snapshot()

    # when a writer appends expecting another seq
    with pytest.raises(Conflict) as caught:
        append_event(job_id=job.job_id, expected_seq=expected_seq, event=rerun("p", 1))

    # then it loses and nothing was written
    assert caught.value.code == "seq_conflict"
    assert store_snapshot() == before


def test_an_append_with_a_stale_state_loses_to_the_database():
    # given a writer that read the state, and another writer that appended meanwhile
    job = new_blueprint_job()
    stale = state_from_row(JobState.objects.get(job_id=job.job_id))
    append(job.job_id, started("compile"))
    before = store_snapshot()

    # when the first writer appends with its stale state
    with pytest.raises(Conflict) as caught:
        append_event(job_id=job.job_id, expected_seq=2, event=started("compile"), state=stale)

    # then it gets a conflict, never a second seq 2
    assert caught.value.code == "seq_conflict"
    assert store_snapshot() == before


def test_an_illegal_event_is_a_conflict_and_writes_nothing():
    job = new_blueprint_job()
    before = store_snapshot()

    with pytest.raises(Conflict) as caught:
        append_event(job_id=job.job_id, expected_seq=2, event=completed(E.RUN_COMPLETED, "run"))

    assert caught.value.code == "illegal_transition"
    assert store_snapshot() == before


def test_a_batch_is_all_or_nothing():
    # given a batch whose third event is illegal
    job = new_blueprint_job()
    before = store_snapshot()

    with pytest.raises(Conflict):
        append(job.job_id, started("compile"), completed(E.RUNSPEC_COMPILED, "compile"), started("run"))

    # then not even the legal first two were written
    assert store_snapshot() == before


@pytest.mark.parametrize(
    "event, pointer",
    [
        (NewEvent(E.STEP_STARTED, WORKER, step="compile", payload={"attempt": 1}), "/payload/worker"),
        (NewEvent(E.APPROVED, WORKER, step="runspec", payload={"comment": 5, "artifact_sha256": None}),
         "/payload/comment"),
        (NewEvent(E.RERUN_REQUESTED, Actor("robot", "x"), payload={"agent_id": "intent", "rerun_id": "1"}),
         "/actor/kind"),
    ],
)
def test_an_event_that_breaks_the_contract_is_invalid_input_and_writes_nothing(event, pointer):
    job = new_blueprint_job()
    before = store_snapshot()

    with pytest.raises(InvalidInput) as caught:
        append_event(job_id=job.job_id, expected_seq=2, event=event)

    assert caught.value.code == "invalid_event"
    assert pointer in [e["path"] for e in caught.value.errors]
    assert store_snapshot() == before


@pytest.mark.parametrize("retry_at", ["2030-01-01T00:05:00Z", "2030-01-01T00:05:00+00:00", "soon"])
def test_a_contract_valid_retry_time_in_another_format_never_crashes_the_append_path(retry_at):
    # given a running step, and a failure whose retry_at is a string (all the contract asks) but not in the
    # one time format of format_time
    job = new_blueprint_job()
    append(job.job_id, started("compile"))
    before = store_snapshot()
    failed = NewEvent(E.STEP_FAILED, WORKER, step="compile", payload={
        "attempt": 1, "error_class": "Timeout", "message": "slow", "retryable": True, "retry_at": retry_at})

    # when it is appended, then it is either refused as input (writing nothing) or recorded with its moment;
    # any other exception is a crash of the one write path
    try:
        append(job.job_id, failed)
    except InvalidInput as exc:
        assert "/payload/retry_at" in [e["path"] for e in exc.errors]
        assert store_snapshot() == before
    else:
        assert JobState.objects.get(job_id=job.job_id).available_at is not None


def test_appending_to_an_unknown_job_is_not_found_and_writes_nothing():
    before = store_snapshot()

    with pytest.raises(NotFound) as caught:
        append_event(job_id="0123456789ab", expected_seq=1, event=rerun("p", 1))

    assert caught.value.code == "job_not_found"
    assert store_snapshot() == before


def test_nothing_can_be_appended_after_done():
    job = new_blueprint_job()
    to_done(job.job_id)
    assert JobState.objects.get(job_id=job.job_id).status == "done"
    before = store_snapshot()

    with pytest.raises(Conflict) as caught:
        append(job.job_id, started("compile"))

    assert caught.value.code == "illegal_transition"
    assert store_snapshot() == before


@pytest.mark.django_db(transaction=True)  # outside any transaction, as services and the engine append
def test_one_append_is_one_statement_on_postgresql_and_one_transaction_of_two_on_sqlite():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = new_blueprint_job()
    state = state_from_row(JobState.objects.get(job_id=job.job_id))  # as a caller that read the job passes it
    with CaptureQueriesContext(connection) as captured:
        append_events(job_id=job.job_id, expected_seq=2, events=[started("compile")], state=state)
    sent = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    if connection.vendor == "postgresql":
        assert sent == ["WITH"], captured.captured_queries  # the fenced UPDATE and the INSERT, in autocommit
    else:
        assert sent == ["BEGIN", "UPDATE", "INSERT", "COMMIT"], captured.captured_queries
    assert JobEvent.objects.filter(job_id=job.job_id).count() == 2
