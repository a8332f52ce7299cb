"""A reviewer in headless Chromium: log in to the admin, open a waiting job, approve it with a comment and
see the APPROVED event in the timeline; the submitter of a job gets no button and a forged POST writes nothing."""
import pytest

from jobs.models import JobEvent

from ..builders import ADMIN, counts, waiting_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(page, user):
    page.goto(f"/admin/login/?next={ADMIN}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f"{user.username}-pass-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{ADMIN}")


def test_a_reviewer_approves_a_waiting_job_with_a_comment(people, page, screenshot):
    job = waiting_job(people.submitter, "browser-approve")
    log_in(page, people.reviewer)

    # the list shows the job waiting at its checkpoint; open it
    screenshot("list")
    row = page.locator("#result_list tbody tr", has_text=job.job_id)
    assert "waiting_approval" in row.inner_text() and "runspec" in row.inner_text()
    row.locator(f"a:text('{job.job_id}')").click()
    page.wait_for_selector("#approve-form")
    screenshot("waiting")

    # approve with a comment
    page.fill("#id_comment", "Runspec matches the blueprint; costs look right.")
    page.click("#approve-form input[type=submit]")

    # back on the job page: the message, and the APPROVED event with the comment and the reviewer's name
    page.wait_for_selector(".messagelist .success")
    assert page.inner_text(".messagelist") == f"Approved checkpoint runspec of job {job.job_id}."
    approved = page.locator("#timeline tr.event-approved")
    assert approved.count() == 1
    text = approved.inner_text()
    assert "Runspec matches the blueprint; costs look right." in text and "user:rita" in text
    assert page.locator("#timeline tbody tr").last.inner_text() == text  # newest last
    assert page.locator("#approve-form").count() == 0 and page.inner_text("#job-status") == "queued"
    screenshot("approved")
    assert JobEvent.objects.filter(job=job, event_type="APPROVED").get().payload["comment"].startswith("Runspec")


def test_the_submitter_gets_no_button_and_a_forged_post_is_refused(people, page, screenshot):
    job = waiting_job(people.reviewer, "browser-own")  # the reviewer's own job; four eyes is on by default
    log_in(page, people.reviewer)
    page.goto(f"{ADMIN}{job.job_id}/change/")
    assert page.locator("#checkpoint").count() == 1
    assert page.locator("#approve-form").count() == 0 and page.locator("#reject-form").count() == 0
    assert "four-eyes" in page.inner_text("#no-decision")
    screenshot("no-button")
    before = counts()

    # a POST forged with the session's valid CSRF token is refused by the service
    token = page.locator("#logout-form input[name=csrfmiddlewaretoken]").get_attribute("value")
    forged = page.request.post(f"{ADMIN}{job.job_id}/approve/",
                               form={"csrfmiddlewaretoken": token, "step": "runspec", "comment": "self-approved"})
    assert forged.status == 200 and forged.url.endswith(f"{ADMIN}{job.job_id}/change/")
    assert "four eyes: the submitter of a job may not decide its checkpoints" in forged.text()
    # and one without the token never reaches it
    tokenless = page.request.post(f"{ADMIN}{job.job_id}/approve/", form={"step": "runspec"})
    assert tokenless.status == 403
    assert counts() == before
