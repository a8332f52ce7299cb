"""Approve and reject from the job's page: what is taken, and every way a decision is refused with nothing written."""
import pytest

from jobs import services
from jobs.events import Actor
from jobs.models import JobEvent, JobState

from ..builders import counts, session_client, submitted, waiting_job

pytestmark = pytest.mark.django_db

SHA = "a" * 64  # what waiting_job puts under review


def approve_url(job) -> str:
    return f"/ui/jobs/{job.job_id}/approve"


def reject_url(job) -> str:
    return f"/ui/jobs/{job.job_id}/reject"


def refused(response, status: int, says: str):
    """The refusal's status, the reason on the page in words, and the job's page (when it exists) around it."""
    assert response.status_code == status, (response.status_code, response.content[:2000])
    text = response.content.decode()
    assert says in text, text
    return text


def test_approve_records_comment_and_reviewer_then_redirects_with_a_message(people):
    job = waiting_job(people.submitter, "approve me")
    client = session_client(people.reviewer)
    response = client.post(approve_url(job), {"step": "runspec", "artifact_sha256": SHA, "comment": "looks right"})
    assert response.status_code == 302 and response["Location"] == f"/ui/jobs/{job.job_id}"
    page = client.get(response["Location"]).content.decode()
    assert f"Approved runspec of job {job.job_id} with the comment “looks right”" in page
    event = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVED")
    assert (event.step, event.actor, event.payload) == (
        "runspec", {"kind": "user", "id": "rita"},
        {"comment": "looks right", "artifact_sha256": SHA, "trace": {"request_id": response["X-Request-ID"]}})


def test_reject_records_the_reason_and_ends_the_job(people):
    job = waiting_job(people.submitter, "reject me")
    client = session_client(people.reviewer)
    response = client.post(reject_url(job), {"step": "runspec", "reason": "  costs are too low  "}, follow=True,
                           headers={"X-Request-ID": "ui-reject"})
    assert response.redirect_chain == [(f"/ui/jobs/{job.job_id}", 302)]
    assert "Rejected runspec of job" in response.content.decode()
    event = JobEvent.objects.get(job_id=job.job_id, event_type="REJECTED")
    assert event.payload == {"reason": "costs are too low", "trace": {"request_id": "ui-reject"}}
    assert event.actor["id"] == "rita"
    assert JobState.objects.get(job_id=job.job_id).status == "rejected"


@pytest.mark.parametrize("url, data, status, says", [
    (reject_url, {"step": "runspec"}, 400, "A rejection needs a reason."),
    (reject_url, {"step": "runspec", "reason": "   "}, 400, "A rejection needs a reason."),
    (approve_url, {"step": "nope"}, 400, "nope is not a checkpoint"),
    (approve_url, {}, 400, "which checkpoint?"),
    (reject_url, {"step": "runspec<script>", "reason": "x"}, 400, "runspec&lt;script&gt; is not a checkpoint"),
    (approve_url, {"step": "blueprint"}, 409, "is not waiting at blueprint"),
    (approve_url, {"step": "runspec", "artifact_sha256": "b" * 64}, 409, "stale review"),
    (approve_url, {"step": "runspec", "artifact_sha256": "not-a-sha"}, 400, "Enter a valid value"),
    (approve_url, {"step": "runspec", "comment": "x" * 4001}, 400, "at most 4000 characters"),
])
def test_invalid_decisions_are_refused_on_the_job_page(people, url, data, status, says):
    job = waiting_job(people.submitter, "invalid")
    before = counts()
    text = refused(session_client(people.reviewer).post(url(job), data), status, says)
    assert f"Job <code>{job.job_id}</code>" in text and 'role="alert"' in text
    assert counts() == before


def test_reject_without_reason_keeps_the_form_and_marks_the_field(people):
    job = waiting_job(people.submitter, "no reason")
    text = refused(session_client(people.reviewer).post(reject_url(job), {"step": "runspec", "reason": ""}), 400,
                   '<span class="field-error" id="reject_reason_error">A rejection needs a reason.</span>')
    assert "Reject runspec" in text  # the forms are still there to try again


def test_deciding_a_job_that_is_not_waiting_is_a_conflict(people):
    queued = submitted(people.submitter, "queued")
    decided = waiting_job(people.submitter, "decided")
    services.approve(job_id=decided.job_id, step="runspec", actor=Actor.user(people.reviewer))
    client = session_client(people.reviewer)
    before = counts()
    refused(client.post(approve_url(queued), {"step": "runspec"}), 409, "is not waiting at runspec (queued)")
    refused(client.post(approve_url(decided), {"step": "runspec"}), 409, "is not waiting at runspec")
    refused(client.post(reject_url(decided), {"step": "runspec", "reason": "late"}), 409, "is not waiting")
    assert counts() == before


def test_who_may_not_decide_is_refused(people):
    job = waiting_job(people.submitter, "whose")
    people.submitter.groups.add(*people.reviewer.groups.all())  # a reviewer too, still the submitter
    before = counts()
    refused(session_client(people.submitter).post(approve_url(job), {"step": "runspec"}), 403, "four eyes")
    refused(session_client(people.submitter).post(reject_url(job), {"step": "runspec", "reason": "mine"}), 403, "four eyes")
    for person in (people.operator, people.nobody):
        refused(session_client(person).post(approve_url(job), {"step": "runspec"}), 403, "only reviewers decide")
    anonymous = session_client().post(approve_url(job), {"step": "runspec"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/ui/login?next=")
    assert counts() == before


def test_wrong_method_unknown_job_and_missing_csrf(people):
    job = waiting_job(people.submitter, "methods")
    client = session_client(people.reviewer)
    before = counts()
    for method in (client.get, client.put, client.delete, client.patch):
        response = method(approve_url(job))
        refused(response, 405, "use the form on the job&#x27;s page")
        assert response["Allow"] == "POST"
    refused(client.post("/ui/jobs/0123456789ab/approve", {"step": "runspec"}), 404, "job 0123456789ab not found")
    strict = session_client(people.reviewer, enforce_csrf_checks=True)
    assert strict.post(approve_url(job), {"step": "runspec"}).status_code == 403
    assert counts() == before
