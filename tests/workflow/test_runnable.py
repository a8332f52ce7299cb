"""`any_runnable` (an idle worker's poll) agrees with what a claim would find, without taking a lock."""
from datetime import timedelta

import pytest

from jobs.events import now
from jobs.models import JobState
from workflow import claims

from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, approve_waiting, submitted
from .test_pipeline import worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    a_snapshot(TINY_SNAPSHOT)
    return submitted(SUBMITTER, **TINY_RUN)


def test_a_queued_job_is_runnable(job):
    assert claims.any_runnable() is True
    assert claims.any_runnable([job.job_id]) is True
    assert claims.any_runnable(["0" * 12]) is False


def test_a_job_waiting_for_approval_is_not_runnable_until_approved(job):
    from workflow.orchestrator import run_pass

    run_pass(worker())
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"
    assert claims.any_runnable() is False
    approve_waiting([job.job_id])
    assert claims.any_runnable() is True


def test_a_live_lease_or_a_later_retry_time_is_not_runnable(job):
    JobState.objects.filter(job_id=job.job_id).update(lease_owner="w", lease_expires_at=now() + timedelta(minutes=5))
    assert claims.any_runnable() is False
    JobState.objects.filter(job_id=job.job_id).update(lease_expires_at=now() - timedelta(seconds=1))
    assert claims.any_runnable() is True
    JobState.objects.filter(job_id=job.job_id).update(available_at=now() + timedelta(minutes=5))
    assert claims.any_runnable() is False


def test_any_runnable_matches_a_claim(job):
    assert claims.any_runnable() is True
    claim = claims.claim_next(worker_id="w", lease_seconds=60, max_attempts=3)
    assert claim is not None and claim.job_id == job.job_id
    assert claims.any_runnable() is False
    assert claims.claim_next(worker_id="w2", lease_seconds=60, max_attempts=3) is None


def test_lease_times_come_from_the_database_clock_not_the_workers(job, monkeypatch):
    # given a worker whose own clock runs an hour ahead of the database's
    from django.db.models.functions import Now

    monkeypatch.setattr(claims, "local_now", lambda: now() + timedelta(hours=1))

    # when it claims a job
    claim = claims.claim_next(worker_id="ahead", lease_seconds=60, max_attempts=3)

    # then the lease ends 60 s after the database's now, not after the worker's, and so do the times it
    # writes later in the same pass (a hand-over, a retry time)
    database = JobState.objects.annotate(t=Now()).values_list("t", flat=True).first()
    lease = JobState.objects.get(job_id=job.job_id).lease_expires_at
    assert timedelta(seconds=50) < lease - database <= timedelta(seconds=60), (lease, database)
    assert abs(claims.database_now() - database) < timedelta(seconds=10)
    assert claim.lease_expires_at == lease

    # and a lease that has ended by the database's clock can be taken over by a worker whose clock runs behind
    JobState.objects.filter(job_id=job.job_id).update(lease_expires_at=database - timedelta(seconds=1))
    monkeypatch.setattr(claims, "local_now", lambda: now() - timedelta(hours=1))
    assert claims.any_runnable() is True
    taken = claims.claim_next(worker_id="behind", lease_seconds=60, max_attempts=3)
    assert (taken.job_id, taken.recovered_from) == (job.job_id, "ahead")
