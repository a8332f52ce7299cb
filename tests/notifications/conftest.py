"""Fixtures of the notification tests; the builders are in tests/builders/."""
import pytest

from ..builders import MONTH, SNAPSHOT, SECRET, SECRET_ENV, a_snapshot, a_webhook_receiver, hook_config, \
    plan_from_here


@pytest.fixture(autouse=True)
def _snapshot_and_cursor(db):
    """The snapshot the jobs here are submitted against, and the planner's cursor just before this test's events."""
    a_snapshot(SNAPSHOT, span=MONTH)
    plan_from_here()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that answers 200; `receiver.script(Reply(...))` changes that."""
    with a_webhook_receiver() as server:
        yield server


@pytest.fixture
def hooked(receiver, settings, monkeypatch):
    """EAM_WEBHOOKS with one webhook to `receiver`, its secret in the environment."""
    settings.EAM_WEBHOOKS = hook_config(receiver.url)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return receiver
