"""The admin's job list: columns from the state projection and the gates verdict, filters and search on
them, the bulk "Approve pending checkpoint" action, and query counts that do not grow with jobs or events."""
import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import JobEvent

from ..builders import (
    ADMIN, counts, done_job, error_job, job_page, job_with_events, session_client, submitted, texts, waiting_job,
)

pytestmark = pytest.mark.django_db


def listed(client, **query) -> list[str]:
    """Job ids in the order the list shows them."""
    response = client.get(ADMIN, query)
    assert response.status_code == 200
    return [row.job_id for row in response.context["cl"].result_list]


def test_the_list_shows_status_kind_waiting_step_verdict_submitter_and_created(people):
    passed = done_job(people.submitter, "passed", verdict="PASS")
    waiting = waiting_job(people.submitter, "waiting")
    response = session_client(people.reviewer).get(ADMIN)
    rows = {row.job_id: row for row in response.context["cl"].result_list}
    assert (rows[passed.job_id].state.status, rows[passed.job_id].state.verdict) == ("done", "PASS")
    assert (rows[waiting.job_id].state.waiting_step, rows[waiting.job_id].state.verdict) == ("runspec", None)
    page = response.content.decode()
    for header in ("status", "kind", "waiting step", "verdict", "submitted by", "created at"):
        assert re.search(rf"<th [^>]*>.*?{header}", page, re.I | re.S), header
    assert "PASS" in page and "runspec" in page and "sam" in page


def test_filters_and_search(people):
    passed = done_job(people.submitter, "passed", verdict="PASS")
    failed = done_job(people.reviewer, "failed", verdict="FAIL")
    waiting = waiting_job(people.submitter, "waiting")
    broken = error_job(people.submitter, "broken")
    client = session_client(people.reviewer)

    assert listed(client) == [broken.job_id, waiting.job_id, failed.job_id, passed.job_id]  # newest first
    assert listed(client, state__status__exact="waiting_approval") == [waiting.job_id]
    assert listed(client, state__status__exact="error") == [broken.job_id]
    assert listed(client, state__waiting_step="runspec") == [waiting.job_id]
    assert listed(client, verdict="PASS") == [passed.job_id]
    assert listed(client, verdict="FAIL") == [failed.job_id]
    assert listed(client, verdict="none") == [broken.job_id, waiting.job_id]
    assert listed(client, kind__exact="idea") == []
    assert listed(client, submitted_by="rita") == [failed.job_id]
    assert listed(client, q=waiting.job_id[:6]) == [waiting.job_id]
    assert listed(client, q="rita") == [failed.job_id]
    assert listed(client, q="waiting_approval") == [waiting.job_id]
    # sorting on the verdict column (the fifth after the checkbox): FAIL before PASS, then reversed
    ascending, descending = listed(client, o="5"), listed(client, o="-5")
    assert ascending.index(failed.job_id) < ascending.index(passed.job_id)
    assert descending.index(passed.job_id) < descending.index(failed.job_id)


def test_bulk_approve_reports_per_job(people):
    # given a job waiting at its checkpoint, one not waiting, and one the reviewer submitted (four eyes on)
    waiting = waiting_job(people.submitter, "bulk-waiting")
    idle = submitted(people.submitter, "bulk-idle")
    own = waiting_job(people.reviewer, "bulk-own")
    before = counts()

    # when the reviewer runs the bulk action on all three
    response = session_client(people.reviewer).post(ADMIN, {
        "action": "approve_pending", "index": 0, "post": "yes",
        ACTION_CHECKBOX_NAME: [waiting.job_id, idle.job_id, own.job_id],
    })

    # then exactly one is approved, and the messages say why not for the others
    assert response.status_code == 302
    assert counts().events == before.events + 1
    approved = JobEvent.objects.get(event_type="APPROVED")
    assert (approved.job_id, approved.step, approved.actor["id"]) == (waiting.job_id, "runspec", "rita")
    assert texts(response) == [
        f"Approved the pending checkpoint of 1 job: runspec of job {waiting.job_id}.",
        f"Not waiting at a checkpoint, nothing done for 1 job: {idle.job_id} (queued).",
        f"Four eyes: you submitted 1 job, another reviewer must approve: {own.job_id} (runspec).",
    ]


def test_bulk_approve_is_offered_to_reviewers_only(people):
    waiting = waiting_job(people.submitter, "bulk-offer")
    reviewer_actions = dict(session_client(people.reviewer).get(ADMIN).context["action_form"].fields["action"].choices)
    assert "approve_pending" in reviewer_actions and "delete_selected" not in reviewer_actions
    assert session_client(people.operator).get(ADMIN).context["action_form"] is None  # no action at all

    before = counts()
    response = session_client(people.operator).post(ADMIN, {
        "action": "approve_pending", "index": 0, ACTION_CHECKBOX_NAME: [waiting.job_id]})
    assert response.status_code in (200, 302)
    assert counts() == before


# -- query counts ---------------------------------------------------------------------------------------------

def queries_for(client, url: str) -> int:
    client.get(url)  # warm up: content types, this process's caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


LIST_URLS = (ADMIN, f"{ADMIN}?state__status__exact=waiting_approval", f"{ADMIN}?verdict=PASS", f"{ADMIN}?q=sam",
             f"{ADMIN}?_facets=True")


def test_list_queries_do_not_grow_with_jobs(people):
    client = session_client(people.reviewer)
    for i in range(3):
        waiting_job(people.submitter, f"few-{i}")
        done_job(people.submitter, f"few-done-{i}")
    few = [queries_for(client, url) for url in LIST_URLS]

    for i in range(12):
        waiting_job(people.submitter, f"many-{i}")
        done_job(people.submitter, f"many-done-{i}", verdict="PASS" if i % 2 else "FAIL")
        submitted(people.submitter, f"many-queued-{i}")
    assert len(listed(client)) == 42
    assert [queries_for(client, url) for url in LIST_URLS] == few


def test_job_page_queries_do_not_grow_with_events(people):
    client = session_client(people.reviewer)
    short = job_with_events(people.submitter, 10, name="short")
    long = job_with_events(people.submitter, 150, name="long")
    assert queries_for(client, job_page(short)) == queries_for(client, job_page(long))
