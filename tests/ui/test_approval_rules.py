"""The job page under an approval rule: what the rule asks, who approved, what is missing, the deadline; approving
through the page counts one reviewer; the break-glass override form, and its refusals with nothing written."""
import pytest
from django.contrib.auth.models import Permission

from jobs.models import JobEvent, JobState

from ..builders import (
    MONTH, SNAPSHOT, a_rules_bundle, a_snapshot, a_user, reviewers_in, session_client, store_snapshot, submitted,
    to_runspec_review, two_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ruled_job(policy_root, people):
    a_snapshot(SNAPSHOT, span=MONTH)
    bundle = a_rules_bundle(policy_root, "ui_rule", runspec={
        **two_of("quants"), "respond_within": "2d", "on_timeout": "escalate", "escalate_to": "leads"})
    quants = reviewers_in("quants", 3)
    job = submitted(people.submitter, "ruled on the page", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    return job, quants


def page(user, job) -> str:
    response = session_client(user).get(f"/ui/jobs/{job.job_id}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_the_rule_its_progress_and_the_deadline(ruled_job, people):
    job, (q1, q2, _) = ruled_job
    shown = page(q2, job)
    assert "Approval rule" in shown and "<strong>2</strong> approvals from <code>quants</code>" in shown
    assert "nobody yet" in shown and "Still needed: 2 from <code>quants</code>" in shown
    assert "Respond by" in shown and "escalated to <code>leads</code>" in shown
    assert 'id="approve-form"' in shown

    response = session_client(q1).post(f"/ui/jobs/{job.job_id}/approve", {"step": "runspec", "comment": "ok"})
    assert response.status_code == 302
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"

    shown = page(q2, job)
    assert "quants1 (<code>quants</code>)" in shown and "Still needed: 1 from <code>quants</code>" in shown
    again = page(q1, job)  # who approved already is told why there is no form
    assert 'id="approve-form"' not in again and "you approved already" in again
    assert "Reject runspec" in again  # who approved may still reject: any rejection is final
    outsider = page(people.reviewer, job)
    assert 'id="approve-form"' not in outsider and "none of the groups still needed" in outsider
    assert "Reject runspec" not in outsider


def test_the_override_form_needs_its_permission_and_a_reason(ruled_job):
    job, (q1, _, _) = ruled_job
    url = f"/ui/jobs/{job.job_id}/override"
    assert "Override (break-glass)" not in page(q1, job)

    before = store_snapshot()
    refused = session_client(q1).post(url, {"step": "runspec", "reason": "hurry"})
    assert refused.status_code == 403
    lead = a_user("lena", "reviewers")
    lead.user_permissions.add(Permission.objects.get(codename="override_approval"))
    assert "Override (break-glass)" in page(lead, job)
    blank = session_client(lead).post(url, {"step": "runspec", "reason": ""})
    assert blank.status_code == 400 and "An override needs a reason." in blank.content.decode()
    assert store_snapshot() == before

    done = session_client(lead).post(url, {"step": "runspec", "reason": "risk signed on paper"})
    assert done.status_code == 302
    event = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVAL_OVERRIDDEN")
    assert (event.actor["id"], event.payload["reason"]) == ("lena", "risk signed on paper")
    assert JobState.objects.get(job_id=job.job_id).next_step == "run"


def test_the_admin_job_page_shows_the_rule_and_its_progress(ruled_job, people):
    job, (q1, _, _) = ruled_job
    session_client(q1).post(f"/ui/jobs/{job.job_id}/approve", {"step": "runspec"})
    response = session_client(people.superuser).get(f"/admin/jobs/jobspec/{job.job_id}/change/")
    shown = response.content.decode()
    assert response.status_code == 200
    assert "Approval rule" in shown and "quants1 (<code>quants</code>)" in shown and "Respond by" in shown
