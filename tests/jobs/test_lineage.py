"""`selectors.job_lineage`: the whole tree of a job's root, in (generation, created_at, job_id) order, with each
job's title, status, verdict, parent and children; at most three queries whatever the tree's size."""
import pytest

from jobs import selectors
from jobs.errors import NotFound

from ..builders import MONTH, SNAPSHOT, a_snapshot, done_job, idea_waiting, spawned

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _snapshot(db):
    a_snapshot(SNAPSHOT, span=MONTH)


def a_tree(people):
    """root (done, FAIL) -> a (done) -> a1; root -> b."""
    root = done_job(people.submitter, "root", verdict="FAIL")
    a = spawned(root, people.reviewer, "child a", done=True)
    b = spawned(root, people.reviewer, "child b", fast=12)
    a1 = spawned(a, people.operator, "grandchild a1")  # a's submitter is the reviewer: four eyes
    return root, a, b, a1


def test_the_tree_from_any_of_its_jobs(people):
    root, a, b, a1 = a_tree(people)
    done_job(people.submitter, "another root")  # not in the tree

    tree = selectors.job_lineage(job_id=a1.job_id)

    assert tree["job_id"] == a1.job_id and tree["root_job_id"] == root.job_id
    assert [job["job_id"] for job in tree["jobs"]] == [root.job_id, a.job_id, b.job_id, a1.job_id]
    by_id = {job["job_id"]: job for job in tree["jobs"]}
    assert by_id[root.job_id] == {"job_id": root.job_id, "title": "root", "status": "done", "verdict": "FAIL",
                                  "generation": 0, "parent_job_id": None, "children": [a.job_id, b.job_id]}
    assert by_id[a.job_id]["children"] == [a1.job_id] and by_id[a.job_id]["status"] == "done"
    assert by_id[b.job_id] == {"job_id": b.job_id, "title": "child b", "status": "queued", "verdict": None,
                               "generation": 1, "parent_job_id": root.job_id, "children": []}
    assert by_id[a1.job_id]["generation"] == 2 and by_id[a1.job_id]["parent_job_id"] == a.job_id
    for job in (root, a, b):
        assert selectors.job_lineage(job_id=job.job_id) == {**tree, "job_id": job.job_id}


def test_an_idea_job_is_titled_by_its_idea(people):
    idea = idea_waiting(people.submitter, "an idea about momentum")
    tree = selectors.job_lineage(job_id=idea.job_id)
    assert tree["jobs"] == [{"job_id": idea.job_id, "title": idea.spec["idea"]["title"], "status": "waiting_approval",
                             "verdict": None, "generation": 0, "parent_job_id": None, "children": []}]


def test_queries_do_not_grow_with_the_tree(people, django_assert_max_num_queries):
    root, a, b, a1 = a_tree(people)
    with django_assert_max_num_queries(3):
        small = selectors.job_lineage(job_id=b.job_id)
    for i in range(2):
        spawned(a, people.operator, f"more under a {i}", fast=20 + i)
    with django_assert_max_num_queries(3):
        large = selectors.job_lineage(job_id=b.job_id)
    assert len(large["jobs"]) == len(small["jobs"]) + 2


@pytest.mark.parametrize("job_id, code", [("0" * 12, "job_not_found"), ("NOT-AN-ID", "invalid_job_id")])
def test_unknown_or_malformed_id(job_id, code):
    with pytest.raises(NotFound) as refused:
        selectors.job_lineage(job_id=job_id)
    assert refused.value.code == code
