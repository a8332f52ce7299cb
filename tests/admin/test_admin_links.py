"""The admin and the reviewer pages lead to each other: the admin's job page links to /ui and shows the gate
results and the run as /ui does, /ui links back to the admin for staff only, and "View site" goes to /ui/jobs."""
import re

import pytest

from ..builders import a_user, done_job_with_run, job_page, run_id_of, session_client, waiting_job

pytestmark = pytest.mark.django_db


def admin_link(job) -> str:
    return f'href="{job_page(job)}"'


def test_the_admin_job_page_links_to_the_reviewer_page(people):
    # given a waiting job
    job = waiting_job(people.submitter, "links")

    # when a reviewer opens its admin page
    page = session_client(people.reviewer).get(job_page(job)).content.decode()

    # then it links to the job's /ui page, and has no run link or gates before a run
    assert re.search(rf'<a href="/ui/jobs/{job.job_id}" id="ui-link">Open in the reviewer pages</a>', page)
    assert 'class="run-link"' not in page and 'class="gates"' not in page


def test_the_reviewer_page_links_to_the_admin_for_staff_only(people):
    job = waiting_job(people.submitter, "back")
    outsider = a_user("nora", "reviewers")  # a reviewer without staff status: no admin for her

    assert admin_link(job) in session_client(people.reviewer).get(f"/ui/jobs/{job.job_id}").content.decode()
    page = session_client(outsider).get(f"/ui/jobs/{job.job_id}")
    assert page.status_code == 200
    assert admin_link(job) not in page.content.decode() and "/admin/" not in page.content.decode()


def test_the_admin_job_page_shows_the_gates_and_links_the_completed_run(people):
    # given a job the engine took to DONE: run, gated, registered
    job = done_job_with_run(people.submitter)
    run_id = run_id_of(job)

    # when a reviewer opens its admin page
    response = session_client(people.reviewer).get(job_page(job))

    # then it shows the /ui gate table and links the run's /ui page
    assert response.status_code == 200
    page = response.content.decode()
    gates = response.context["gates"]
    assert gates["gates"] and gates["verdict"] == job.state.verdict and gates["verdict"] in ("PASS", "FAIL")
    assert 'id="gates-heading"' in page and '<table class="gates">' in page
    for gate in gates["gates"]:
        assert f'<th scope="row">{gate["gate_id"]}</th>' in page
    assert f'<span class="verdict verdict-{gates["verdict"].lower()}">{gates["verdict"]}</span>' in page
    assert f'<a class="run-link" href="/ui/runs/{run_id}">{run_id}</a>' in page


def test_view_site_goes_to_the_reviewer_pages(people):
    page = session_client(people.reviewer).get("/admin/").content.decode()
    assert re.search(r'<a href="/ui/jobs">View site</a>', page)


def described_by_missing_ids(page: str) -> list[str]:
    """The ids an aria-describedby names that no element on the page has."""
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    named = [name for value in re.findall(r'aria-describedby="([^"]*)"', page) for name in value.split()]
    return [name for name in named if name not in ids]


def test_every_aria_describedby_of_the_admin_pages_names_an_element_there(people):
    waiting = waiting_job(people.submitter, "aria")
    client = session_client(people.reviewer)
    pages = {
        "job page": client.get(job_page(waiting)),
        "job list": client.get("/admin/jobs/jobspec/", {"q": waiting.job_id}),
        "confirmation": client.post("/admin/jobs/jobspec/", {"action": "approve_pending", "index": 0,
                                                             "_selected_action": [waiting.job_id]}),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        page = response.content.decode()
        assert described_by_missing_ids(page) == [], name
    assert 'aria-describedby="id_bulk_comment_help"' in pages["confirmation"].content.decode()
