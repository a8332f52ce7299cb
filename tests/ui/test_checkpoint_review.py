"""What each checkpoint of an idea job shows on its /ui page, the improvements form (a subset accepted, none
refused, CSRF), an artifact changed behind the events' back, and the lineage tree."""
import re

import pytest

from jobs.models import JobEvent, JobSpec, JobState

from ..builders import (
    TINY_SNAPSHOT, a_snapshot, an_idea_job_at, counts, overwrite_artifact, session_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tiny(db, artifact_root):
    a_snapshot(TINY_SNAPSHOT)


def page_of(client, job_id) -> str:
    response = client.get(f"/ui/jobs/{job_id}")
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def review_box(page: str) -> str:
    return page[page.index('id="checkpoint-review"'):page.index('id="summary-heading"')]


def test_the_blueprint_checkpoint_shows_the_blueprint_as_tables(people):
    job_id = an_idea_job_at("blueprint", people)
    box = review_box(page_of(session_client(people.reviewer), job_id))
    for text in ("<caption>Strategy</caption>", "sma_crossover", "param fast", "50", "param slow", "200",
                 "AAA, BBB", "period.start", "2019-01-01", "fee_bps", "test_months", "walk_forward"):
        assert text in box, text
    assert f'href="/jobs/{job_id}/artifacts/outputs/blueprint.json"' in box  # the raw file, one click away


def test_the_strategy_spec_checkpoint_shows_parameters_formulas_and_conventions(people):
    job_id = an_idea_job_at("strategy_spec", people)
    box = review_box(page_of(session_client(people.reviewer), job_id))
    for text in ("Parameters (every one, with its default resolved)", "bars of the fast moving average",
                 "s(t) = sign(SMA_fast(t) - SMA_slow(t))", "from_bar_t_plus_1",
                 "The signal is computed at the close of bar t", "Risk rules", "max_gross_leverage",
                 "Universe and data window", "warmup_bars", "long_only"):
        assert text in box, text


def test_the_runspec_checkpoint_shows_the_compiled_run_and_its_segments(people):
    job_id = an_idea_job_at("runspec", people)
    box = review_box(page_of(session_client(people.reviewer), job_id))
    for text in ("<caption>Segments</caption>", "seg_001", "holdout", "kernel_version", "eam-research-2",
                 "param fast", "1,044"):
        assert text in box, text


def test_the_trace_preview_checkpoint_shows_the_trace_as_a_table_with_its_summary(people):
    job_id = an_idea_job_at("trace_preview", people)
    box = review_box(page_of(session_client(people.reviewer), job_id))
    assert "Trace: one row per bar and symbol" in box and "Segment <code>seg_001</code>, 20 bars" in box
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", box[box.index("review-table trace"):]).group(1)
    assert re.findall(r">(\w+)</th>", header)[:4] == ["date", "symbol", "close", "sma_fast"]
    assert box.count('<th scope="row">2019-12-31</th>') == 2  # one row per symbol of the first bar
    assert "122.4" in box  # AAA's close, four significant digits


def test_an_artifact_whose_bytes_changed_is_not_shown_but_named_as_an_integrity_error(people):
    job_id = an_idea_job_at("blueprint", people)
    overwrite_artifact(f"jobs/{job_id}/outputs/blueprint.json", b'{"strategy": {"family": "forged_family"}}')
    page = page_of(session_client(people.reviewer), job_id)
    box = review_box(page)
    assert "forged_family" not in page
    assert 'class="error-detail integrity-error" role="alert"' in box and "are not the ones recorded" in box


# -- the improvements form ---------------------------------------------------------------------------------

@pytest.fixture
def at_improvements(people):
    return an_idea_job_at("improvements", people)


def proposal_ids(job_id) -> list[str]:
    from jobs import services

    job = JobSpec.objects.get(job_id=job_id)
    return [p["proposal_id"] for p in services.proposals_under_review(job, job.state)]


def test_the_improvements_are_a_list_with_a_checked_box_per_proposal(people, at_improvements):
    box = review_box(page_of(session_client(people.reviewer), at_improvements))
    ids = proposal_ids(at_improvements)
    assert len(ids) >= 2
    for proposal_id in ids:
        box_tag = re.search(rf'<input type="checkbox" name="accept" value="{proposal_id}"[^>]*>', box).group(0)
        assert 'form="approve-form"' in box_tag and " checked" in box_tag
        assert f'<label for="accept_{proposal_id}">' in box
    assert 'id="proposals-help"' in box  # what aria-describedby names exists
    assert "Rationale" in box and "Family" in box and "sma_crossover fast 50 -&gt; 38" in box


def test_a_reviewer_who_may_not_decide_sees_the_proposals_without_boxes(people, at_improvements):
    box = review_box(page_of(session_client(people.submitter), at_improvements))
    assert 'type="checkbox"' not in box and "sma_crossover fast 50 -&gt; 38" in box


def test_approving_improvements_with_a_subset_records_the_accepted_ids(people, at_improvements):
    job_id, ids = at_improvements, proposal_ids(at_improvements)
    sha256 = JobState.objects.get(job_id=job_id).review_sha256
    client = session_client(people.reviewer)
    response = client.post(f"/ui/jobs/{job_id}/approve", {"step": "improvements", "artifact_sha256": sha256,
                                                          "accept": [ids[1]]}, follow=True)
    assert response.redirect_chain == [(f"/ui/jobs/{job_id}", 302)]
    assert f"accepting 1 proposal ({ids[1]})" in response.content.decode()
    event = JobEvent.objects.get(job_id=job_id, event_type="APPROVED", step="improvements")
    assert event.payload["accepted"] == [ids[1]]


def test_approving_improvements_with_none_checked_is_refused_and_writes_nothing(people, at_improvements):
    job_id = at_improvements
    sha256 = JobState.objects.get(job_id=job_id).review_sha256
    before = counts()
    response = session_client(people.reviewer).post(
        f"/ui/jobs/{job_id}/approve", {"step": "improvements", "artifact_sha256": sha256, "comment": "none"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Accept at least one proposal, or reject instead." in page
    boxes = re.findall(r'<input type="checkbox"[^>]*>', review_box(page))
    assert boxes and not any(" checked" in tag for tag in boxes)  # the boxes as posted: none
    assert counts() == before
    assert JobState.objects.get(job_id=job_id).waiting_step == "improvements"


def test_a_proposal_id_not_under_review_is_refused_and_writes_nothing(people, at_improvements):
    job_id = at_improvements
    before = counts()
    response = session_client(people.reviewer).post(
        f"/ui/jobs/{job_id}/approve", {"step": "improvements", "accept": ["0123456789ab"]})
    assert response.status_code == 400 and "accept names a proposal that is not under review" in response.content.decode()
    assert counts() == before


def test_the_improvements_form_without_its_csrf_token_is_refused(people, at_improvements):
    job_id, ids = at_improvements, proposal_ids(at_improvements)
    before = counts()
    client = session_client(people.reviewer, enforce_csrf_checks=True)
    response = client.post(f"/ui/jobs/{job_id}/approve", {"step": "improvements", "accept": ids})
    assert response.status_code == 403
    assert counts() == before


# -- lineage -----------------------------------------------------------------------------------------------

def test_the_lineage_tree_links_the_root_and_its_children(people):
    root = an_idea_job_at("done", people)
    children = list(JobSpec.objects.filter(parent_job_id=root).order_by("created_at", "job_id")
                    .values_list("job_id", flat=True))
    assert children
    client = session_client(people.reviewer)
    page = page_of(client, root)
    tree = page[page.index('id="lineage-heading"'):]
    tree = tree[:tree.index("</section>")]
    assert f"<strong><code>{root}</code></strong> (this job)" in tree
    for child in children:
        assert f'<a href="/ui/jobs/{child}"><code>{child}</code></a>' in tree
    assert tree.count("<ul") == tree.count("</ul>") == 2  # the root's list and its children's
    assert "generation 1" in tree

    child_page = page_of(client, children[0])
    child_tree = child_page[child_page.index('id="lineage-heading"'):]
    assert f'<a href="/ui/jobs/{root}"><code>{root}</code></a>' in child_tree
    assert f"<strong><code>{children[0]}</code></strong> (this job)" in child_tree
