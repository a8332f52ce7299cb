"""What the notification tests need: a webhook receiver on loopback (the model server's real HTTP server, answering
with scripted statuses), a webhook configured to reach it, people with e-mail addresses, and the planner's cursor
placed just before the test's own events."""
import json

from django.db import connection

from notifications.models import PlanCursor

from .model_server import Reply, a_model_server

SECRET_ENV, SECRET = "EAM_TEST_HOOK_SECRET", "s3cret-for-tests-only"


def a_webhook_receiver(*statuses: int):
    """A receiver on 127.0.0.1 (a free port) answering `statuses` in order, then 200; `.url`, `.requests`."""
    return a_model_server(*(Reply(status=status, body=b"") for status in statuses), answer=lambda body: "ok")


def hook_config(url: str, *, name: str = "ops", kinds=None) -> list[dict]:
    """EAM_WEBHOOKS with one webhook to `url`, signed with SECRET (from SECRET_ENV)."""
    entry = {"name": name, "url": url, "secret_env": SECRET_ENV}
    if kinds is not None:
        entry["kinds"] = list(kinds)
    return [entry]


def hook_env(env: dict, url: str, **options) -> dict:
    """A child process's environment with the webhook to `url` and its secret."""
    return {**env, "EAM_WEBHOOKS": json.dumps(hook_config(url, **options)), SECRET_ENV: SECRET}


def with_email(user, address: str | None = None):
    user.email = address if address is not None else f"{user.username}@example.org"
    user.save(update_fields=["email"])
    return user


def last_event_id_handed_out() -> int:
    """The id of the last event row ever inserted (rolled back ones too): the next event gets a higher one."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM "
                           "jobs_jobevent_id_seq")
        else:
            cursor.execute("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs_jobevent'), 0)")
        return cursor.fetchone()[0]


def plan_from_here() -> None:
    """Place the planner's cursor just before the next event: ids left unused by earlier tests (rolled back) are
    not a gap the planner waits on."""
    PlanCursor.objects.update_or_create(name="events", defaults={"last_event_id": last_event_id_handed_out()})
