"""What the notifications keep: how far the event log was planned, each delivery to plan, each attempt made, and
what each person wants to receive."""
from django.conf import settings
from django.db import models

from jobs.models import JobEvent

from .kinds import Kind


class PlanCursor(models.Model):
    """How far the planner has read the event log: every event with a global id up to `last_event_id` has its
    deliveries. One row; the planner locks it while it plans, so overlapping passes plan in turn."""

    name = models.CharField(primary_key=True, max_length=32)
    last_event_id = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}: after event {self.last_event_id}"


class Delivery(models.Model):
    """One notification of one event to one recipient through one channel, sent until delivered or given up."""

    class Channel(models.TextChoices):
        EMAIL = "email", "e-mail"
        WEBHOOK = "webhook", "webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    KindChoices = models.TextChoices("KindChoices", [(k.value, k.value) for k in Kind])

    id = models.BigAutoField(primary_key=True)
    # No constraint in the database: the events table refuses TRUNCATE with its own guard (jobs_jobevent is
    # insert-only), which a foreign key into it would pre-empt; an event is never deleted, so none is needed.
    event = models.ForeignKey(JobEvent, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    job_id = models.CharField(max_length=12)
    kind = models.CharField(max_length=16, choices=KindChoices.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=150, help_text="the username (e-mail) or the webhook's name")
    address = models.CharField(max_length=500, help_text="the e-mail address or the webhook's URL when planned")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="null once delivered or failed")
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # The fence of a sender: a delivery is claimed by setting these in one conditional UPDATE; only the holder of
    # the token records the attempt.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "channel", "target"], name="delivery_once_per_target"),
            models.CheckConstraint(condition=models.Q(channel__in=["email", "webhook"]), name="delivery_channel_valid"),
            models.CheckConstraint(condition=models.Q(status__in=["pending", "delivered", "failed"]),
                                   name="delivery_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
                   models.Index(fields=["job_id", "id"], name="delivery_job")]

    def __str__(self):
        return f"{self.kind} of {self.job_id} by {self.channel} to {self.target}"


class DeliveryAttempt(models.Model):
    """One try at sending a delivery: when, how long, and what came back."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "delivered"
        RETRY = "retry", "failed, will retry"
        FAILED = "failed", "failed for good"

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_once_per_number"),
        ]

    def __str__(self):
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"


class NotificationSetting(models.Model):
    """Which kinds a person receives by e-mail. Stored as the kinds turned off, so that a person without a row,
    and a kind added later, are on."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="notification_setting")
    email_off = models.JSONField(default=list, blank=True, help_text="kinds not sent by e-mail")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"notifications of {self.user}"

    def receives(self, kind: Kind) -> bool:
        return str(kind) not in self.email_off
