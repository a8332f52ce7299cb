"""The runspec checkpoint as a reviewer reads it: the segment plan with its holdout, the policy's gates with
their thresholds, and the diff against the parent job or the previous job with the same title."""
import re

import pytest
from playwright.sync_api import expect

from jobs.models import JobEvent, JobState
from research.policies import load_policy_bundle
from ui.diffs import MISSING, Change, diff_documents
from workflow.orchestrator import WorkerConfig, run_pass

from ..builders import (
    a_snapshot, counts, done_job_with_run, overwrite_artifact, session_client, spawned, submitted,
)

SNAPSHOT_ID = "ui_tiny"  # the one done_job_with_run runs on
WORKER = WorkerConfig(worker_id="rsd-worker", lease_seconds=600, max_attempts=1, retry_backoff_seconds=0)


# -- the diff, pure ------------------------------------------------------------------------------------------

def test_identical_documents_have_no_difference():
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": [{"e": "x"}]}
    assert diff_documents(doc, {"a": {"b": 1, "c": [1, 2]}, "d": [{"e": "x"}]}) == []


def test_changed_added_and_removed_fields_by_dotted_path_in_path_order():
    before = {"strategy": {"params": {"fast": 5, "slow": 20}}, "costs": {"fee_bps": 5.0}, "old": True}
    after = {"strategy": {"params": {"fast": 8, "slow": 20, "extra": None}}, "costs": {"fee_bps": 5.0}}
    assert diff_documents(before, after) == [
        Change("old", "removed", True, MISSING),
        Change("strategy.params.extra", "added", MISSING, None),
        Change("strategy.params.fast", "changed", 5, 8),
    ]


def test_lists_of_objects_compare_by_index_and_plain_lists_whole():
    before = {"segments": {"list": [{"id": "seg_001", "end": "2020-12-31"}, {"id": "holdout"}]},
              "universe": {"symbols": ["AAA", "BBB"]}}
    after = {"segments": {"list": [{"id": "seg_001", "end": "2021-01-29"}]}, "universe": {"symbols": ["BBB"]}}
    assert diff_documents(before, after) == [
        Change("segments.list.0.end", "changed", "2020-12-31", "2021-01-29"),
        Change("segments.list.1.id", "removed", "holdout", MISSING),
        Change("universe.symbols", "changed", ["AAA", "BBB"], ["BBB"]),
    ]


def test_true_is_not_one_and_ignored_paths_are_left_out():
    assert diff_documents({"x": 1}, {"x": True}) == [Change("x", "changed", 1, True)]
    assert diff_documents({"x": 1.0}, {"x": 1}) == []  # the same JSON number
    assert diff_documents({"id": "a", "n": {"sha": 1}, "k": 1}, {"id": "b", "n": {"sha": 2}, "k": 1},
                          ignore={"id", "n"}) == []


# -- the page ----------------------------------------------------------------------------------------------

def compiled_and_waiting(job) -> str:
    """Run the job's compile step for real: it waits at the runspec checkpoint with its runspec.json."""
    run_pass(WORKER, job_ids=[job.job_id])
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.waiting_step) == ("waiting_approval", "runspec"), state.error
    return job.job_id


def a_child_waiting_at_runspec(people) -> tuple[str, str]:
    """A parent taken to DONE by the engine (fast 5), and its child (fast 8) compiled and waiting: (parent, child)."""
    parent = done_job_with_run(people.submitter, "lineage parent")
    child = spawned(parent, people.operator, "lineage child", fast=8, slow=20)
    return parent.job_id, compiled_and_waiting(child)


def review_box(client, job_id) -> str:
    response = client.get(f"/ui/jobs/{job_id}")
    assert response.status_code == 200, response.content[:2000]
    page = response.content.decode()
    return page[page.index('id="checkpoint-review"'):page.index('id="summary-heading"')]


def diff_rows(box: str) -> dict[str, tuple[str, str, str]]:
    table = box[box.index('class="review-table diff"'):]
    table = table[:table.index("</table>")]
    return {path: (kind, before, after) for path, kind, before, after in re.findall(
        r'<th scope="row"><code>([^<]+)</code></th><td>(\w+)</td><td>(.*?)</td><td>(.*?)</td></tr>', table)}


@pytest.mark.django_db
def test_a_child_at_runspec_shows_the_plan_the_gates_and_the_diff_against_its_parent(people):
    a_snapshot(SNAPSHOT_ID)
    parent_id, child_id = a_child_waiting_at_runspec(people)

    box = review_box(session_client(people.reviewer), child_id)

    # the runspec: strategy, data with the snapshot's sha256, execution conventions
    for text in ("param fast", "snapshot_sha256", "execution.position", "from_bar_t_plus_1", "fee_bps"):
        assert text in box, text
    # the segment plan: one bar per segment, the holdout labelled as such
    timeline = box[box.index('class="segment-timeline"'):box.index("</figure>")]
    assert timeline.count('class="segment-bar"') == timeline.count("<li ") >= 2
    holdout = re.search(r'<li class="segment holdout">.*?</li>', timeline, re.S).group(0)
    assert "<strong>holdout</strong>" in holdout and "margin-left:" in holdout
    # the gates with their thresholds, from the job's policy bundle
    bundle, _ = load_policy_bundle(JobState.objects.get(job_id=child_id).job.policy_bundle_id)
    gates = box[box.index('class="review-table gate-plan"'):]
    for gate in bundle["gates"]:
        assert f'<th scope="row"><code>{gate["gate_id"]}</code></th><td><code>{gate["metric"]}</code></td>' in gates
    # each threshold written as its metric is (ui_format.metric): a fraction in percent, a ratio with two decimals
    for metric, operator, threshold in (("oos.deflated_sharpe", "&gt;=", "0.50"), ("trials.pbo", "&lt;=", "0.50"),
                                        ("segments.positive_share", "&gt;=", "50.00%"),
                                        ("oos.max_drawdown", "&gt;=", "-35.00%"), ("oos.trades", "&gt;=", "10")):
        assert (f'<td><code>{metric}</code></td><td><code>{operator}</code></td>'
                f'<td class="number">{threshold}</td>') in gates, metric
    # the diff against the parent: fast went from 5 to 8
    assert f'the parent job <a href="/ui/jobs/{parent_id}">' in box
    assert diff_rows(box)["strategy.params.fast"] == ("changed", "<code>5</code>", "<code>8</code>")


@pytest.mark.django_db
def test_the_admins_job_page_shows_the_same_review(people):
    a_snapshot(SNAPSHOT_ID)
    parent_id, child_id = a_child_waiting_at_runspec(people)
    people.reviewer.is_staff = True
    people.reviewer.save(update_fields=["is_staff"])
    response = session_client(people.reviewer).get(f"/admin/jobs/jobspec/{child_id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'the parent job <a href="/ui/jobs/{parent_id}">' in page
    assert 'class="segment-timeline"' in page and 'class="review-table gate-plan"' in page


@pytest.mark.django_db
def test_a_job_without_parent_is_compared_with_the_previous_job_of_the_same_title(people):
    a_snapshot(SNAPSHOT_ID)
    first = compiled_and_waiting(submitted(people.submitter, "same title", fast=5, slow=20, snapshot_id=SNAPSHOT_ID))
    compiled_and_waiting(submitted(people.submitter, "another title", fast=6, slow=20, snapshot_id=SNAPSHOT_ID))
    second = compiled_and_waiting(submitted(people.submitter, "same title", fast=7, slow=30, snapshot_id=SNAPSHOT_ID))
    client = session_client(people.reviewer)

    box = review_box(client, second)
    assert f'the previous job titled “same title” <a href="/ui/jobs/{first}">' in box
    rows = diff_rows(box)
    assert rows["strategy.params.fast"] == ("changed", "<code>5</code>", "<code>7</code>")
    assert rows["strategy.params.slow"][0] == "changed"

    # the first one has none before it
    assert "runspec-diff" not in review_box(client, first)


@pytest.mark.django_db
def test_a_child_with_its_parents_runspec_says_no_difference(people):
    # given a child renamed only: the name is the job's, not the run's
    a_snapshot(SNAPSHOT_ID)
    parent = done_job_with_run(people.submitter, "same run")
    child = compiled_and_waiting(spawned(parent, people.operator, "same run, renamed", fast=5, slow=20))
    box = review_box(session_client(people.reviewer), child)
    assert f"No difference from <code>{parent.job_id}</code> (same run)." in box
    assert 'class="review-table diff"' not in box


@pytest.mark.django_db
def test_a_job_with_neither_parent_nor_previous_shows_no_diff_and_no_error(people):
    a_snapshot(SNAPSHOT_ID)
    job_id = compiled_and_waiting(submitted(people.submitter, "alone", fast=5, slow=20, snapshot_id=SNAPSHOT_ID))
    box = review_box(session_client(people.reviewer), job_id)
    assert "runspec-diff" not in box and "Compared with" not in box
    assert 'role="alert"' not in box
    assert 'class="segment-timeline"' in box and 'class="review-table gate-plan"' in box


@pytest.mark.django_db
def test_a_previous_job_without_a_runspec_yet_is_named(people):
    a_snapshot(SNAPSHOT_ID)
    earlier = submitted(people.submitter, "not yet", fast=5, slow=20, snapshot_id=SNAPSHOT_ID)
    later = compiled_and_waiting(submitted(people.operator, "not yet", fast=6, slow=20, snapshot_id=SNAPSHOT_ID))
    box = review_box(session_client(people.reviewer), later)
    assert f"Job {earlier.job_id} has no compiled runspec yet" in box


@pytest.mark.django_db
def test_an_unreadable_runspec_of_the_other_job_is_a_message_not_a_500(people, artifact_root):
    # given the previous job's runspec.json changed behind the events' back
    a_snapshot(SNAPSHOT_ID)
    first = compiled_and_waiting(submitted(people.submitter, "tampered", fast=5, slow=20, snapshot_id=SNAPSHOT_ID))
    second = compiled_and_waiting(submitted(people.submitter, "tampered", fast=6, slow=20, snapshot_id=SNAPSHOT_ID))
    overwrite_artifact(f"jobs/{first}/outputs/runspec.json", b'{"forged": true}')
    before = counts()

    # when a reviewer opens the later job, then the page says so, shows the later runspec and writes nothing
    box = review_box(session_client(people.reviewer), second)
    assert f"The runspec of job {first} cannot be read" in box and "are not the ones recorded" in box
    assert "forged" not in box and "param fast" in box
    assert counts() == before


# -- in a browser ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_reviewer_reads_the_runspec_and_its_diff_then_approves(page, screenshot, people):
    # given a child job waiting at its runspec checkpoint
    a_snapshot(SNAPSHOT_ID)
    parent_id, child_id = a_child_waiting_at_runspec(people)

    # when the reviewer opens it
    page.goto(f"/ui/login?next=/ui/jobs/{child_id}")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("rita-pass-123")
    page.get_by_role("button", name="Log in").click()

    # then she sees the segment plan with its holdout, the gates and what changed from the parent
    expect(page.get_by_role("heading", name="Review: runspec")).to_be_visible()
    expect(page.get_by_role("figure")).to_contain_text("holdout")
    expect(page.locator(".segment.holdout .segment-bar")).to_have_count(1)
    expect(page.get_by_role("table").filter(has_text="Gates the run must pass")).to_contain_text("deflated_sharpe")
    diff = page.get_by_role("table").filter(has_text="What changed in the runspec")
    expect(diff.get_by_role("row").filter(has_text="strategy.params.fast")).to_contain_text("8")
    expect(page.get_by_role("link", name=parent_id)).not_to_have_count(0)
    screenshot("runspec-review")

    # when she approves, then the job moves on
    page.get_by_label("Comment").fill("Only fast changed")
    page.get_by_role("button", name="Approve runspec").click()
    expect(page.get_by_role("status")).to_contain_text(f"Approved runspec of job {child_id}")
    screenshot("runspec-approved")
    event = JobEvent.objects.get(job_id=child_id, event_type="APPROVED", step="runspec")
    assert event.actor == {"kind": "user", "id": "rita"} and event.payload["comment"] == "Only fast changed"
    assert JobState.objects.get(job_id=child_id).status != "waiting_approval"
