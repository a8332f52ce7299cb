"""`GET /jobs/{id}/lineage` (the root's tree, read as a job's detail is) and `GET /jobs?parent_job_id=`."""
import pytest

from ..builders import assert_error, client_for, done_job, spawned, submitted
from .test_query_counts import queries_for

pytestmark = pytest.mark.django_db


def a_tree(people):
    root = done_job(people.submitter, "root")
    a = spawned(root, people.reviewer, "child a", done=True)
    b = spawned(root, people.reviewer, "child b", fast=12)
    a1 = spawned(a, people.operator, "grandchild a1")
    return root, a, b, a1


def test_the_tree_of_a_job(people):
    root, a, b, a1 = a_tree(people)
    response = client_for(people.nobody).get(f"/jobs/{b.job_id}/lineage")  # any signed-in reader
    assert response.status_code == 200, response.content
    tree = response.json()
    assert (tree["job_id"], tree["root_job_id"]) == (b.job_id, root.job_id)
    assert [(j["job_id"], j["title"], j["generation"], j["parent_job_id"], j["children"]) for j in tree["jobs"]] == [
        (root.job_id, "root", 0, None, [a.job_id, b.job_id]),
        (a.job_id, "child a", 1, root.job_id, [a1.job_id]),
        (b.job_id, "child b", 1, root.job_id, []),
        (a1.job_id, "grandchild a1", 2, a.job_id, []),
    ]
    assert [(j["status"], j["verdict"]) for j in tree["jobs"]] == [
        ("done", "PASS"), ("done", "PASS"), ("queued", None), ("queued", None)]


def test_refusals_as_elsewhere(people, settings):
    root = done_job(people.submitter, "root")
    reader = client_for(people.nobody)
    assert_error(reader.get(f"/jobs/{'0' * 12}/lineage"), 404, "job_not_found")
    assert_error(reader.get("/jobs/NOT-AN-ID/lineage"), 404, "invalid_job_id")
    assert_error(reader.get(f"/jobs/{root.job_id}/lineage?depth=2"), 400, "invalid_query")
    assert client_for().get(f"/jobs/{root.job_id}/lineage").status_code == 401
    settings.EAM_PUBLIC_READ = True
    assert client_for().get(f"/jobs/{root.job_id}/lineage").status_code == 200


def test_lineage_queries_do_not_grow_with_the_tree(people):
    root, a, b, a1 = a_tree(people)
    client = client_for(people.reviewer)
    few = queries_for(client, f"/jobs/{a1.job_id}/lineage")
    spawned(root, people.operator, "more under root", fast=20)
    for i in range(2):
        spawned(a, people.superuser, f"more under a {i}", fast=30 + i)
    assert len(client.get(f"/jobs/{a1.job_id}/lineage").json()["jobs"]) == 7
    assert queries_for(client, f"/jobs/{a1.job_id}/lineage") == few == 3  # the token with its user, root, tree


def test_jobs_filter_by_parent_and_root(people):
    root, a, b, a1 = a_tree(people)
    submitted(people.submitter, "elsewhere")
    client = client_for(people.reviewer)
    ids = lambda query: [job["job_id"] for job in client.get(f"/jobs?{query}").json()["results"]]  # noqa: E731
    assert ids(f"parent_job_id={root.job_id}") == [a.job_id, b.job_id]
    assert ids(f"parent_job_id={a.job_id}") == [a1.job_id]
    assert ids(f"parent_job_id={b.job_id}") == []
    assert ids(f"root_job_id={root.job_id}") == [root.job_id, a.job_id, b.job_id, a1.job_id]
    assert ids(f"root_job_id={root.job_id}&parent_job_id={a.job_id}") == [a1.job_id]
    for bad in ("parent_job_id=NOT-AN-ID", "parent_job_id=", f"parent_job_id={root.job_id}%0A",
                f"parent_job_id={root.job_id}&parent_job_id={a.job_id}"):
        body = assert_error(client.get(f"/jobs?{bad}"), 400, "invalid_query")
        assert body["errors"][0]["path"] == "/parent_job_id", body
