"""No N+1: the job list and a job's detail take the same number of queries for 5 or 50 jobs, 20 or 200 events."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from .builders import client_for, job_with_events, submitted, waiting_job

pytestmark = pytest.mark.django_db


def queries_for(client, url: str) -> int:
    client.get(url)  # warm up: content types, permission caches of this process
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_job_list_queries_do_not_grow_with_jobs(people):
    client = client_for(people.reviewer)
    for i in range(5):
        waiting_job(people.submitter, f"few-{i}")
    few = queries_for(client, "/jobs?limit=200")
    few_waiting = queries_for(client, "/jobs?status=waiting_approval")

    for i in range(45):
        (waiting_job if i % 2 else submitted)(people.submitter, f"many-{i}")
    assert len(client.get("/jobs?limit=200").json()["results"]) == 50
    assert queries_for(client, "/jobs?limit=200") == few
    assert queries_for(client, "/jobs?status=waiting_approval") == few_waiting
    assert few <= 2  # the token, the page


def test_job_detail_queries_do_not_grow_with_events(people):
    client = client_for(people.reviewer)
    short = job_with_events(people.submitter, 20, name="short")
    long = job_with_events(people.submitter, 200, name="long")
    detail_short = queries_for(client, f"/jobs/{short.job_id}")
    detail_long = queries_for(client, f"/jobs/{long.job_id}")
    assert detail_short == detail_long
    # the token, the job with its state, its artifacts, its children, the reviewer's permissions (2)
    assert detail_long <= 6
    assert queries_for(client, f"/jobs/{short.job_id}/events") == queries_for(client, f"/jobs/{long.job_id}/events")
    assert queries_for(client, f"/jobs/{short.job_id}/artifacts") == queries_for(client, f"/jobs/{long.job_id}/artifacts")
