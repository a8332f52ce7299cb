"""`POST /jobs/{id}/spawn`: one child blueprint job by hand, under the spawn step's rules (lineage, budget,
counters, the root's lock, `spawning.spawn_children`). Past the budget: 409 `budget_exhausted` with the
evidence, and the limit's first refusal appends one `STOPPED_BUDGET` (`manual: true`) to the parent's log;
later refusals of that limit write nothing. Every refusal writes nothing else."""
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.authtoken.models import Token

from jobs.audit import verify_job
from jobs.models import JobEvent, JobSpec, JobState
from jobs.pipelines import EventType

from ..builders import (
    a_blueprint, a_budget_bundle, a_user, assert_error, client_for, counts, done_job, post_json, submitted,
    to_done, waiting_job,
)
from .conftest import SERVERS, serving

pytestmark = pytest.mark.django_db


@pytest.fixture
def spawner(people):
    """A second submitter (spawn_job through the submitters group), who did not submit the roots here."""
    return a_user("sue", "submitters")


def spawn(client, job_id: str, body):
    return post_json(client, f"/jobs/{job_id}/spawn", body)


def stopped_events(job_id: str) -> list[dict]:
    return list(JobEvent.objects.filter(job_id=job_id, event_type=str(EventType.STOPPED_BUDGET))
                .order_by("seq").values("seq", "step", "actor", "payload"))


def db_counters(parent: JobSpec) -> dict:
    return {"generation": parent.generation + 1,
            "children_of_parent": JobSpec.objects.filter(parent_job_id=parent.job_id).count(),
            "jobs_in_root": JobSpec.objects.filter(root_job_id=parent.root_job_id).count()}


def a_done_root(people, policy_root=None, name="root", **budget) -> JobSpec:
    bundle = a_budget_bundle(policy_root, "spawn_budget", **budget) if budget else None
    root = submitted(people.submitter, name, policy_bundle_id=bundle)
    to_done(root.job_id)
    return root


# -- a child ---------------------------------------------------------------------------------------------------

def test_a_child_is_spawned_with_its_lineage(people, spawner):
    root = done_job(people.submitter, "root")
    before_root_events = JobEvent.objects.filter(job_id=root.job_id).count()

    response = spawn(client_for(spawner), root.job_id, {"blueprint": a_blueprint(name="by hand")})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["status"] == "queued" and body["kind"] == "blueprint"
    assert (body["root_job_id"], body["parent_job_id"], body["generation"]) == (root.job_id, root.job_id, 1)
    assert body["submitted_by"] == "sue"
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"
    child = JobSpec.objects.get(job_id=body["job_id"])
    assert child.spec["extensions"]["lineage"] == {"root_job_id": root.job_id, "parent_job_id": root.job_id,
                                                   "generation": 1, "iteration": 1}
    assert child.spec["blueprint"]["name"] == "by hand" and child.snapshot_id == root.snapshot_id
    assert child.policy_bundle_id == root.policy_bundle_id
    # The parent's log is untouched: a child that fits writes only the child.
    assert JobEvent.objects.filter(job_id=root.job_id).count() == before_root_events

    written = counts()
    again = spawn(client_for(spawner), root.job_id, {"blueprint": a_blueprint(name="by hand")})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["job_id"] == child.job_id
    assert counts() == written
    lineage = client_for(spawner).get(f"/jobs/{child.job_id}/lineage").json()
    assert [job["job_id"] for job in lineage["jobs"]] == [root.job_id, child.job_id]


def test_a_child_of_a_child(people, spawner):
    root = done_job(people.submitter, "root")
    child_id = spawn(client_for(spawner), root.job_id, {"blueprint": a_blueprint(name="child")}).json()["job_id"]
    to_done(child_id)
    grandchild = spawn(client_for(people.superuser), child_id, {"blueprint": a_blueprint(name="grandchild")})
    assert grandchild.status_code == 201, grandchild.content
    assert (grandchild.json()["root_job_id"], grandchild.json()["parent_job_id"], grandchild.json()["generation"]) \
        == (root.job_id, child_id, 2)


# -- refusals: each writes nothing ------------------------------------------------------------------------------

def test_who_may_not_spawn(people, spawner):
    root = done_job(people.submitter, "root")
    body = {"blueprint": a_blueprint(name="not allowed")}
    written = counts()
    assert_error(spawn(client_for(people.submitter), root.job_id, body), 403, "four_eyes")  # the parent's submitter
    for user in (people.reviewer, people.operator, people.nobody):  # without spawn_job
        assert_error(spawn(client_for(user), root.job_id, body), 403, "permission_denied")
    assert spawn(client_for(), root.job_id, body).status_code == 401
    assert counts() == written


def test_unknown_parent(people, spawner):
    written = counts()
    assert_error(spawn(client_for(spawner), "0" * 12, {"blueprint": a_blueprint()}), 404, "job_not_found")
    assert_error(spawn(client_for(spawner), "NOT-AN-ID", {"blueprint": a_blueprint()}), 404, "invalid_job_id")
    assert counts() == written


def test_invalid_bodies(people, spawner):
    root = done_job(people.submitter, "root")
    client = client_for(spawner)
    written = counts()
    broken = a_blueprint(name="broken")
    del broken["strategy"]
    body = assert_error(spawn(client, root.job_id, {"blueprint": broken}), 400, "invalid_job_spec")
    assert {"path": "/blueprint/strategy", "message": "'strategy' is a required property"} in body["errors"], body
    wrong_type = a_blueprint(name="wrong")
    wrong_type["universe"] = "SPY"
    body = assert_error(spawn(client, root.job_id, {"blueprint": wrong_type}), 400, "invalid_job_spec")
    assert any(error["path"].startswith("/blueprint/universe") for error in body["errors"]), body
    body = assert_error(spawn(client, root.job_id, {}), 400, "invalid_input")
    assert body["errors"][0]["path"] == "/blueprint"
    body = assert_error(spawn(client, root.job_id, {"blueprint": [1]}), 400, "invalid_input")
    assert body["errors"][0]["path"] == "/blueprint"
    body = assert_error(spawn(client, root.job_id, {"blueprint": a_blueprint(), "extra": 1}), 400, "invalid_input")
    assert body["errors"][0]["path"] == "/extra"
    assert_error(post_json(client, f"/jobs/{root.job_id}/spawn?x=1", {"blueprint": a_blueprint()}), 400,
                 "invalid_query")
    assert counts() == written


def test_only_from_a_job_that_ended_done(people, spawner):
    job = waiting_job(people.submitter, "still waiting")
    written = counts()
    assert_error(spawn(client_for(spawner), job.job_id, {"blueprint": a_blueprint()}), 409, "not_spawnable")
    assert counts() == written


# -- the budget ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget, reason, fit", [
    ({"max_children_per_job": 2, "max_jobs_per_root": 50}, "max_children_per_job", 2),
    ({"max_children_per_job": 50, "max_jobs_per_root": 4}, "max_jobs_per_root", 3),
])
def test_past_the_budget_one_event_per_limit(people, spawner, policy_root, budget, reason, fit):
    root = a_done_root(people, policy_root, **budget)
    client = client_for(spawner)
    for i in range(fit):
        assert spawn(client, root.job_id, {"blueprint": a_blueprint(name=f"fits {i}")}).status_code == 201

    jobs_before = JobSpec.objects.count()
    response = spawn(client, root.job_id, {"blueprint": a_blueprint(name="one too many")})
    refused = assert_error(response, 409, "budget_exhausted")

    expected = {"reason": reason, "limit": {reason: budget[reason]},
                "counters": {**db_counters(root), "requested": 1, "spawned": 0}}
    assert {k: refused[k] for k in ("reason", "limit", "counters")} == expected
    assert JobSpec.objects.count() == jobs_before
    (event,) = stopped_events(root.job_id)
    assert event["payload"] == {**expected, "manual": True, "trace": {"request_id": response["X-Request-ID"]}}
    assert event["step"] is None and event["actor"] == {"kind": "user", "id": "sue"}
    assert JobState.objects.get(job_id=root.job_id).status == "done"  # a record, not a move
    assert verify_job(root.job_id) == []

    written = counts()
    again = assert_error(spawn(client_for(people.superuser), root.job_id, {"blueprint": a_blueprint(name="again")}),
                         409, "budget_exhausted")
    assert {k: again[k] for k in ("reason", "limit", "counters")} == expected
    assert counts() == written  # the limit's first refusal recorded it; later ones write nothing
    assert len(stopped_events(root.job_id)) == 1


def test_past_max_generations(people, spawner):
    root = done_job(people.submitter, "root")  # default_v2: max_generations 2
    parent = root
    for generation, who in ((1, spawner), (2, people.superuser)):
        response = spawn(client_for(who), parent.job_id, {"blueprint": a_blueprint(name=f"gen {generation}")})
        assert response.status_code == 201, response.content
        parent = JobSpec.objects.get(job_id=response.json()["job_id"])
        to_done(parent.job_id)
    written = counts()
    refused = assert_error(spawn(client_for(spawner), parent.job_id, {"blueprint": a_blueprint(name="gen 3")}), 409,
                           "budget_exhausted")
    assert refused["reason"] == "max_generations" and refused["limit"] == {"max_generations": 2}
    assert refused["counters"]["generation"] == 3
    assert counts() == (written.specs, written.events + 1)
    assert [e["payload"]["reason"] for e in stopped_events(parent.job_id)] == ["max_generations"]


def test_a_second_limit_is_recorded_once_too(people, spawner, policy_root):
    """Two limits reached on one parent: one event each."""
    root = a_done_root(people, policy_root, max_children_per_job=1, max_jobs_per_root=50)
    client = client_for(spawner)
    assert spawn(client, root.job_id, {"blueprint": a_blueprint(name="only one")}).status_code == 201
    for i in range(3):
        assert_error(spawn(client, root.job_id, {"blueprint": a_blueprint(name=f"no {i}")}), 409, "budget_exhausted")
    assert [e["payload"]["reason"] for e in stopped_events(root.job_id)] == ["max_children_per_job"]


# -- 100 concurrent requests against a real server process ----------------------------------------------------------

ROOM = 4  # jobs the root's budget still has room for


@pytest.fixture
def busy_server(monkeypatch, artifact_root, policy_root, process_env, tmp_path):
    """gunicorn with two worker processes of 16 threads each: real concurrency across processes, within what
    PostgreSQL's max_connections allows."""
    monkeypatch.setitem(SERVERS, "gunicorn-busy", lambda port: [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "16",
        "--timeout", "120", "--no-control-socket", "eam_site.wsgi:application"])
    env = {**process_env, "EAM_POLICY_ROOT": str(policy_root)}
    with serving("gunicorn-busy", env, tmp_path) as base:
        yield base


def test_100_concurrent_spawns_fill_the_room_exactly(people, spawner, policy_root, busy_server):
    bundle = a_budget_bundle(policy_root, "spawn_race", max_children_per_job=200, max_jobs_per_root=2 + ROOM)
    root = submitted(people.submitter, "race root", policy_bundle_id=bundle)
    to_done(root.job_id)
    first = submitted(people.submitter, "unrelated")  # noqa: F841 - a job outside the root does not count
    token = Token.objects.create(user=spawner).key
    # One child already: the root and it are 2 of the 2 + ROOM jobs the root may hold.
    assert spawn(client_for(spawner), root.job_id, {"blueprint": a_blueprint(name="already")}).status_code == 201
    jobs_before = JobSpec.objects.count()

    def request(i: int) -> tuple[int, dict]:
        data = json.dumps({"blueprint": a_blueprint(name=f"concurrent {i}")}).encode()
        call = urllib.request.Request(f"{busy_server}/jobs/{root.job_id}/spawn", data=data, method="POST", headers={
            "Authorization": f"Token {token}", "Content-Type": "application/json", "X-Request-ID": f"spawn-{i}"})
        try:
            with urllib.request.urlopen(call, timeout=120) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(request, range(100)))

    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * ROOM + [409] * (100 - ROOM), [a for a in answers if a[0] not in (201, 409)][:3]
    assert all(body["code"] == "budget_exhausted" and body["reason"] == "max_jobs_per_root"
               for status, body in answers if status == 409)
    children = [body["job_id"] for status, body in answers if status == 201]
    assert len(set(children)) == ROOM
    assert JobSpec.objects.count() == jobs_before + ROOM
    assert JobSpec.objects.filter(root_job_id=root.job_id).count() == 2 + ROOM

    (event,) = stopped_events(root.job_id)  # exactly one for the one limit reached, by one of the refused requests
    root.refresh_from_db()
    refused = {f"spawn-{i}" for i, (status, _) in enumerate(answers) if status == 409}
    assert event["payload"].pop("trace")["request_id"] in refused
    assert event["payload"] == {"reason": "max_jobs_per_root", "limit": {"max_jobs_per_root": 2 + ROOM},
                                "counters": {**db_counters(root), "requested": 1, "spawned": 0}, "manual": True}
    assert db_counters(root) == {"generation": 1, "children_of_parent": 1 + ROOM, "jobs_in_root": 2 + ROOM}
    assert all(body["counters"] == event["payload"]["counters"] for status, body in answers if status == 409)
    assert verify_job(root.job_id) == []
