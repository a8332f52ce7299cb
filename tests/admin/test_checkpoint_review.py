"""The admin's job page shows what each checkpoint of an idea job reviews, refuses to show a file whose bytes
changed, and approves improvements with the checked proposals only (none checked: refused, nothing written)."""
import re

import pytest

from jobs import services
from jobs.models import JobEvent, JobSpec, JobState

from ..builders import (
    ADMIN, TINY_SNAPSHOT, a_snapshot, an_idea_job_at, counts, job_page, overwrite_artifact, session_client, texts,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _tiny(db, artifact_root):
    a_snapshot(TINY_SNAPSHOT)


def admin_page(people, job_id) -> str:
    response = session_client(people.reviewer).get(job_page(JobSpec.objects.get(job_id=job_id)))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("step, shown", [
    ("blueprint", ["<caption>Strategy</caption>", "param fast", "AAA, BBB", "fee_bps", "walk_forward"]),
    ("strategy_spec", ["bars of the slow moving average", "s(t) = sign(SMA_fast(t) - SMA_slow(t))", "Risk rules"]),
    ("trace_preview", ["Trace: one row per bar and symbol", '<th scope="row">2019-12-31</th>', "sma_slow"]),
])
def test_the_admin_page_shows_what_the_checkpoint_reviews(people, step, shown):
    job_id = an_idea_job_at(step, people)
    page = admin_page(people, job_id)
    for text in shown:
        assert text in page, text
    assert 'class="raw-artifact"' in page


def test_a_changed_artifact_is_an_integrity_error_on_the_admin_page(people):
    job_id = an_idea_job_at("blueprint", people)
    overwrite_artifact(f"jobs/{job_id}/outputs/blueprint.json", b'{"strategy": {"family": "forged_family"}}')
    page = admin_page(people, job_id)
    assert "forged_family" not in page and "integrity-error" in page


@pytest.fixture
def at_improvements(people):
    job_id = an_idea_job_at("improvements", people)
    job = JobSpec.objects.get(job_id=job_id)
    return job, [p["proposal_id"] for p in services.proposals_under_review(job, job.state)]


def test_the_improvements_have_a_checked_box_each_in_the_approve_form(people, at_improvements):
    job, ids = at_improvements
    page = admin_page(people, job.job_id)
    tags = re.findall(r'<input type="checkbox" name="accept"[^>]*>', page)
    assert len(tags) == len(ids) and all('form="approve-form"' in t and " checked" in t for t in tags)


def test_approving_a_subset_in_the_admin_records_it(people, at_improvements):
    job, ids = at_improvements
    response = session_client(people.reviewer).post(f"{ADMIN}{job.job_id}/approve/", {
        "step": "improvements", "artifact_sha256": job.state.review_sha256, "accept": ids[:1]})
    assert response.status_code == 302
    assert texts(response) == [f"Approved checkpoint improvements of job {job.job_id}, accepting 1 proposal(s): {ids[0]}."]
    assert JobEvent.objects.get(job=job, event_type="APPROVED", step="improvements").payload["accepted"] == ids[:1]


def test_approving_none_in_the_admin_is_refused_and_writes_nothing(people, at_improvements):
    job, _ = at_improvements
    before = counts()
    response = session_client(people.reviewer).post(f"{ADMIN}{job.job_id}/approve/", {
        "step": "improvements", "artifact_sha256": job.state.review_sha256})
    assert response.status_code == 302 and response["Location"] == job_page(job)
    assert texts(response) == ["Not approved: accept at least one proposal, or reject instead"]
    assert counts() == before and JobState.objects.get(job=job).waiting_step == "improvements"
