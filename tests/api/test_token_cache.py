"""A token's user is remembered for EAM_TOKEN_CACHE_SECONDS (jobs.api.authentication): a revoked token, a
deactivated user or a lost permission is refused at once in this process, and after the TTL otherwise."""
import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from jobs.api import authentication

from .builders import assert_error, client_for, counts, post_json, waiting_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand: the TTL is tested without sleeping."""
    moment = [1000.0]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: moment[0])
    return moment


def remembered(user) -> bool:
    return Token.objects.get(user=user).key in authentication._remembered


def test_a_deleted_token_is_refused_at_once(people):
    client = client_for(people.reviewer)
    assert client.get("/jobs").status_code == 200
    assert remembered(people.reviewer)

    Token.objects.filter(user=people.reviewer).delete()  # one post_delete per token, as the admin does

    assert_error(client.get("/jobs"), 401, "authentication_failed")


def test_a_deactivated_user_is_refused_at_once(people):
    client = client_for(people.reviewer)
    assert client.get("/jobs").status_code == 200

    people.reviewer.is_active = False
    people.reviewer.save()

    assert_error(client.get("/jobs"), 401, "authentication_failed")


def test_a_lost_permission_counts_at_once(people):
    job = waiting_job(people.submitter, "lost-permission")
    client = client_for(people.reviewer)
    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is True

    people.reviewer.groups.remove(Group.objects.get(name="reviewers"))

    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is False
    before = counts()
    assert_error(post_json(client, f"/jobs/{job.job_id}/approve?step=runspec", {}), 403, "permission_denied")
    assert counts() == before


def test_a_group_losing_its_permission_counts_at_once(people):
    job = waiting_job(people.submitter, "group-permission")
    client = client_for(people.reviewer)
    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is True

    Group.objects.get(name="reviewers").permissions.clear()

    assert client.get(f"/jobs/{job.job_id}").json()["can_approve"] is False


def test_a_change_without_a_signal_is_seen_after_the_ttl(people, settings, clock):
    settings.EAM_TOKEN_CACHE_SECONDS = 5
    client = client_for(people.reviewer)
    assert client.get("/jobs").status_code == 200

    # QuerySet.update() sends no signal (nor does a change made by another process)
    type(people.reviewer).objects.filter(pk=people.reviewer.pk).update(is_active=False)
    clock[0] += 4
    assert client.get("/jobs").status_code == 200  # still within the documented TTL
    clock[0] += 2
    assert_error(client.get("/jobs"), 401, "authentication_failed")


def test_a_lookup_that_races_a_change_is_not_remembered(people, monkeypatch):
    # given a change that lands while a request is reading the token (after its read, before it stores)
    original = authentication.TokenAuthentication.authenticate_credentials

    def read_then_change(self, key):
        found = original(self, key)
        authentication.forget_tokens()
        return found

    monkeypatch.setattr(authentication.TokenAuthentication, "authenticate_credentials", read_then_change)
    assert client_for(people.reviewer).get("/jobs").status_code == 200

    # then what it read is not kept for the next request
    assert not remembered(people.reviewer)


def test_zero_seconds_turns_the_memory_off(people, settings):
    settings.EAM_TOKEN_CACHE_SECONDS = 0
    assert client_for(people.reviewer).get("/jobs").status_code == 200
    assert not remembered(people.reviewer)
