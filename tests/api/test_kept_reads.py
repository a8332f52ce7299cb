"""Reads kept in Django's cache: a job's detail per version of the job and per what the caller may do
(jobs.api.detail), a page of the job list per versions of its jobs (jobs.selectors.list_jobs). Every change a
client could see makes a new version, so a kept answer is never the wrong one."""
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import selectors, services
from jobs.actors import Actor
from jobs.api import detail
from jobs.events import NewEvent, now
from jobs.models import JobState
from jobs.pipelines import EventType as E

from .builders import WORKER, a_job_spec, append, client_for, done_job, post_json, waiting_job

pytestmark = pytest.mark.django_db


def read(client, job):
    response = client.get(f"/jobs/{job.job_id}")
    assert response.status_code == 200, response.content
    return response


def test_an_approval_shows_at_once(people):
    # given a job waiting for approval, read (and kept) by the reviewer
    job = waiting_job(people.submitter, "approve-then-read")
    reviewer = client_for(people.reviewer)
    before = read(reviewer, job).json()
    assert (before["status"], before["can_approve"]) == ("waiting_approval", True)
    assert read(reviewer, job).json() == before  # now from the cache

    # when the reviewer approves (a new event)
    assert post_json(reviewer, f"/jobs/{job.job_id}/approve?step=runspec", {}).status_code == 200

    # then the next read shows the new state and that there is nothing left to approve
    after = read(reviewer, job).json()
    assert (after["status"], after["next_step"], after["can_approve"]) == ("queued", "run", False)
    assert after["last_seq"] == before["last_seq"] + 1


def test_the_submitter_and_a_reviewer_get_their_own_answers_for_the_same_version(people):
    job = waiting_job(people.submitter, "two-callers")
    reviewer, submitter = client_for(people.reviewer), client_for(people.submitter)
    for _ in range(2):  # the first read of each fills the cache, the second is answered from it
        as_reviewer, as_submitter = read(reviewer, job), read(submitter, job)
        assert as_reviewer.json()["last_seq"] == as_submitter.json()["last_seq"]
        assert (as_reviewer.json()["can_approve"], as_submitter.json()["can_approve"]) == (True, False)
        assert as_reviewer["ETag"] != as_submitter["ETag"]


def test_a_second_reviewer_shares_the_kept_body(people, make_user):
    job = waiting_job(people.submitter, "shared")
    first = read(client_for(people.reviewer), job)
    other = client_for(make_user("rosa", "reviewers"))
    with CaptureQueriesContext(connection) as queries:
        second = read(other, job)
    assert second.content == first.content and second["ETag"] == first["ETag"]
    assert len(queries) <= 4  # the token and permissions of a new caller, the version: no detail queries


def test_a_renewed_lease_and_a_new_child_show_without_a_new_event(people):
    job = waiting_job(people.submitter, "lease-and-child")
    client = client_for(people.operator)
    first = read(client, job).json()

    # a worker's lease is renewed in place, as workflow.claims.renew does (no event)
    expires = now() + timedelta(minutes=5)
    JobState.objects.filter(job_id=job.job_id).update(lease_owner="worker-9", lease_expires_at=expires)
    leased = read(client, job).json()
    assert leased["last_seq"] == first["last_seq"]
    assert (leased["lease_owner"], leased["lease_expires_at"]) == ("worker-9", selectors.iso(expires))

    # a child job is spawned under it (a new JobSpec row, no event on the parent)
    lineage = {"root_job_id": job.job_id, "parent_job_id": job.job_id, "generation": 1, "iteration": 1}
    child, _ = services.submit_job_spec(spec={**a_job_spec("child"), "extensions": {"lineage": lineage}},
                                        actor=Actor.user("sam"), lineage_allowed=True)
    assert read(client, job).json()["lineage"]["children"] == [child.job_id]


def test_if_none_match_gets_304_until_the_job_changes(people):
    job = waiting_job(people.submitter, "etag")
    client = client_for(people.reviewer)
    etag = read(client, job)["ETag"]

    unchanged = client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=etag)
    assert (unchanged.status_code, unchanged.content, unchanged["ETag"]) == (304, b"", etag)
    assert client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=f'W/{etag}').status_code == 304
    assert client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH='"something-else"').status_code == 200

    append(job.job_id, NewEvent(E.RERUN_REQUESTED, WORKER, payload={"agent_id": "intent", "rerun_id": "r9"}))
    changed = client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


@pytest.mark.parametrize("header", ["garbage", "", "W/", '"unterminated', "W/W/x", '"a", ,"b"', "\u00e9t\u00e9",
                                    '"' + "x" * 10_000 + '"'])
def test_a_malformed_if_none_match_is_ignored(people, header):
    job = waiting_job(people.submitter, "odd etag")
    client = client_for(people.reviewer)

    response = client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH=header)

    assert response.status_code == 200 and response.json()["job_id"] == job.job_id


def test_if_none_match_star_matches_any_version_of_a_job_that_exists(people):
    job = waiting_job(people.submitter, "star")
    client = client_for(people.reviewer)

    assert client.get(f"/jobs/{job.job_id}", HTTP_IF_NONE_MATCH="*").status_code == 304
    missing = client.get("/jobs/0123456789ab", HTTP_IF_NONE_MATCH="*")
    assert (missing.status_code, missing.json()["code"]) == (404, "job_not_found")


def test_a_kept_detail_costs_one_query(people):
    job = done_job(people.submitter, "one-query")
    client = client_for(people.reviewer)
    read(client, job)
    with CaptureQueriesContext(connection) as queries:
        body = read(client, job).json()
    assert body["verdict"] == "PASS"
    assert len(queries) == 1, [q["sql"] for q in queries]  # the version; token and permissions are remembered


def test_a_body_read_after_the_job_moved_on_is_not_kept_under_the_older_version(people):
    # given the version a request saw, and then a new event before it read the body
    job = waiting_job(people.submitter, "moved-on")
    seen = detail.version(job_id=job.job_id, user=people.reviewer)
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(people.reviewer))

    # then it answers with what it read, without an ETag, and keeps nothing under the older version
    body, etag = detail.body(job_id=job.job_id, user=people.reviewer, current=seen)
    assert b'"status":"queued"' in body and etag is None
    assert cache.get(f"eam:job-detail:{seen.etag[1:-1]}") is None
    fresh = read(client_for(people.reviewer), job)
    assert fresh["ETag"] != seen.etag and fresh.json()["status"] == "queued"


def test_a_kept_list_page_shows_every_change_at_once(people):
    # given a page of waiting jobs, read (and kept)
    first, second = waiting_job(people.submitter, "page-1"), waiting_job(people.submitter, "page-2")
    client = client_for(people.reviewer)

    def waiting():
        return [(j["job_id"], j["last_seq"]) for j in client.get("/jobs?status=waiting_approval").json()["results"]]

    before = waiting()
    assert [job_id for job_id, _ in before] == [first.job_id, second.job_id]
    with CaptureQueriesContext(connection) as queries:
        assert waiting() == before
    assert len(queries) == 1  # the versions of the page's jobs

    # when one job moves on (approved), one changes in place (a new event) and a new one starts waiting
    services.approve(job_id=first.job_id, step="runspec", actor=Actor.user(people.reviewer))
    append(second.job_id, NewEvent(E.RERUN_REQUESTED, WORKER, payload={"agent_id": "intent", "rerun_id": "r1"}))
    third = waiting_job(people.submitter, "page-3")

    # then the next read shows all three changes
    assert waiting() == [(second.job_id, before[1][1] + 1), (third.job_id, 4)]


def test_a_page_read_while_a_job_moved_on_is_not_kept(people, monkeypatch):
    # given a job that moves on between the two reads of a new page: its versions, then its rows
    job = waiting_job(people.submitter, "racing")
    kept = []

    class RacingCache:
        def get(self, key, default=None):
            services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(people.reviewer))
            return default

        def set(self, key, value, *args, **kwargs):
            kept.append(key)

    monkeypatch.setattr(selectors, "cache", RacingCache())
    page = selectors.list_jobs(filters=selectors.JobFilters(status="waiting_approval"))

    # then it answers with the rows it read, and keeps nothing under the versions it read first
    assert page.results == [] and kept == []
