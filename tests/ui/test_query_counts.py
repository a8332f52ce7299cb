"""No N+1: the job lists and a job's page take as many queries for 5 jobs as for 50, for 20 events as for 200."""
import pytest

from ..api.test_query_counts import queries_for
from ..builders import job_with_events, session_client, submitted, waiting_job

pytestmark = pytest.mark.django_db

LISTS = ("/ui/jobs", "/ui/jobs?status=waiting_approval", "/ui/jobs/waiting-for-me")


def test_job_lists_take_the_same_queries_for_few_and_many_jobs(people):
    client = session_client(people.reviewer)
    for i in range(5):
        waiting_job(people.submitter, f"few-{i}")
    few = {url: queries_for(client, url) for url in LISTS}

    for i in range(45):
        (waiting_job if i % 2 else submitted)(people.submitter, f"many-{i}")
    page = client.get("/ui/jobs").content.decode()
    assert page.count('class="job-link"') == 50
    assert {url: queries_for(client, url) for url in LISTS} == few
    # session, user, the page (its jobs' versions; rows and verdicts when not kept), counts per status (the
    # queue: + the reviewer's permissions)
    assert few["/ui/jobs"] <= 5 and few["/ui/jobs/waiting-for-me"] <= 6


def test_job_page_takes_the_same_queries_for_few_and_many_events(people):
    client = session_client(people.reviewer)
    short = job_with_events(people.submitter, 20, name="short")
    long = job_with_events(people.submitter, 200, name="long")
    detail_short = queries_for(client, f"/ui/jobs/{short.job_id}")
    detail_long = queries_for(client, f"/ui/jobs/{long.job_id}")
    assert client.get(f"/ui/jobs/{long.job_id}").content.decode().count('<tr class="event ') == 200
    assert detail_short == detail_long
    assert detail_long <= 10
