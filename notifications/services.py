"""The notification pass: plan deliveries from the event log, then send the ones that are due.

Planning reads the events after a stored cursor, in id order, and writes one Delivery per channel and recipient
of each notable event, moving the cursor in the same transaction (the cursor row is locked: overlapping passes
plan in turn, and UNIQUE(event, channel, target) makes a second plan of one delivery impossible). Sending runs
outside any transaction: each due delivery is claimed by one conditional UPDATE, sent, and its attempt recorded
with the delivery's next state, fenced by the claim's token. Run by the worker after each of its passes, so an
event's transaction has always committed before anyone hears of it.
"""
import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.selectors import event_horizon
from jobs.models import JobEvent

from . import mail, webhooks
from .kinds import NOTABLE_EVENTS, Kind, notable
from .models import Delivery, DeliveryAttempt, NotificationSetting, PlanCursor
from .notices import notice_of
from .recipients import recipients
from .webhooks import Sent

log = logging.getLogger(__name__)

CURSOR = "events"
PLAN_BATCH = 500       # events read per planning transaction
SEND_BATCH = 200       # deliveries sent per pass at most
# How long a sender holds a delivery it claimed: longer than any attempt can take (the webhook timeouts), so that
# only a sender that died leaves a claim to expire.
CLAIM_SECONDS = 120


@dataclass
class NotifySummary:
    planned: int = 0
    outcomes: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return self.outcomes.count(outcome)

    def line(self) -> str:
        return (f"notifications: {self.planned} planned, {self.count(DeliveryAttempt.Outcome.DELIVERED)} delivered, "
                f"{self.count(DeliveryAttempt.Outcome.RETRY)} to retry, {self.count(DeliveryAttempt.Outcome.FAILED)} "
                f"failed")


def run_pass(*, now: datetime | None = None) -> NotifySummary:
    """Plan the deliveries of every event not yet planned, then send every delivery that is due. `now` fixes the
    pass's clock (tests move it on); without it each claim and attempt reads the time when it happens, so that a
    long pass never claims with a time already past."""
    clock = (lambda: now) if now is not None else timezone.now
    summary = NotifySummary(planned=plan(now=clock()))
    summary.outcomes = send_due(clock=clock)
    return summary


def save_settings(*, user, email_kinds: list[str]) -> NotificationSetting:
    """Store which kinds `user` receives by e-mail: the kinds not in `email_kinds` are turned off. Applies to the
    events planned from now on."""
    off = [str(kind) for kind in Kind if str(kind) not in email_kinds]
    setting, _ = NotificationSetting.objects.update_or_create(user=user, defaults={"email_off": off})
    return setting


# -- planning --------------------------------------------------------------------------------------------------

def plan(*, now: datetime) -> int:
    """Deliveries for every committed event after the cursor; how many were written."""
    hooks = webhooks.configured()
    # An idle pass reads once and takes no lock: on SQLite the planning transaction takes the write lock.
    last = PlanCursor.objects.filter(name=CURSOR).values_list("last_event_id", flat=True).first() or 0
    if not JobEvent.objects.filter(id__gt=last).exists():
        return 0
    written = 0
    while True:
        with transaction.atomic():  # IMMEDIATE on SQLite; the cursor row's lock on PostgreSQL
            cursor, _ = PlanCursor.objects.select_for_update().get_or_create(name=CURSOR)
            after = cursor.last_event_id
            # PostgreSQL hands out ids before commit: stop short of an id that may still appear.
            horizon, held, read = event_horizon(after, limit=PLAN_BATCH)
            if horizon == after:
                return written
            events = (JobEvent.objects.filter(id__gt=after, id__lte=horizon, event_type__in=list(NOTABLE_EVENTS))
                      .select_related("job").order_by("id"))
            rows = [row for event in events for row in deliveries_of(event, hooks, now)]
            Delivery.objects.bulk_create(rows, ignore_conflicts=True)
            PlanCursor.objects.filter(name=CURSOR).update(last_event_id=horizon)
        written += len(rows)
        if held or read < PLAN_BATCH:
            return written


def deliveries_of(event: JobEvent, hooks: list, now: datetime) -> list[Delivery]:
    """The deliveries one event asks for: an e-mail to each recipient who has an address and wants this kind, and
    a request to each webhook that takes it."""
    what = notable(event.event_type, event.payload)
    if what is None:
        return []
    people = [user for user in recipients(what.kind, event, event.job) if user.email]
    muted = dict(NotificationSetting.objects.filter(user__in=people).values_list("user_id", "email_off"))
    rows = [_delivery(event, what.kind, Delivery.Channel.EMAIL, user.get_username(), user.email, now)
            for user in people if str(what.kind) not in muted.get(user.pk, [])]
    rows += [_delivery(event, what.kind, Delivery.Channel.WEBHOOK, hook.name, hook.url, now)
             for hook in hooks if what.kind in hook.kinds]
    return rows


def _delivery(event, kind, channel, target, address, now) -> Delivery:
    return Delivery(event=event, job_id=event.job_id, kind=str(kind), channel=channel, target=target,
                    address=address, created_at=now, next_attempt_at=now)


# -- sending ---------------------------------------------------------------------------------------------------

def _unclaimed(now: datetime) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def send_due(*, clock) -> list[str]:
    """Send each delivery due now (`clock()`) that no other sender holds; the outcome of each attempt made."""
    import httpx

    now = clock()
    due = list(Delivery.objects.filter(_unclaimed(now), status=Delivery.Status.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at", "id").values_list("id", flat=True)[:SEND_BATCH])
    if not due:
        return []
    hooks = {hook.name: hook for hook in webhooks.configured()}
    outcomes = []
    with httpx.Client(timeout=webhooks.timeout(), follow_redirects=False) as client:
        for delivery_id in due:
            outcome = _attempt(delivery_id, now=clock(), hooks=hooks, client=client)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def _attempt(delivery_id: int, *, now: datetime, hooks: dict, client) -> str | None:
    """Claim, send and record one delivery; None when another sender holds it (or it is no longer due)."""
    token = uuid.uuid4().hex
    claimed = (Delivery.objects.filter(_unclaimed(now), id=delivery_id, status=Delivery.Status.PENDING,
                                       next_attempt_at__lte=now)
               .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), claim_token=token))
    if claimed != 1:
        return None
    delivery = Delivery.objects.select_related("event").get(id=delivery_id)
    started = time.monotonic()
    try:
        sent = _send(delivery, hooks, client)
    except Exception as exc:  # the one runner of a send: a bug is recorded and retried, never the whole pass lost
        log.exception("delivery %s: sending failed unexpectedly", delivery_id)
        sent = Sent(False, retryable=True, error=f"{type(exc).__name__}: {exc}")
    duration_ms = int((time.monotonic() - started) * 1000)
    return _record(delivery, token, sent, now=now, duration_ms=duration_ms)


def _send(delivery: Delivery, hooks: dict, client) -> Sent:
    notice = notice_of(delivery)
    if delivery.channel == Delivery.Channel.EMAIL:
        return mail.send(delivery.address, notice)
    hook = hooks.get(delivery.target)
    if hook is None:
        return Sent(False, error=f"webhook {delivery.target!r} is no longer configured ({webhooks.SETTING})")
    return webhooks.post(client, hook, notice)


def retry_delay(attempt: int) -> timedelta:
    """After failed attempt `attempt` (1, 2, …): EAM_NOTIFY_RETRY_SECONDS doubled per attempt, drawn from the upper
    half of that range so that deliveries that failed together do not all come back at once."""
    ceiling = settings.EAM_NOTIFY_RETRY_SECONDS * 2 ** (attempt - 1)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def _record(delivery: Delivery, token: str, sent: Sent, *, now: datetime, duration_ms: int) -> str | None:
    """The attempt's row and the delivery's next state, in one transaction, if this sender still holds the claim."""
    number = delivery.attempts + 1
    if sent.delivered:
        outcome, changes = DeliveryAttempt.Outcome.DELIVERED, {"status": Delivery.Status.DELIVERED,
                                                               "delivered_at": now, "next_attempt_at": None}
    elif sent.retryable and number < settings.EAM_NOTIFY_MAX_ATTEMPTS:
        outcome, changes = DeliveryAttempt.Outcome.RETRY, {"next_attempt_at": now + retry_delay(number)}
    else:
        outcome, changes = DeliveryAttempt.Outcome.FAILED, {"status": Delivery.Status.FAILED, "next_attempt_at": None}
    with transaction.atomic():
        moved = Delivery.objects.filter(id=delivery.id, claim_token=token).update(
            attempts=number, last_error=sent.error, claimed_until=None, claim_token="", **changes)
        if moved != 1:
            log.warning("delivery %s: the claim expired before attempt %d was recorded", delivery.id, number)
            return None
        DeliveryAttempt.objects.create(delivery_id=delivery.id, number=number, at=now, outcome=outcome,
                                       http_status=sent.http_status, error=sent.error, duration_ms=duration_ms)
    log.info("delivery %s (%s to %s): attempt %d %s", delivery.id, delivery.channel, delivery.target, number,
             outcome)
    return str(outcome)
