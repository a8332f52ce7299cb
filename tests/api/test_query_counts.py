"""No N+1: the job list and a job's detail take the same number of queries for 5 or 50 jobs, 20 or 200 events;
and every request reads the database (nothing is kept between requests)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ..builders import client_for, done_job, job_with_events, submitted, waiting_job

pytestmark = pytest.mark.django_db


def queries_for(client, url: str, **headers) -> int:
    """Queries of one GET of `url`, after a first one (content types of this process)."""
    client.get(url, headers=headers)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, headers=headers)
    assert response.status_code in (200, 304), response.content
    return len(captured)


def test_job_list_queries_do_not_grow_with_jobs(people):
    client = client_for(people.reviewer)
    for i in range(5):
        (done_job if i % 2 else waiting_job)(people.submitter, f"few-{i}")
    few = queries_for(client, "/jobs?limit=200")
    few_waiting = queries_for(client, "/jobs?status=waiting_approval")

    for i in range(45):
        (waiting_job, submitted, done_job)[i % 3](people.submitter, f"many-{i}")
    assert len(client.get("/jobs?limit=200").json()["results"]) == 50
    assert queries_for(client, "/jobs?limit=200") == few
    assert queries_for(client, "/jobs?status=waiting_approval") == few_waiting
    assert few == 2  # the token with its user, the page's rows (their verdicts are in the projection)


def test_job_detail_queries_do_not_grow_with_events(people):
    client = client_for(people.reviewer)
    short = job_with_events(people.submitter, 20, name="short")
    long = job_with_events(people.submitter, 200, name="long")
    detail_short = queries_for(client, f"/jobs/{short.job_id}")
    detail_long = queries_for(client, f"/jobs/{long.job_id}")
    # the token with its user, the job's row (with the reviewer's permissions), its artifacts
    assert detail_short == detail_long == 3
    etag = client.get(f"/jobs/{long.job_id}").headers["ETag"]
    assert queries_for(client, f"/jobs/{long.job_id}", if_none_match=etag) == 2  # 304: no artifacts read
    done = done_job(people.submitter, "finished")
    assert queries_for(client, f"/jobs/{done.job_id}") == 3
    assert queries_for(client, f"/jobs/{short.job_id}/events") == queries_for(client, f"/jobs/{long.job_id}/events")
    assert queries_for(client, f"/jobs/{short.job_id}/artifacts") == queries_for(client, f"/jobs/{long.job_id}/artifacts")
