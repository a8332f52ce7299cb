"""Webhooks to a real receiver on loopback: the waiting notification arrives signed; failures are retried with
backoff, each attempt recorded; a refusal (4xx) is final."""
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery, DeliveryAttempt
from notifications.services import plan, run_pass

from ..builders import SECRET, Reply, a_closed_port, hook_config, waiting_job

pytestmark = pytest.mark.django_db

LATER = timedelta(hours=1)  # past any retry delay of the test settings


def webhook_deliveries():
    return Delivery.objects.filter(channel=Delivery.Channel.WEBHOOK)


def attempts_of(delivery) -> list[tuple]:
    return list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")
                .values_list("number", "outcome", "http_status"))


def test_the_waiting_notification_arrives_with_a_valid_signature(hooked, people):
    # given a job that reached WAITING_APPROVAL
    job = waiting_job(people.submitter, "momentum on the tiny snapshot")

    # when a pass runs
    summary = run_pass()

    # then the receiver got one POST whose signature is the HMAC-SHA256 of "<timestamp>.<raw body>"
    [request] = hooked.requests
    timestamp, raw = request.headers["x-eam-timestamp"], request.raw
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert request.headers["x-eam-signature"] == f"sha256={expected}"
    assert abs(int(timestamp) - timezone.now().timestamp()) < 60
    body = json.loads(raw)
    delivery = webhook_deliveries().get()
    assert request.headers["x-eam-delivery"] == str(delivery.id) == str(body["delivery_id"])
    assert raw == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()  # canonical
    assert body["kind"] == "waiting"
    assert body["job"] == {"job_id": job.job_id, "title": "momentum on the tiny snapshot",
                           "status": "waiting_approval"}
    assert body["event"]["event_type"] == "WAITING_APPROVAL" and body["event"]["step"] == "runspec"
    assert set(body["event"]) == {"job_id", "seq", "event_type", "step", "actor", "recorded_at", "payload"}
    assert body["url"] == f"http://localhost:8000/ui/jobs/{job.job_id}"
    # and the delivery is recorded as delivered on its first attempt
    assert delivery.status == Delivery.Status.DELIVERED and delivery.attempts == 1
    assert attempts_of(delivery) == [(1, "delivered", 200)]
    assert summary.count("delivered") >= 1


def test_a_tampered_body_does_not_verify(hooked, people):
    waiting_job(people.submitter, "tamper")
    run_pass()
    [request] = hooked.requests
    timestamp = request.headers["x-eam-timestamp"]
    forged = request.raw.replace(b'"waiting"', b'"finished"')
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + forged, hashlib.sha256).hexdigest()
    assert request.headers["x-eam-signature"] != f"sha256={mac}"


def test_two_failures_then_the_third_attempt_is_delivered_and_recorded(hooked, people, settings):
    # given a receiver that answers 500 twice, then 200
    settings.EAM_NOTIFY_RETRY_SECONDS = 30
    hooked.script(Reply(status=500, body=b""), Reply(status=503, body=b""))
    waiting_job(people.submitter, "flaky receiver")
    start = timezone.now()

    # when passes run: the first now, one before the retry is due, then after each backoff
    run_pass(now=start)
    delivery = webhook_deliveries().get()
    assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 1
    first_retry = delivery.next_attempt_at
    assert start + timedelta(seconds=15) <= first_retry <= start + timedelta(seconds=30)  # base, with jitter
    run_pass(now=start + timedelta(seconds=14))  # not due yet: nothing sent
    assert len(hooked.requests) == 1
    run_pass(now=start + LATER)
    delivery.refresh_from_db()
    assert delivery.attempts == 2
    assert start + LATER + timedelta(seconds=30) <= delivery.next_attempt_at <= start + LATER + timedelta(seconds=60)
    run_pass(now=start + 2 * LATER)

    # then the third attempt delivered it, and exactly three attempts are recorded with their statuses
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.DELIVERED and delivery.attempts == 3
    assert attempts_of(delivery) == [(1, "retry", 500), (2, "retry", 503), (3, "delivered", 200)]
    assert len(hooked.requests) == 3
    assert len({r.headers["x-eam-delivery"] for r in hooked.requests}) == 1  # one delivery id, for deduplication
    # and a later pass sends nothing more
    run_pass(now=start + 3 * LATER)
    assert len(hooked.requests) == 3 and DeliveryAttempt.objects.filter(delivery=delivery).count() == 3


def test_a_400_fails_at_once(hooked, people):
    hooked.script(Reply(status=400, body=b""))
    waiting_job(people.submitter, "refused")
    start = timezone.now()
    run_pass(now=start)
    run_pass(now=start + LATER)
    delivery = webhook_deliveries().get()
    assert delivery.status == Delivery.Status.FAILED and delivery.next_attempt_at is None
    assert attempts_of(delivery) == [(1, "failed", 400)]
    assert len(hooked.requests) == 1
    assert "400" in delivery.last_error


def test_a_refused_connection_is_retried_then_given_up(settings, monkeypatch, people):
    # given a webhook to a port nothing listens on, and three attempts at most
    from ..builders import SECRET_ENV

    settings.EAM_WEBHOOKS = hook_config(f"http://127.0.0.1:{a_closed_port()}/hook")
    settings.EAM_NOTIFY_MAX_ATTEMPTS = 3
    monkeypatch.setenv(SECRET_ENV, SECRET)
    waiting_job(people.submitter, "nobody listens")
    start = timezone.now()

    for hour in range(4):
        run_pass(now=start + hour * LATER)

    delivery = webhook_deliveries().get()
    rows = attempts_of(delivery)
    assert [(n, outcome) for n, outcome, _ in rows] == [(1, "retry"), (2, "retry"), (3, "failed")]
    assert all(status is None for _, _, status in rows)
    assert delivery.status == Delivery.Status.FAILED and "ConnectError" in delivery.last_error


def test_the_secret_is_never_stored(hooked, people):
    waiting_job(people.submitter, "secret")
    run_pass()
    for row in Delivery.objects.values():
        assert SECRET not in json.dumps(row, default=str)
    for row in DeliveryAttempt.objects.values():
        assert SECRET not in json.dumps(row, default=str)


def test_a_webhook_takes_only_its_kinds(receiver, settings, monkeypatch, people):
    from ..builders import SECRET_ENV, error_job

    settings.EAM_WEBHOOKS = hook_config(receiver.url, kinds=["error"])
    monkeypatch.setenv(SECRET_ENV, SECRET)
    waiting_job(people.submitter, "not for this hook")
    error_job(people.submitter, "for this hook")
    run_pass()
    assert [r.body["kind"] for r in receiver.requests] == ["error"]


def test_a_delivery_another_sender_holds_is_left_to_it_until_its_claim_expires(hooked, people):
    # given a planned webhook delivery that another sender holds for one more minute
    waiting_job(people.submitter, "held elsewhere")
    start = timezone.now()
    plan(now=start)
    delivery = webhook_deliveries().get()
    Delivery.objects.filter(id=delivery.id).update(claimed_until=start + timedelta(minutes=1), claim_token="other")

    # when a pass runs while the claim holds: nothing is sent and nothing recorded
    run_pass(now=start)
    assert hooked.requests == [] and attempts_of(delivery) == []
    assert Delivery.objects.get(id=delivery.id).claim_token == "other"

    # then once the claim has expired (its sender died), the delivery is sent
    run_pass(now=start + timedelta(minutes=2))
    assert len(hooked.requests) == 1 and attempts_of(delivery) == [(1, "delivered", 200)]


def test_a_webhook_removed_from_the_configuration_fails_its_pending_deliveries(hooked, people, settings):
    hooked.script(Reply(status=503, body=b""))
    waiting_job(people.submitter, "removed hook")
    start = timezone.now()
    run_pass(now=start)
    settings.EAM_WEBHOOKS = []
    run_pass(now=start + LATER)
    delivery = webhook_deliveries().get()
    assert delivery.status == Delivery.Status.FAILED
    assert attempts_of(delivery) == [(1, "retry", 503), (2, "failed", None)]
    assert "no longer configured" in delivery.last_error
