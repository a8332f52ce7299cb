"""The bulk "Approve pending checkpoint" asks first: the first POST shows the selected jobs and writes nothing;
the confirming POST (`post=yes`, with its CSRF token) approves those waiting, with the comment on each approval,
and says per job what happened."""
import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.middleware.csrf import get_token

from jobs.models import JobEvent

from ..builders import ADMIN, SHA_A, counts, session_client, store_snapshot, submitted, texts, waiting_job

pytestmark = pytest.mark.django_db


def bulk(client, jobs, **form):
    return client.post(ADMIN, {"action": "approve_pending", ACTION_CHECKBOX_NAME: [j.job_id for j in jobs], **form})


def test_the_first_post_asks_and_writes_nothing(people):
    # given two jobs waiting at their checkpoint and one not waiting
    first, second = waiting_job(people.submitter, "ask-1"), waiting_job(people.submitter, "ask-2", sha="c" * 64)
    idle = submitted(people.submitter, "ask-idle")
    before = store_snapshot()

    # when a reviewer runs the action from the list
    response = bulk(session_client(people.reviewer), [first, second, idle], index=0)

    # then a confirmation page lists each job with its waiting step and the sha256 under review, and nothing
    # is written
    assert response.status_code == 200
    assert response.templates[0].name == "admin/jobs/jobspec/approve_pending_confirmation.html"
    assert store_snapshot() == before
    page = response.content.decode()
    rows = re.findall(r'<tr class="selected-job">(.*?)</tr>', page, re.S)
    assert len(rows) == 3
    shown = {job.job_id: row for job in (first, second, idle) for row in rows if job.job_id in row}
    assert "runspec" in shown[first.job_id] and SHA_A in shown[first.job_id]
    assert "runspec" in shown[second.job_id] and "c" * 64 in shown[second.job_id]
    assert "not waiting" in shown[idle.job_id] and "queued" in shown[idle.job_id]
    # and its form posts the same selection back with post=yes, a comment field, a CSRF token and a way back
    for job in (first, second, idle):
        assert f'name="{ACTION_CHECKBOX_NAME}" value="{job.job_id}"' in page
    assert 'name="action" value="approve_pending"' in page and 'name="post" value="yes"' in page
    assert 'name="comment"' in page and 'value="Yes, approve"' in page
    assert "csrfmiddlewaretoken" in page and 'class="button cancel-link"' in page


def test_confirming_approves_the_waiting_ones_with_the_comment_and_reports_each_job(people):
    # given two jobs waiting, one not waiting, and one the reviewer submitted (four eyes on)
    first, second = waiting_job(people.submitter, "yes-1"), waiting_job(people.submitter, "yes-2")
    idle = submitted(people.submitter, "yes-idle")
    own = waiting_job(people.reviewer, "yes-own")
    before = counts()

    # when the reviewer confirms with a comment
    response = bulk(session_client(people.reviewer), [first, second, idle, own], post="yes",
                    comment="  batch reviewed  ")

    # then the two waiting jobs are approved, each with the comment, and nothing else is written
    assert response.status_code == 302 and response["Location"] == ADMIN
    assert counts().events == before.events + 2
    approvals = JobEvent.objects.filter(event_type="APPROVED").order_by("job_id")
    assert sorted(a.job_id for a in approvals) == sorted([first.job_id, second.job_id])
    for approval in approvals:
        assert (approval.step, approval.actor["id"]) == ("runspec", "rita")
        assert approval.payload["comment"] == "batch reviewed"
        assert approval.payload["artifact_sha256"] == SHA_A
    # and the messages say what happened to each job
    messages = texts(response)
    approved = next(m for m in messages if m.startswith("Approved the pending checkpoint of 2 jobs: "))
    assert f"runspec of job {first.job_id}" in approved and f"runspec of job {second.job_id}" in approved
    assert f"Not waiting at a checkpoint, nothing done for 1 job: {idle.job_id} (queued)." in messages
    assert f"Four eyes: you submitted 1 job, another reviewer must approve: {own.job_id} (runspec)." in messages
    assert len(messages) == 3


def test_a_refusal_is_reported_with_its_detail_and_writes_nothing(people):
    # given a waiting job and a comment the event store refuses (too long)
    job = waiting_job(people.submitter, "too-long")
    before = store_snapshot()

    response = bulk(session_client(people.reviewer), [job], post="yes", comment="x" * 4001)

    assert response.status_code == 302
    assert store_snapshot() == before
    [message] = texts(response)
    assert message.startswith(f"Job {job.job_id} not approved: ")


def test_the_confirmation_needs_the_csrf_token(people):
    job = waiting_job(people.submitter, "csrf")
    client = session_client(people.reviewer, enforce_csrf_checks=True)
    before = store_snapshot()

    # without the token: Django's 403, nothing written
    assert bulk(client, [job], post="yes").status_code == 403
    assert store_snapshot() == before

    # with the token the confirmation page carries, the same POST goes through
    page = bulk(client, [job], index=0, csrfmiddlewaretoken=get_token(client.get(ADMIN).wsgi_request))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert store_snapshot() == before
    response = bulk(client, [job], post="yes", csrfmiddlewaretoken=token)
    assert response.status_code == 302
    assert JobEvent.objects.filter(job=job, event_type="APPROVED").count() == 1


def test_only_reviewers_see_the_confirmation(people):
    job = waiting_job(people.submitter, "operator")
    before = store_snapshot()
    for form in ({"index": 0}, {"post": "yes"}):
        response = bulk(session_client(people.operator), [job], **form)
        assert response.status_code in (200, 302)
        assert b"Yes, approve" not in response.content
    assert store_snapshot() == before


def test_a_checkpoint_announced_again_since_the_page_was_shown_is_refused_as_stale(people):
    # given the confirmation page, which posts back the sha256 it showed under review for each job
    job = waiting_job(people.submitter, "stale-bulk")
    client = session_client(people.reviewer)
    page = bulk(client, [job], index=0).content.decode()
    assert f'name="reviewed_{job.job_id}" value="{SHA_A}"' in page
    before = store_snapshot()

    # when the reviewer confirms with a sha256 that is no longer the one under review
    response = bulk(client, [job], post="yes", **{f"reviewed_{job.job_id}": "b" * 64})

    # then the job is not approved, the message says it was stale, and nothing is written
    assert response.status_code == 302
    [message] = texts(response)
    assert message.startswith(f"Job {job.job_id} not approved: stale review")
    assert store_snapshot() == before
