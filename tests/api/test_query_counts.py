"""No N+1: the job list and a job's detail take the same number of queries for 5 or 50 jobs, 20 or 200 events,
with a cold cache as with a warm one."""
import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.api.authentication import forget_tokens

from ..builders import client_for, done_job, job_with_events, submitted, waiting_job

pytestmark = pytest.mark.django_db


def queries_for(client, url: str, *, cold: bool = False) -> int:
    """Queries of one GET of `url`, after a first one (content types, permission caches of this process).
    `cold`: with nothing kept in Django's cache or the token memory (first read of each job, each caller)."""
    client.get(url)
    if cold:
        cache.clear()
        forget_tokens()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def test_job_list_queries_do_not_grow_with_jobs(people):
    client = client_for(people.reviewer)
    for i in range(5):
        (done_job if i % 2 else waiting_job)(people.submitter, f"few-{i}")
    few = queries_for(client, "/jobs?limit=200")
    few_cold = queries_for(client, "/jobs?limit=200", cold=True)
    few_waiting = queries_for(client, "/jobs?status=waiting_approval")

    for i in range(45):
        (waiting_job, submitted, done_job)[i % 3](people.submitter, f"many-{i}")
    assert len(client.get("/jobs?limit=200").json()["results"]) == 50
    assert queries_for(client, "/jobs?limit=200") == few
    assert queries_for(client, "/jobs?limit=200", cold=True) == few_cold
    assert queries_for(client, "/jobs?status=waiting_approval") == few_waiting
    assert few == 1  # the versions of the page's jobs; the token and the page are kept
    assert few_cold == 6  # the token and its user's permissions (2, kept with it), the versions, the rows, verdicts


def test_job_detail_queries_do_not_grow_with_events(people):
    client = client_for(people.reviewer)
    short = job_with_events(people.submitter, 20, name="short")
    long = job_with_events(people.submitter, 200, name="long")
    detail_short = queries_for(client, f"/jobs/{short.job_id}", cold=True)
    detail_long = queries_for(client, f"/jobs/{long.job_id}", cold=True)
    assert detail_short == detail_long
    # the token, the version, the reviewer's permissions (2), then the job with its state and verdict, its
    # artifacts, its children
    assert detail_long <= 7
    assert queries_for(client, f"/jobs/{short.job_id}") == queries_for(client, f"/jobs/{long.job_id}") == 1
    assert queries_for(client, f"/jobs/{short.job_id}/events") == queries_for(client, f"/jobs/{long.job_id}/events")
    assert queries_for(client, f"/jobs/{short.job_id}/artifacts") == queries_for(client, f"/jobs/{long.job_id}/artifacts")
