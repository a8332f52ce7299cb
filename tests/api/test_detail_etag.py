"""A job's detail and its ETag: every read answers what the database holds, and the ETag changes with every
change a client could see (a new event, a renewed lease, a new child, what the caller may do)."""
from datetime import timedelta

import pytest

from contracts import iso
from jobs import services
from jobs.events import Actor, NewEvent, now
from jobs.models import JobState
from jobs.pipelines import EventType as E

from ..builders import SNAPSHOT, WORKER, a_blueprint, a_job_spec, append, client_for, post_json, waiting_job

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
    assert read(reviewer, job).json() == before

    # when the reviewer approves (a new event)
    assert post_json(reviewer, f"/jobs/{job.job_id}/approve?step=runspec", {}).status_code == 200

    # then the next read shows the new state and that there is nothing left to approve
    after = read(reviewer, job).json()
    assert (after["status"], after["next_step"], after["can_approve"]) == ("queued", "run", False)
    assert after["last_seq"] == before["last_seq"] + 1


def test_the_submitter_and_a_reviewer_get_their_own_answers_for_the_same_version(people):
    job = waiting_job(people.submitter, "two-callers")
    reviewer, submitter = client_for(people.reviewer), client_for(people.submitter)
    for _ in range(2):
        as_reviewer, as_submitter = read(reviewer, job), read(submitter, job)
        assert as_reviewer.json()["last_seq"] == as_submitter.json()["last_seq"]
        assert (as_reviewer.json()["can_approve"], as_submitter.json()["can_approve"]) == (True, False)
        assert as_reviewer["ETag"] != as_submitter["ETag"]


def test_a_renewed_lease_and_a_new_child_show_without_a_new_event(people):
    job = waiting_job(people.submitter, "lease-and-child")
    client = client_for(people.operator)
    first = read(client, job)

    # a worker's lease is renewed in place, as workflow.claims.renew does (no event)
    expires = now() + timedelta(minutes=5)
    JobState.objects.filter(job_id=job.job_id).update(lease_owner="worker-9", lease_expires_at=expires)
    leased = read(client, job)
    assert leased.json()["last_seq"] == first.json()["last_seq"] and leased["ETag"] != first["ETag"]
    assert (leased.json()["lease_owner"], leased.json()["lease_expires_at"]) == ("worker-9", iso(expires))

    # a child job is spawned under it (a new JobSpec row, no event on the parent)
    lineage = {"root_job_id": job.job_id, "parent_job_id": job.job_id, "generation": 1, "iteration": 1}
    spec = {**a_job_spec(a_blueprint(name="child"), snapshot_id=SNAPSHOT), "extensions": {"lineage": lineage}}
    child, _ = services.submit_job_spec(spec=spec, actor=Actor.user("sam"), lineage_allowed=True)
    with_child = read(client, job)
    assert with_child.json()["lineage"]["children"] == [child.job_id] and with_child["ETag"] != leased["ETag"]


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

