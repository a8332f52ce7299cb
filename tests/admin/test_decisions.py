"""Approve and Reject on the admin's job page: they call the services, every refusal is a message (never a
500) and writes nothing, and only a POST with a CSRF token from a reviewer who may decide gets through."""
import pytest

from jobs.models import JobEvent, JobState

from ..builders import (
    ADMIN, counts, done_job, job_page, running_job, session_client, submitted, texts, waiting_job,
)

pytestmark = pytest.mark.django_db


def decide(client, job, decision: str, **form):
    return client.post(f"{ADMIN}{job.job_id}/{decision}/", {"step": "runspec", **form})


def test_the_job_page_offers_the_decision_to_a_reviewer(people):
    job = waiting_job(people.submitter, "offer", sha="c" * 64)
    page = session_client(people.reviewer).get(job_page(job)).content.decode()
    assert 'id="approve-form"' in page and 'id="reject-form"' in page
    assert 'name="artifact_sha256" value="' + "c" * 64 in page
    assert "csrfmiddlewaretoken" in page


def test_approve_with_a_comment_writes_one_event_and_says_so(people):
    job = waiting_job(people.submitter, "approve", sha="c" * 64)
    response = decide(session_client(people.reviewer), job, "approve", comment="  looks right  ",
                      artifact_sha256="c" * 64)

    assert response.status_code == 302 and response["Location"] == job_page(job)
    assert texts(response) == [f"Approved checkpoint runspec of job {job.job_id}."]
    last = JobEvent.objects.filter(job=job).latest("seq")
    assert (last.event_type, last.step, last.actor) == ("APPROVED", "runspec", {"kind": "user", "id": "rita"})
    assert last.payload == {"comment": "looks right", "artifact_sha256": "c" * 64,
                            "trace": {"request_id": response["X-Request-ID"]}}
    assert JobState.objects.get(job=job).status == "queued"


def test_reject_with_a_reason_ends_the_job(people):
    job = waiting_job(people.submitter, "reject")
    response = decide(session_client(people.reviewer), job, "reject", reason="wrong universe")
    assert texts(response) == [f"Rejected checkpoint runspec of job {job.job_id}; the job has ended."]
    last = JobEvent.objects.filter(job=job).latest("seq")
    assert (last.event_type, last.payload) == (
        "REJECTED", {"reason": "wrong universe", "trace": {"request_id": response["X-Request-ID"]}})
    page = session_client(people.reviewer).get(job_page(job)).content.decode()
    assert "reason: wrong universe" in page and 'id="approve-form"' not in page


@pytest.mark.parametrize("case, build, decision, form, expected", [
    ("reject without reason", waiting_job, "reject", {"reason": "   "}, "Not rejected: a rejection needs a reason"),
    ("approve a job not waiting", running_job, "approve", {}, "Not approved: job {job_id} is not waiting at runspec"),
    ("approve a finished job", done_job, "approve", {}, "Not approved: job {job_id} is not waiting at runspec (done)"),
    ("unknown step", waiting_job, "approve", {"step": "nonsense"}, "Not approved: job {job_id} is not waiting at nonsense"),
    ("no step", waiting_job, "approve", {"step": ""}, "Not approved: job {job_id} is not waiting at "),
    ("stale review", waiting_job, "approve", {"artifact_sha256": "d" * 64}, "Not approved: stale review"),
    ("too long a comment", waiting_job, "approve", {"comment": "x" * 4001}, "Not approved: "),
])
def test_a_refused_decision_is_a_message_and_writes_nothing(people, case, build, decision, form, expected):
    job = build(people.submitter, case)
    before = counts()

    response = decide(session_client(people.reviewer), job, decision, **form)

    assert response.status_code == 302 and response["Location"] == job_page(job), case
    (message,) = texts(response)
    assert message.startswith(expected.format(job_id=job.job_id)), message
    assert counts() == before
    # and the job page it sends the reviewer back to shows it
    assert session_client(people.reviewer).get(response["Location"]).status_code == 200


def test_a_second_decision_on_the_same_checkpoint_is_refused(people):
    job = waiting_job(people.submitter, "twice")
    client = session_client(people.reviewer)
    decide(client, job, "approve")
    client.get(job_page(job))  # shows, and so clears, the first message
    before = counts()
    response = decide(client, job, "reject", reason="too late")
    assert texts(response) == [f"Not rejected: job {job.job_id} is not waiting at runspec (queued)"]
    assert counts() == before


@pytest.mark.parametrize("job_id", ["doesnotexist", "0123456789ab", "../../etc"])
def test_deciding_an_unknown_job_goes_back_to_the_list(people, job_id):
    before = counts()
    response = session_client(people.reviewer).post(f"{ADMIN}{job_id}/approve/", {"step": "runspec"})
    assert response.status_code == 302 and response["Location"] == ADMIN
    (message,) = texts(response)
    assert message.startswith("Not approved: ") and ("not found" in message or "no such job" in message)
    assert counts() == before


def test_the_submitter_sees_no_decision_and_a_forged_post_is_refused(people):
    # given the reviewer's own job, four eyes on (the default)
    job = waiting_job(people.reviewer, "own")
    client = session_client(people.reviewer)
    page = client.get(job_page(job)).content.decode()
    assert 'id="approve-form"' not in page and 'id="reject-form"' not in page
    assert "four-eyes" in page
    before = counts()

    # when the submitter posts the decision anyway (with a valid CSRF token: the test client skips the check)
    for decision, done, form in (("approve", "approved", {}), ("reject", "rejected", {"reason": "mine"})):
        response = decide(session_client(people.reviewer), job, decision, **form)
        # then the service refuses it, and nothing is written
        assert response.status_code == 302
        assert texts(response) == [f"Not {done}: four eyes: the submitter of a job may not decide its checkpoints"]
    assert counts() == before


def test_a_post_without_csrf_token_is_forbidden(people):
    job = waiting_job(people.submitter, "csrf")
    client = session_client(people.reviewer, enforce_csrf_checks=True)
    before = counts()
    response = decide(client, job, "approve")
    assert response.status_code == 403
    assert counts() == before


def test_only_reviewers_decide_and_only_by_post(people, client):
    job = waiting_job(people.submitter, "who")
    before = counts()
    for user in (people.operator, people.nobody):
        assert decide(session_client(user), job, "approve").status_code == 403
    assert session_client(people.reviewer).get(f"{ADMIN}{job.job_id}/approve/").status_code == 405
    anonymous = decide(client, job, "approve")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    assert counts() == before
    page = session_client(people.operator).get(job_page(job)).content.decode()
    assert 'id="approve-form"' not in page and 'id="no-decision"' in page


def test_the_superuser_decides_like_a_reviewer(people):
    job = waiting_job(people.submitter, "root")
    response = decide(session_client(people.superuser), job, "approve", comment="ok")
    assert texts(response) == [f"Approved checkpoint runspec of job {job.job_id}."]
    assert JobEvent.objects.filter(job=job).latest("seq").actor == {"kind": "user", "id": "root"}


def test_a_queued_job_page_has_no_checkpoint(people):
    job = submitted(people.submitter, "queued")
    page = session_client(people.reviewer).get(job_page(job)).content.decode()
    assert 'id="checkpoint"' not in page
