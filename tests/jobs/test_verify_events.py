"""`manage.py verify_events` finds altered and removed events; `rebuild_job_states` finds and fixes drift.

The log is tampered with the way an attacker with database access would: the guard trigger is switched off
by hand for one statement, then put back.
"""
import io
import subprocess

import pytest
from django.core.management import call_command

from contracts import canonical_json, sha256_hex
from jobs.events import document_of
from jobs.models import JobEvent, JobSpec, JobState

from ..conftest import REPO_ROOT
from ..builders import append, failed, guard_off, new_blueprint_job, started, to_runspec_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def verify_events(process_env, python, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "manage.py", "verify_events", *args], cwd=REPO_ROOT, env=process_env, capture_output=True,
        text=True, timeout=120,
    )


@pytest.fixture
def two_jobs():
    """Job A with 4 events (waiting at the runspec checkpoint) and job B with 3 events."""
    a = new_blueprint_job(fast=10)
    to_runspec_review(a.job_id)
    b = new_blueprint_job(fast=20)
    append(b.job_id, started("compile"), failed("compile", 1))
    return a.job_id, b.job_id


def event_id(job_id: str, seq: int) -> int:
    return JobEvent.objects.values_list("id", flat=True).get(job_id=job_id, seq=seq)


def test_an_intact_log_passes(process_env, python, two_jobs):
    # given two jobs written through the append path
    # when verify_events runs
    result = verify_events(process_env, python)

    # then it exits 0 and says so
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 2 job(s), every hash chain intact" in result.stdout
    assert "FAIL" not in result.stdout


@pytest.mark.parametrize(
    "column, value",
    [("payload", '{"agent_id": "intent", "rerun_id": "forged"}'), ("actor", '{"kind": "user", "id": "mallory"}')],
)
def test_an_altered_event_is_found_by_job_and_seq(process_env, python, two_jobs, column, value):
    # given job B's seq 2 rewritten behind the guard's back
    a, b = two_jobs
    with guard_off("no_update") as cursor:
        cursor.execute(f"UPDATE jobs_jobevent SET {column} = %s WHERE id = %s", [value, event_id(b, 2)])

    # when verify_events runs
    result = verify_events(process_env, python)

    # then it fails, names job B and seq 2, and does not blame job A
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL job {b} seq 2: hash does not match the row's content (row modified)" in result.stdout
    assert a not in result.stdout
    assert "problem(s) in the event log of 2 job(s)" in result.stderr


def test_an_altered_event_with_a_recomputed_hash_breaks_the_next_link(process_env, python, two_jobs):
    # given job A's seq 2 rewritten and its own hash recomputed so that the row looks consistent
    a, _ = two_jobs
    row = JobEvent.objects.get(job_id=a, seq=2)
    row.payload = {**row.payload, "worker": "mallory"}
    forged = sha256_hex(row.prev_hash.encode() + canonical_json(document_of(row)))
    with guard_off("no_update") as cursor:
        cursor.execute("UPDATE jobs_jobevent SET payload = %s, hash = %s WHERE id = %s",
                       [canonical_json(row.payload).decode(), forged, row.id])

    result = verify_events(process_env, python)

    # then the chain breaks at seq 3, whose prev_hash no longer matches
    assert result.returncode == 1
    assert f"FAIL job {a} seq 3: prev_hash does not match the previous event" in result.stdout


def test_a_removed_middle_event_is_found(process_env, python, two_jobs):
    a, b = two_jobs
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE id = %s", [event_id(a, 2)])

    result = verify_events(process_env, python)

    assert result.returncode == 1
    assert f"FAIL job {a} seq 2: missing event (next stored seq is 3)" in result.stdout
    assert b not in result.stdout


def test_a_removed_last_event_is_found(process_env, python, two_jobs):
    # given job A's last event (seq 4) removed: the remaining chain is intact in itself
    a, b = two_jobs
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE id = %s", [event_id(a, 4)])

    result = verify_events(process_env, python)

    # then the projection, which recorded seq 4, gives it away
    assert result.returncode == 1
    assert f"FAIL job {a} seq 4:" in result.stdout
    assert "log ends at seq 3 (row removed)" in result.stdout
    assert b not in result.stdout


def test_a_job_whose_every_event_was_removed_is_found(process_env, python, two_jobs):
    _, b = two_jobs
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE job_id = %s", [b])

    result = verify_events(process_env, python)

    assert result.returncode == 1
    assert f"FAIL job {b} seq 1: job has no events" in result.stdout


def test_verify_events_can_check_one_job(process_env, python, two_jobs):
    # given job A tampered with
    a, b = two_jobs
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE id = %s", [event_id(a, 2)])

    # then checking only job B passes, and checking job A fails
    only_b = verify_events(process_env, python, "--job", b)
    only_a = verify_events(process_env, python, "--job", a)
    assert (only_b.returncode, only_a.returncode) == (0, 1)
    assert "OK: 1 job(s)" in only_b.stdout


def test_verify_events_refuses_an_invalid_job_id(process_env, python):
    result = verify_events(process_env, python, "--job", "../../etc")
    assert result.returncode == 1
    assert "invalid job id" in result.stderr


# --- rebuild_job_states --------------------------------------------------------------------------------


def rebuild(*args) -> str:
    out = io.StringIO()
    call_command("rebuild_job_states", *args, stdout=out)
    return out.getvalue()


def projection(job_id: str) -> dict:
    return JobState.objects.filter(job_id=job_id).values().get()


def test_rebuild_job_states_reports_drift_and_fixes_it(two_jobs):
    # given job A's projection corrupted by hand (JobState is a normal, mutable table), and a lease on it
    a, b = two_jobs
    JobState.objects.filter(job_id=a).update(lease_owner="worker-7")
    good_a, good_b = projection(a), projection(b)
    JobState.objects.filter(job_id=a).update(status="done", waiting_step=None, attempt=3)

    # when rebuild runs with --dry-run, then it reports every drifted column and changes nothing
    report = rebuild("--dry-run")
    assert f"DRIFT job {a}: status: stored 'done', events say 'waiting_approval'" in report
    assert f"DRIFT job {a}: waiting_step: stored None, events say 'runspec'" in report
    assert f"DRIFT job {a}: attempt: stored 3, events say 0" in report
    assert "2 job(s) checked, 3 drift(s) found" in report
    assert b not in report
    assert projection(a)["status"] == "done"

    # when it runs for real, then the projection is what the events say again (lease untouched)
    assert "3 drift(s) fixed" in rebuild()
    assert projection(a) == {**good_a, "updated_at": projection(a)["updated_at"]}
    assert projection(b) == good_b
    assert "0 drift(s) fixed" in rebuild()


def test_rebuild_job_states_recreates_a_missing_projection(two_jobs):
    a, _ = two_jobs
    good = projection(a)
    JobState.objects.filter(job_id=a).delete()

    report = rebuild()

    assert f"DRIFT job {a}: projection row missing" in report
    fixed = projection(a)
    for column in ("status", "waiting_step", "review_sha256", "last_seq", "last_hash", "stage", "next_step"):
        assert fixed[column] == good[column], column


@pytest.mark.parametrize("rehash", [False, True], ids=["spec only", "spec and its sha256"])
def test_a_rewritten_spec_is_found(process_env, python, two_jobs, rehash):
    # given job B's spec rewritten behind the guard's back (its sha256 recomputed too, or not)
    _, b = two_jobs
    spec = JobSpec.objects.get(job_id=b).spec
    spec["blueprint"]["strategy"]["params"]["fast"] = 3
    sha = sha256_hex(canonical_json(spec)) if rehash else JobSpec.objects.get(job_id=b).spec_sha256
    with guard_off("no_update", "jobs_jobspec") as cursor:
        cursor.execute("UPDATE jobs_jobspec SET spec = %s, spec_sha256 = %s WHERE job_id = %s",
                       [canonical_json(spec).decode(), sha, b])

    result = verify_events(process_env, python)

    # then it fails and says the job id is no longer the spec's content id, and the submit event's inputs
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL job {b}: job_id is not the content id of its spec" in result.stdout
    assert f"FAIL job {b} seq 1: the submit event records inputs sha256" in result.stdout
    assert (f"FAIL job {b}: spec_sha256 is not the sha256 of the spec" in result.stdout) is not rehash
