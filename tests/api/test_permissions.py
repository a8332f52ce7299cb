"""Who may call what: every write endpoint for every role, the three ways to authenticate, public reads."""
import base64

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import JobState

from ..builders import (
    MONTH, SNAPSHOT, TINY_SYMBOLS, a_blueprint, a_job_spec, a_snapshot, an_idea, assert_error, client_for, counts,
    error_job, post_json, submitted, waiting_job,
)

pytestmark = pytest.mark.django_db

SUBMITS = ("submit_spec", "submit_blueprint", "submit_idea")
DECISIONS = ("approve", "reject")
OPERATIONS = ("retry", "cancel")
ROLES = ("anonymous", "nobody", "submitter", "reviewer", "operator", "superuser")
MAY = {
    "anonymous": (),
    "nobody": (),
    "submitter": SUBMITS,
    "reviewer": DECISIONS,
    "operator": OPERATIONS,
    "superuser": SUBMITS + DECISIONS + OPERATIONS,
}


def request_for(endpoint: str, people, name: str):
    """(url, body, status when allowed) of one write, against a job in the state it needs."""
    if endpoint == "submit_spec":
        return "/jobs", a_job_spec(a_blueprint(name=name), snapshot_id=SNAPSHOT), 201
    if endpoint == "submit_blueprint":
        return "/jobs/blueprint?snapshot_id=api_snap", a_blueprint(name=name), 201
    if endpoint == "submit_idea":
        return "/jobs/idea?snapshot_id=api_snap", an_idea(name, symbols=TINY_SYMBOLS), 201
    if endpoint in DECISIONS:
        job = waiting_job(people.submitter, name)
        body = {"comment": "fine"} if endpoint == "approve" else {"reason": "not convinced"}
        return f"/jobs/{job.job_id}/{endpoint}?step=runspec", body, 200
    if endpoint == "retry":
        return f"/jobs/{error_job(people.submitter, name).job_id}/retry", {"reason": "fixed the data"}, 200
    return f"/jobs/{waiting_job(people.submitter, name).job_id}/cancel", {}, 200


@pytest.mark.parametrize("endpoint", SUBMITS + DECISIONS + OPERATIONS)
@pytest.mark.parametrize("role", ROLES)
def test_every_write_for_every_role(people, role, endpoint):
    # given a job in the state the endpoint needs, and a caller in a role
    url, body, allowed_status = request_for(endpoint, people, name=f"{role}-{endpoint}")
    user = None if role == "anonymous" else getattr(people, role)
    before = counts()

    # when the caller asks
    response = post_json(client_for(user), url, body)

    # then the documented answer, and only an allowed call writes
    if endpoint in MAY[role]:
        assert response.status_code == allowed_status, response.content
        specs, events = counts()
        assert events == before[1] + 1
        assert specs == before[0] + (1 if endpoint in SUBMITS else 0)
    elif role == "anonymous":
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Basic")
        assert counts() == before
    else:
        assert_error(response, 403, "permission_denied")
        assert counts() == before


@pytest.mark.parametrize("endpoint", DECISIONS)
def test_four_eyes_holds_for_reviewers_and_superusers(people, endpoint):
    # given jobs submitted by a superuser and by a submitter who is also a reviewer
    from django.contrib.auth.models import Group

    people.submitter.groups.add(Group.objects.get(name="reviewers"))
    body = {"reason": "mine"} if endpoint == "reject" else {}
    for user in (people.superuser, people.submitter):
        job = waiting_job(user, name=f"own-{endpoint}-{user.username}")
        before = counts()
        # when they decide their own checkpoint, then four eyes refuses it and nothing is written
        response = post_json(client_for(user), f"/jobs/{job.job_id}/{endpoint}?step=runspec", body)
        assert_error(response, 403, "four_eyes")
        assert counts() == before
        detail = client_for(user).get(f"/jobs/{job.job_id}").json()
        assert detail["can_approve"] is False and detail["can_reject"] is False


def test_resubmitting_the_same_content_is_200_and_writes_nothing(people):
    client = client_for(people.submitter)
    first = post_json(client, "/jobs/blueprint?snapshot_id=api_snap", a_blueprint(name="twice"))
    assert first.status_code == 201 and first.json()["created"] is True
    assert first["Location"] == f"/jobs/{first.json()['job_id']}"
    before = counts()
    again = post_json(client_for(people.superuser), "/jobs/blueprint?snapshot_id=api_snap", a_blueprint(name="twice"))
    assert again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["created"] is False
    assert counts() == before


def test_default_snapshot_is_used_when_none_is_given(people, settings):
    settings.EAM_DEFAULT_SNAPSHOT_ID = a_snapshot("fallback_snap", span=MONTH).snapshot_id
    response = post_json(client_for(people.submitter), "/jobs/blueprint", a_blueprint(name="fallback"))
    assert response.status_code == 201
    assert response.json()["snapshot_id"] == "fallback_snap"


def test_allowed_actions_follow_role_state_and_four_eyes(people):
    waiting = waiting_job(people.submitter, "acts-waiting")
    broken = error_job(people.submitter, "acts-error")

    def actions(user, job):
        body = client_for(user).get(f"/jobs/{job.job_id}").json()
        return {k: body[k] for k in ("can_approve", "can_reject", "can_retry", "can_cancel")}

    assert actions(people.submitter, waiting) == dict(can_approve=False, can_reject=False, can_retry=False, can_cancel=False)
    assert actions(people.reviewer, waiting) == dict(can_approve=True, can_reject=True, can_retry=False, can_cancel=False)
    assert actions(people.operator, waiting) == dict(can_approve=False, can_reject=False, can_retry=False, can_cancel=True)
    assert actions(people.operator, broken) == dict(can_approve=False, can_reject=False, can_retry=True, can_cancel=True)
    assert actions(people.reviewer, broken)["can_approve"] is False  # not waiting
    assert actions(people.superuser, waiting) == dict(can_approve=True, can_reject=True, can_retry=False, can_cancel=True)


# -- the ways in -----------------------------------------------------------------------------------------------

def test_basic_auth_and_bad_credentials(people):
    client = APIClient()
    good = base64.b64encode(b"rita:rita-pass-123").decode()
    assert client.get("/jobs", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200
    bad = base64.b64encode(b"rita:wrong").decode()
    assert_error(client.get("/jobs", HTTP_AUTHORIZATION=f"Basic {bad}"), 401, "authentication_failed")
    assert_error(client.get("/jobs", HTTP_AUTHORIZATION="Token not-a-token"), 401, "authentication_failed")


def test_session_writes_need_the_csrf_token(people):
    job = waiting_job(people.submitter, "csrf")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people.reviewer)
    assert client.get(f"/jobs/{job.job_id}").status_code == 200  # reads need no token
    before = counts()
    refused = post_json(client, f"/jobs/{job.job_id}/approve?step=runspec", {})
    assert_error(refused, 403, "csrf_failed")
    assert counts() == before

    client.get("/api/docs")  # any page that renders the token sets the cookie; take it from the session
    from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    accepted = post_json(client, f"/jobs/{job.job_id}/approve?step=runspec", {},
                         HTTP_X_CSRFTOKEN=_mask_cipher_secret(secret))
    assert accepted.status_code == 200, accepted.content
    assert JobState.objects.get(job_id=job.job_id).status == "queued"


@pytest.mark.parametrize("url", ["/jobs", "/registry", "/snapshots", "/policies"])
def test_reads_need_a_user_unless_public_read(people, settings, url):
    assert_error(APIClient().get(url), 401, "not_authenticated")
    assert client_for(people.nobody).get(url).status_code == 200
    settings.EAM_PUBLIC_READ = True
    assert APIClient().get(url).status_code == 200


def test_public_read_never_opens_writes(people, settings):
    settings.EAM_PUBLIC_READ = True
    job = waiting_job(people.submitter, "public")
    detail = APIClient().get(f"/jobs/{job.job_id}")
    assert detail.status_code == 200 and detail.json()["can_approve"] is False
    before = counts()
    assert_error(post_json(APIClient(), f"/jobs/{job.job_id}/approve?step=runspec", {}), 401, "not_authenticated")
    assert_error(post_json(APIClient(), "/jobs/blueprint?snapshot_id=s", a_blueprint(name="api test")), 401,
                 "not_authenticated")
    assert counts() == before


def test_health_schema_and_docs_are_public(db):
    client = APIClient()
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/api/schema")
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.1")
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "cdn" not in page.lower() and "/api/docs/assets/swagger-ui-bundle.js" in page
    asset = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and b"".join(asset.streaming_content)
    assert client.get("/api/docs/assets/LICENSE").status_code == 404


def test_submitted_job_is_visible_to_other_users(people):
    job = submitted(people.submitter, "visible")
    listed = client_for(people.operator).get("/jobs").json()["results"]
    assert [j["job_id"] for j in listed] == [job.job_id]


def test_a_revoked_token_is_refused_on_the_next_request(people):
    client = client_for(people.reviewer)
    job = waiting_job(people.submitter, "revoked")
    assert client.get(f"/jobs/{job.job_id}").status_code == 200
    written = counts()
    Token.objects.filter(user=people.reviewer).delete()
    assert_error(client.get(f"/jobs/{job.job_id}"), 401, "authentication_failed")
    assert_error(post_json(client, f"/jobs/{job.job_id}/approve?step=runspec", {}), 401, "authentication_failed")
    assert counts() == written


def test_a_deactivated_users_token_is_refused_on_the_next_request(people):
    client = client_for(people.reviewer)
    job = waiting_job(people.submitter, "deactivated")
    assert client.get(f"/jobs/{job.job_id}").status_code == 200
    type(people.reviewer).objects.filter(pk=people.reviewer.pk).update(is_active=False)  # no signal sent
    assert_error(client.get(f"/jobs/{job.job_id}"), 401, "authentication_failed")


def test_a_lost_permission_counts_on_the_next_request(people):
    from django.contrib.auth.models import Group

    job = waiting_job(people.submitter, "lost-permission")
    client = client_for(people.reviewer)
    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is True

    people.reviewer.groups.remove(Group.objects.get(name="reviewers"))

    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is False
    before = counts()
    assert_error(post_json(client, f"/jobs/{job.job_id}/approve?step=runspec", {}), 403, "permission_denied")
    assert counts() == before


def test_a_group_losing_its_permission_counts_on_the_next_request(people):
    from django.contrib.auth.models import Group

    job = waiting_job(people.submitter, "group-permission")
    client = client_for(people.reviewer)
    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is True

    Group.objects.get(name="reviewers").permissions.clear()

    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is False
