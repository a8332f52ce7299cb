"""EAM_WEBHOOKS is checked at start-up (`manage.py check`, and the worker before it runs): a bad URL, a missing
secret or an unknown kind is a clear error, never a failure at the first event."""
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from notifications.models import Delivery
from notifications.webhooks import configuration_errors

from ..builders import SECRET, SECRET_ENV


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


def test_a_good_configuration_has_no_problem(secret):
    assert configuration_errors([{"name": "ops", "url": "https://hooks.example.com/eam", "secret_env": SECRET_ENV,
                                  "kinds": ["waiting", "error"]}]) == []
    assert configuration_errors([]) == []


@pytest.mark.parametrize("entry, message", [
    ({"name": "ops", "url": "ftp://hooks.example.com", "secret_env": SECRET_ENV},
     "EAM_WEBHOOKS[0].url: must be an http or https URL with a host"),
    ({"name": "ops", "url": "https://user:pw@hooks.example.com", "secret_env": SECRET_ENV},
     "EAM_WEBHOOKS[0].url: must not hold credentials"),
    ({"name": "ops", "url": "https://hooks.example.com", "secret_env": "EAM_TEST_NOT_SET"},
     "EAM_WEBHOOKS[0].secret_env: the environment variable EAM_TEST_NOT_SET is not set or empty"),
    ({"name": "ops", "url": "https://hooks.example.com", "secret_env": SECRET_ENV, "kinds": ["waiting", "paged"]},
     "EAM_WEBHOOKS[0].kinds: unknown kind 'paged'"),
    ({"name": "ops", "url": "https://hooks.example.com"}, "EAM_WEBHOOKS[0].secret_env: required"),
    ({"name": "ops", "url": "https://hooks.example.com", "secret_env": SECRET_ENV, "secret": "x"},
     "EAM_WEBHOOKS[0].secret: unknown key"),
    ("https://hooks.example.com", "EAM_WEBHOOKS[0]: must be a JSON object"),
])
def test_each_problem_is_named(secret, entry, message):
    errors = configuration_errors([entry])
    assert any(error.startswith(message) for error in errors), errors
    assert "user:pw" not in " ".join(errors) and SECRET not in " ".join(errors)


def test_names_are_unique(secret):
    hook = {"name": "ops", "url": "https://hooks.example.com", "secret_env": SECRET_ENV}
    assert configuration_errors([hook, hook]) == ["EAM_WEBHOOKS[1].name: 'ops' is used twice"]


@pytest.mark.django_db
def test_check_fails_on_a_bad_webhook_and_nothing_is_written(settings, secret):
    settings.EAM_WEBHOOKS = [{"name": "ops", "url": "not a url", "secret_env": SECRET_ENV}]
    with pytest.raises(SystemCheckError, match=r"notifications\.E001.*must be an http or https URL"):
        call_command("check", tags=["notifications"])
    settings.EAM_WEBHOOKS = {"name": "ops"}
    with pytest.raises(SystemCheckError, match="must be a JSON list"):
        call_command("check", tags=["notifications"])
    assert Delivery.objects.count() == 0
