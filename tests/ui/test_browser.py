"""The reviewer's path in a real browser (headless Chromium): log in, review, approve; four eyes; a run's chart."""
import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from jobs.models import JobEvent

from ..builders import done_job_with_run, run_id_of, waiting_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(page, username: str, next_url: str = ""):
    page.goto("/ui/login" + (f"?next={next_url}" if next_url else ""))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-pass-123")
    page.get_by_role("button", name="Log in").click()


def test_reviewer_approves_a_waiting_job_with_a_comment(page, screenshot, people):
    # given a job waiting at its runspec checkpoint
    sam = people.submitter
    job = waiting_job(sam, "browser approve")

    # when the reviewer logs in, finds it waiting for her and approves it with a comment
    log_in(page, "rita")
    expect(page.get_by_text("Signed in as")).to_contain_text("rita")
    expect(page.get_by_role("navigation", name="Filter by status")).to_contain_text("waiting approval 1")
    screenshot("jobs")
    page.get_by_role("link", name="Waiting for me").click()
    expect(page.get_by_role("heading", name="Waiting for me")).to_be_visible()
    screenshot("queue")
    page.get_by_role("link", name=job.job_id).click()
    expect(page.get_by_role("heading", name="Review: runspec")).to_be_visible()
    page.get_by_label("Comment").fill("Parameters look sane")
    page.get_by_role("button", name="Approve runspec").click()

    # then the page says so, and the timeline's last row is her APPROVED event with the comment
    expect(page.get_by_role("status")).to_contain_text(f"Approved runspec of job {job.job_id}")
    approved = page.locator("table.timeline tbody tr").last
    expect(approved).to_contain_text("APPROVED")
    expect(approved).to_contain_text("Parameters look sane")
    expect(approved).to_contain_text("rita")
    expect(page.get_by_role("button", name="Approve runspec")).to_have_count(0)
    screenshot("approved")
    event = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVED")
    assert event.actor == {"kind": "user", "id": "rita"} and event.payload["comment"] == "Parameters look sane"


def test_submitter_sees_no_decision_on_own_job_and_a_forged_post_is_refused(page, screenshot, people):
    # given the submitter's own job waiting at a checkpoint, and the submitter is also a reviewer
    sam = people.submitter
    sam.groups.add(Group.objects.get(name="reviewers"))
    job = waiting_job(sam, "browser four eyes")
    log_in(page, "sam", next_url=f"/ui/jobs/{job.job_id}")

    # then the job's page offers no decision and says why
    expect(page.get_by_role("heading", name="Review: runspec")).to_be_visible()
    expect(page.get_by_role("button", name="Approve runspec")).to_have_count(0)
    expect(page.get_by_text("under four eyes")).to_be_visible()
    screenshot("own-job")

    # when the submitter forges the approve POST with a valid CSRF token
    before = JobEvent.objects.count()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"/ui/jobs/{job.job_id}/approve",
        form={"csrfmiddlewaretoken": token, "step": "runspec", "comment": "self-approved"},
        headers={"Referer": page.url},
    )

    # then it is refused (four eyes) and nothing is written
    assert response.status == 403
    assert "four eyes" in response.text()
    assert JobEvent.objects.count() == before


def test_run_page_shows_a_chart_for_a_test_segment_and_metrics_only_for_the_holdout(page, screenshot, people):
    # given a job the engine took to DONE with a real run
    job = done_job_with_run(people.submitter)
    run_id = run_id_of(job)

    # when a reviewer opens the run from the job's page
    log_in(page, "rita", next_url=f"/ui/jobs/{job.job_id}")
    expect(page.get_by_role("heading", name="Gate results")).to_be_visible()
    expect(page.locator("table.gates tbody tr").first).to_contain_text("PASS")
    screenshot("job-with-gates")
    page.get_by_role("link", name=run_id, exact=True).click()

    # then the first test segment's equity curve is an inline SVG with a line and axis labels
    chart = page.locator("svg.equity-chart")
    expect(chart).to_have_count(1)
    expect(chart.locator("polyline.curve")).to_have_count(1)
    assert len(chart.locator("polyline.curve").get_attribute("points").split()) > 100
    expect(chart.locator(".x-axis text").first).to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    expect(chart.locator(".y-axis text")).not_to_have_count(0)
    screenshot("test-segment")

    # when the holdout is selected, then its metrics show and no curve at all
    page.get_by_role("navigation", name="Segments").get_by_role("link", name="holdout").click()
    expect(page.get_by_role("heading", name="Segment holdout")).to_be_visible()
    expect(page.get_by_text("The holdout shows metrics only")).to_be_visible()
    expect(page.get_by_role("table").filter(has_text="Metrics of this segment")).to_contain_text("Sharpe ratio")
    expect(page.locator("svg")).to_have_count(0)
    expect(page.locator("polyline")).to_have_count(0)
    screenshot("holdout")


def test_reviewer_approves_improvements_with_one_proposal_unchecked(page, screenshot, people, artifact_root):
    # given an idea job waiting at its improvements checkpoint, its proposals listed with a checked box each
    from jobs import services
    from jobs.models import JobSpec

    from ..builders import TINY_SNAPSHOT, a_snapshot, an_idea_job_at

    a_snapshot(TINY_SNAPSHOT)
    job_id = an_idea_job_at("improvements", people)
    job = JobSpec.objects.get(job_id=job_id)
    ids = [p["proposal_id"] for p in services.proposals_under_review(job, job.state)]
    log_in(page, "rita", next_url=f"/ui/jobs/{job_id}")
    expect(page.get_by_role("heading", name="Review: improvements")).to_be_visible()
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(len(ids))
    screenshot("improvements")

    # when she unchecks all of them and approves: refused, nothing written, the boxes as she left them
    before = JobEvent.objects.count()
    for proposal_id in ids:
        page.locator(f"#accept_{proposal_id}").uncheck()
    page.get_by_role("button", name="Approve improvements").click()
    expect(page.get_by_text("Accept at least one proposal, or reject instead.").first).to_be_visible()
    assert JobEvent.objects.count() == before

    # when she checks the first only and approves
    page.locator(f"#accept_{ids[0]}").check()
    page.get_by_role("button", name="Approve improvements").click()

    # then the approval records that one proposal
    expect(page.get_by_role("status")).to_contain_text(f"accepting 1 proposal ({ids[0]})")
    event = JobEvent.objects.get(job_id=job_id, event_type="APPROVED", step="improvements")
    assert event.payload["accepted"] == [ids[0]]
    screenshot("improvements-approved")
