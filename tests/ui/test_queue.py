"""The "waiting for me" queue lists exactly the jobs the job's page would let this person decide."""
import json
import re
import shutil
from pathlib import Path

import pytest

from jobs import selectors
from jobs.models import JobState

from ..builders import session_client, submitted, waiting_job

pytestmark = pytest.mark.django_db

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture
def relaxed_bundle(settings, tmp_path):
    """A policy root with the default bundles and `relaxed_v1`, whose approvals do not ask for four eyes."""
    for name in ("default_v1.json", "default_v2.json"):
        shutil.copy(REPO_POLICIES / name, tmp_path / name)
    bundle = json.loads((REPO_POLICIES / "default_v1.json").read_text())
    bundle.update(policy_bundle_id="relaxed_v1", approvals={"four_eyes": False})
    (tmp_path / "relaxed_v1.json").write_text(json.dumps(bundle))
    settings.EAM_POLICY_ROOT = str(tmp_path)
    return "relaxed_v1"


def queue_of(user) -> list[str]:
    html = session_client(user).get("/ui/jobs/waiting-for-me").content.decode()
    return [state.job_id for state in JobState.objects.order_by("created_at", "job_id") if state.job_id in html]


def decidable_by(user) -> list[str]:
    return [state.job_id for state in JobState.objects.order_by("created_at", "job_id")
            if selectors.job_detail(job_id=state.job_id, user=user)["can_approve"]]


@pytest.mark.parametrize("four_eyes_setting", [True, False])
def test_queue_matches_what_each_person_may_decide(people, relaxed_bundle, settings, four_eyes_setting):
    # given jobs by two submitters, under a strict and a relaxed bundle, some waiting, and a reviewer who submits
    settings.EAM_FOUR_EYES = four_eyes_setting
    people.submitter.groups.add(*people.reviewer.groups.all())
    for by in (people.submitter, people.reviewer):
        waiting_job(by, f"strict by {by.username}")
        waiting_job(by, f"relaxed by {by.username}", policy_bundle_id="relaxed_v1")
        submitted(by, f"queued by {by.username}")

    # then each person's queue is exactly what the job pages would let them decide
    for person in (people.submitter, people.reviewer, people.operator, people.nobody, people.superuser):
        assert queue_of(person) == decidable_by(person), person.username
    own_relaxed = "relaxed by rita"
    rita_queue = [JobState.objects.get(job_id=j).job.spec["blueprint"]["name"] for j in queue_of(people.reviewer)]
    assert (own_relaxed in rita_queue) is (not four_eyes_setting)
    assert "strict by rita" not in rita_queue and "strict by sam" in rita_queue
    assert queue_of(people.nobody) == [] and queue_of(people.operator) == []


@pytest.mark.parametrize("base, newest_first", [("/ui/jobs/waiting-for-me?", False),
                                                 ("/ui/jobs?status=waiting_approval&", True)])
def test_lists_page_with_a_cursor(people, monkeypatch, base, newest_first):
    monkeypatch.setattr("ui.selectors.PAGE_SIZE", 2)
    submitted(people.submitter, "not waiting")
    jobs = [waiting_job(people.submitter, f"paged-{i}").job_id for i in range(5)]
    order = jobs[::-1] if newest_first else jobs  # the queue: the longest waiting first
    client = session_client(people.reviewer)
    pages, url = [], base
    while url:
        html = client.get(url).content.decode()
        pages.append([j for j in order if j in html])
        cursor = re.search(r'cursor=([^"]+)" rel="next"', html)
        url = f"{base}cursor={cursor.group(1)}" if cursor else None
    assert pages == [order[0:2], order[2:4], order[4:5]]
