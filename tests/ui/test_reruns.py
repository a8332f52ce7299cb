"""Ask for an agent's output again from the job's page: the control per agent that ran, the request it makes,
and every refusal, with nothing written. The same page works without JavaScript (a plain form post)."""
import pytest

from jobs.models import JobEvent

from jobs import services
from workflow.orchestrator import run_pass

from ..builders import TINY_SNAPSHOT, a_snapshot, an_idea_for_tiny, as_actor, idea_worker, session_client, store_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting_idea(people, artifact_root):
    """An idea job waiting at its blueprint checkpoint: intent has run."""
    a_snapshot(TINY_SNAPSHOT)
    job, _ = services.submit_idea(idea=an_idea_for_tiny(), actor=as_actor(people.submitter),
                                  snapshot_id=TINY_SNAPSHOT)
    run_pass(idea_worker(), job_ids=[job.job_id])
    return job


def rerun_url(job) -> str:
    return f"/ui/jobs/{job.job_id}/rerun"


def test_the_page_offers_a_rerun_of_each_agent_that_ran_and_the_post_asks_for_it(people, waiting_idea):
    client = session_client(people.reviewer)
    page = client.get(f"/ui/jobs/{waiting_idea.job_id}").content.decode()
    assert 'id="agents-heading"' in page and "Run intent again" in page
    assert "Run report again" not in page  # report has not run
    assert 'name="csrfmiddlewaretoken"' in page

    response = client.post(rerun_url(waiting_idea), {"agent_id": "intent", "reason": "the windows look arbitrary"})

    assert response.status_code == 302 and response["Location"] == f"/ui/jobs/{waiting_idea.job_id}"
    event = JobEvent.objects.get(job_id=waiting_idea.job_id, event_type="RERUN_REQUESTED")
    assert (event.actor, event.payload["agent_id"], event.payload["reason"], event.payload["prompt_version"]) == (
        {"kind": "user", "id": "rita"}, "intent", "the windows look arbitrary", "v1")
    after = client.get(response["Location"]).content.decode()
    assert f"Asked for intent again (rerun {event.payload['rerun_id']}" in after
    assert "A rerun is pending." in after


def test_a_submitter_sees_no_control_and_cannot_post_one(people, waiting_idea):
    client = session_client(people.submitter)
    assert "Run intent again" not in client.get(f"/ui/jobs/{waiting_idea.job_id}").content.decode()
    before = store_snapshot()
    response = client.post(rerun_url(waiting_idea), {"agent_id": "intent", "reason": "r"})
    assert response.status_code == 403
    assert "only reviewers and operators ask for an agent&#x27;s output again" in response.content.decode()
    assert store_snapshot() == before


@pytest.mark.parametrize("form, status, says", [
    ({"agent_id": "intent"}, 400, "A rerun needs a reason."),
    ({"agent_id": "intent", "reason": "r", "prompt_version": "v9"}, 400, "has no prompt version"),
    ({"agent_id": "report", "reason": "r"}, 409, "agent report has not run"),
    ({"agent_id": "spawn", "reason": "r"}, 409, "is not part of the pipeline"),
])
def test_a_refused_rerun_renders_the_page_with_the_reason_and_writes_nothing(people, waiting_idea, form, status,
                                                                            says):
    client = session_client(people.reviewer)
    before = store_snapshot()
    response = client.post(rerun_url(waiting_idea), form)
    assert response.status_code == status
    assert says in response.content.decode()
    assert store_snapshot() == before


def test_wrong_method_missing_csrf_and_signed_out(people, waiting_idea):
    before = store_snapshot()
    assert session_client(people.reviewer).get(rerun_url(waiting_idea)).status_code == 405
    strict = session_client(people.reviewer, enforce_csrf_checks=True)
    assert strict.post(rerun_url(waiting_idea), {"agent_id": "intent", "reason": "r"}).status_code == 403
    from django.test import Client

    anonymous = Client().post(rerun_url(waiting_idea), {"agent_id": "intent", "reason": "r"})
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]
    assert store_snapshot() == before


def test_every_aria_describedby_on_the_job_page_names_an_element_of_the_page(people, waiting_idea):
    import re

    client = session_client(people.reviewer)
    pages = [client.get(f"/ui/jobs/{waiting_idea.job_id}").content.decode(),
             client.post(rerun_url(waiting_idea), {"agent_id": "intent"}).content.decode()]  # a form with errors
    for page in pages:
        ids = set(re.findall(r'\bid="([^"]+)"', page))
        named = {name for value in re.findall(r'aria-describedby="([^"]+)"', page) for name in value.split()}
        assert named, "no field describes itself"
        assert named <= ids, sorted(named - ids)
