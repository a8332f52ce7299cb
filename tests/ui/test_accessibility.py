"""Access, checked in headless Chromium: axe-core finds no serious or critical violation on the reviewer pages
and the admin's, and at 390 px wide no page scrolls sideways (a screenshot of each at that width).

axe-core is the copy the pinned `axe-playwright-python` package ships (requirements-dev.txt), injected into
each page from the installed file: nothing is fetched from the network."""
from pathlib import Path

import axe_playwright_python
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import expect

from jobs.models import JobSpec

from ..builders import (
    ADMIN, TINY_SNAPSHOT, a_snapshot, an_idea_job_at, error_job, jobs_at_each_rule_state, ran_job, rejected_job,
    run_id_of, running_job, submitted, waiting_job,
)
from ..admin.test_browser import log_in as admin_log_in
from .test_browser import log_in
from .test_runspec_review import SNAPSHOT_ID, a_child_waiting_at_runspec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AXE_JS = Path(axe_playwright_python.__file__).parent / "axe.min.js"
BLOCKING = ("serious", "critical")
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def axe_violations(page) -> list[dict]:
    """The page's serious and critical axe-core violations, each as its rule, impact and the elements hit."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [" ".join(node["target"]) if isinstance(node["target"], list) else node["target"]
                   for node in v["nodes"]][:5]}
        for v in results["violations"] if v["impact"] in BLOCKING
    ]


def dangling_references(page) -> list[str]:
    """Attributes that name an element by id (aria-describedby, aria-labelledby, for, ...) where no element has
    that id: a description or label that a screen reader never reads."""
    return page.evaluate("""() => {
        const names = ['aria-describedby', 'aria-labelledby', 'aria-controls', 'aria-owns', 'for', 'form', 'list'];
        const dangling = [];
        for (const name of names) {
            for (const el of document.querySelectorAll(`[${name}]`)) {
                for (const id of el.getAttribute(name).split(/\\s+/).filter(Boolean)) {
                    if (!document.getElementById(id)) dangling.push(`${el.tagName.toLowerCase()}[${name}=${id}]`);
                }
            }
        }
        return dangling;
    }""")


def sideways(page) -> list[str]:
    """What scrolls sideways: the document or the body wider than the viewport, with the widths."""
    widths = page.evaluate("""() => ({
        html: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        body: [document.body.scrollWidth, document.body.clientWidth],
    })""")
    return [f"{what} scrollWidth {scroll} > clientWidth {client}"
            for what, (scroll, client) in widths.items() if scroll > client]


def check(page, screenshot, name: str, url: str | None = None, *, status: int = 200) -> dict:
    """Open `url` (or stay), run axe-core and the id check at desktop width, then narrow to 390 px, measure, run
    axe-core again and take a screenshot; what is wrong, by kind (empty when nothing is)."""
    page.set_viewport_size(DESKTOP)
    if url is not None:
        response = page.goto(url)
        assert response.status == status, (url, response.status)
    problems = {"axe": axe_violations(page), "ids": dangling_references(page)}
    page.set_viewport_size(PHONE)
    problems["390px"] = sideways(page)
    problems["axe at 390px"] = axe_violations(page)
    screenshot(f"390-{name}")
    page.set_viewport_size(DESKTOP)
    return {kind: found for kind, found in problems.items() if found}


def assert_accessible(found: dict) -> None:
    """Every page's problems in one message, so that one run shows all of them."""
    assert not found, "\n".join(f"{page}: {problems}" for page, problems in found.items())


# -- the harness is live --------------------------------------------------------------------------------------

def test_axe_and_the_width_check_report_a_broken_page(page, people):
    # given a page that passes every check
    page.goto("/ui/login")
    assert axe_violations(page) == [] and dangling_references(page) == [] and sideways(page) == []

    # when an image without a text alternative, a field described by an id that no element has and an element
    # wider than a phone are added to it
    page.evaluate("""() => {
        document.querySelector('#id_username').setAttribute('aria-describedby', 'no-such-help');
        const img = document.createElement('img');
        img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
        document.querySelector('main').append(img);
        const wide = document.createElement('div');
        wide.style.width = '1000px';
        wide.textContent = 'wide';
        document.querySelector('main').append(wide);
    }""")
    page.set_viewport_size(PHONE)

    # then axe-core reports the image as a critical violation, the dangling id is found, and the page scrolls
    # sideways
    assert [(v["rule"], v["impact"]) for v in axe_violations(page)] == [("image-alt", "critical")]
    assert dangling_references(page) == ["input[aria-describedby=no-such-help]"]
    assert sideways(page)


# -- the reviewer pages ------------------------------------------------------------------------------------------

def test_the_reviewer_pages_have_no_serious_violation_and_fit_390px(page, screenshot, people):
    # given jobs in several states: a parent run to DONE and its child waiting at runspec (so a diff shows),
    # a second run to compare with, and jobs queued, running, waiting, in error and rejected
    a_snapshot(SNAPSHOT_ID)
    parent_id, child_id = a_child_waiting_at_runspec(people)
    run_a = run_id_of(JobSpec.objects.get(job_id=parent_id))
    _, run_b = ran_job(people.submitter, people.reviewer, "other run")
    submitted(people.submitter, "queued one")
    running_job(people.submitter, "running one")
    waiting_job(people.submitter, "waiting one")
    error_job(people.submitter, "broken one")
    rejected_job(people.submitter, "rejected one")

    # when a reader opens the sign-in page, signs in as a reviewer and opens every page
    found = {}
    found["login"] = check(page, screenshot, "login", "/ui/login")
    log_in(page, "rita")
    pages = {
        "jobs": "/ui/jobs",
        "waiting-for-me": "/ui/jobs/waiting-for-me",
        "job-waiting-runspec": f"/ui/jobs/{child_id}",
        "job-done": f"/ui/jobs/{parent_id}",
        "run": f"/ui/runs/{run_a}",
        "run-segment": f"/ui/runs/{run_a}?segment=seg_001",
        "run-holdout": f"/ui/runs/{run_a}?segment=holdout",
        "compare": f"/ui/runs/compare?a={run_a}&b={run_b}",
        "registry": "/ui/registry",
        "snapshots": "/ui/snapshots",
    }
    for name, url in pages.items():
        found[name] = check(page, screenshot, name, url)
    found["error-page"] = check(page, screenshot, "error-page", f"/ui/runs/compare?a={run_a}", status=400)
    found["registry-refused-filter"] = check(page, screenshot, "registry-refused-filter",
                                             "/ui/registry?root_job_id=not-a-job", status=400)
    # and a refused decision: a rejection without a reason (the browser's own check of the field taken away), so
    # that the page shows the form again with the field's error
    page.goto(f"/ui/jobs/{child_id}")
    page.get_by_label("Reason").evaluate("field => field.removeAttribute('required')")
    page.get_by_role("button", name="Reject runspec").click()
    expect(page.get_by_text("A rejection needs a reason.").first).to_be_visible()
    assert page.get_by_label("Reason").get_attribute("aria-invalid") == "true"
    # (the job's page, read with everything a waiting runspec shows: the diff against the parent included)
    expect(page.get_by_role("table").filter(has_text="What changed in the runspec")).to_have_count(1)
    found["refused-decision"] = check(page, screenshot, "refused-decision")

    # then none has a serious or critical violation, and none scrolls sideways at 390 px
    assert_accessible({name: problems for name, problems in found.items() if problems})


@pytest.mark.parametrize("checkpoint", ["blueprint", "strategy_spec", "trace_preview", "improvements"])
def test_an_idea_jobs_checkpoint_page_has_no_serious_violation_and_fits_390px(page, screenshot, people, checkpoint):
    # given an idea job waiting at the checkpoint, and a reviewer who may also ask its agents again (the rerun
    # forms show)
    a_snapshot(TINY_SNAPSHOT)
    job_id = an_idea_job_at(checkpoint, people)
    people.reviewer.groups.add(Group.objects.get(name="operators"))

    # when she opens the job's page
    log_in(page, "rita", next_url=f"/ui/jobs/{job_id}")
    found = check(page, screenshot, f"idea-{checkpoint}", f"/ui/jobs/{job_id}")

    # then the review box shows the decision, with no serious or critical violation and nothing sideways at 390 px
    assert page.get_by_role("button", name=f"Approve {checkpoint}").count() == 1
    assert_accessible({f"idea at {checkpoint}": found} if found else {})


def test_a_job_under_an_approval_rule_and_the_notification_settings_have_no_serious_violation(
        page, screenshot, people, policy_root, settings):
    # given jobs under approval rules (one partly approved, one escalated after its deadline), and a lead who may
    # approve as a member of the escalation group and override (the rule's box, the deadline and both forms show)
    jobs = jobs_at_each_rule_state(people, policy_root)
    lead = people.reviewer
    lead.groups.add(Group.objects.get(name="ruled-leads"))
    lead.user_permissions.add(Permission.objects.get(codename="override_approval"))

    # when she opens their pages and her notification settings
    log_in(page, "rita", next_url=f"/ui/jobs/{jobs['partial'].job_id}")
    found = {name: check(page, screenshot, f"rule-{name}", f"/ui/jobs/{jobs[name].job_id}")
             for name in ("partial", "escalated", "timed_out")}
    expect(page.get_by_text("Escalated to").first).to_have_count(0)  # the timed-out job is rejected: no rule box
    page.goto(f"/ui/jobs/{jobs['escalated'].job_id}")
    expect(page.get_by_role("button", name="Open runspec without its approvals")).to_have_count(1)
    found["notification-settings"] = check(page, screenshot, "notification-settings", "/ui/settings/notifications")

    # then none has a serious or critical violation, and none scrolls sideways at 390 px
    assert_accessible({name: problems for name, problems in found.items() if problems})


# -- the admin -----------------------------------------------------------------------------------------------------

def test_the_admin_pages_have_no_serious_violation_and_fit_390px(page, screenshot, people):
    # given a reviewer with the admin open to her, a child job waiting at runspec, its parent done, another waiting
    people.reviewer.is_staff = True
    people.reviewer.save(update_fields=["is_staff"])
    a_snapshot(SNAPSHOT_ID)
    parent_id, child_id = a_child_waiting_at_runspec(people)
    other = waiting_job(people.submitter, "waiting too")

    # when she opens the admin's sign-in, its index, the job list, a waiting and a done job's page
    found = {"admin-login": check(page, screenshot, "admin-login", "/admin/login/")}
    admin_log_in(page, people.reviewer)
    pages = {
        "admin-index": "/admin/",
        "admin-job-list": ADMIN,
        "admin-job-waiting": f"{ADMIN}{child_id}/change/",
        "admin-job-done": f"{ADMIN}{parent_id}/change/",
    }
    for name, url in pages.items():
        found[name] = check(page, screenshot, name, url)

    # and asks to approve two jobs in bulk, which shows the confirmation page
    page.goto(ADMIN)
    for job_id in (child_id, other.job_id):
        page.check(f"input[name={ACTION_CHECKBOX_NAME}][value='{job_id}']")
    page.select_option("select[name=action]", "approve_pending")
    page.click("button[name=index]")
    page.wait_for_selector("#approve-pending-form")
    found["admin-bulk-confirm"] = check(page, screenshot, "admin-bulk-confirm")

    # then none has a serious or critical violation, and none scrolls sideways at 390 px
    assert_accessible({name: problems for name, problems in found.items() if problems})
