"""Models of the event store: the immutable spec, the insert-only event log and its state projection; and the
insert-only access log of artifact reads."""
from django.db import models
from django.utils import timezone

from guards.triggers import GuardedTable, register

from .pipelines import EventType, Kind, Status

GUARDED_JOBSPEC = register(GuardedTable(table="jobs_jobspec", pk="job_id"))
GUARDED_JOBEVENT = register(GuardedTable(table="jobs_jobevent", pk="id", seq_column="seq", seq_scope="job_id",
                                         unique=(("job_id", "seq"),)))
GUARDED_ARTIFACTREAD = register(GuardedTable(table="jobs_artifactread", pk="id"))


class JobSpec(models.Model):
    """The immutable definition of a job; `job_id` is the first 12 hex of the sha256 of `spec`."""

    class KindChoices(models.TextChoices):
        BLUEPRINT = Kind.BLUEPRINT.value, "blueprint"
        IDEA = Kind.IDEA.value, "idea"

    job_id = models.CharField(primary_key=True, max_length=12)
    kind = models.CharField(max_length=16, choices=KindChoices.choices)
    spec = models.JSONField()
    spec_sha256 = models.CharField(max_length=64)
    snapshot_id = models.CharField(max_length=64, db_index=True)
    policy_bundle_id = models.CharField(max_length=64)
    root_job_id = models.CharField(max_length=12, db_index=True)
    parent_job_id = models.CharField(max_length=12, null=True, blank=True)
    generation = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    submitted_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["created_at", "job_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=[k.value for k in Kind]), name="jobspec_kind_valid"),
        ]
        # What people may ask of jobs; jobs.roles gives them to the groups submitters, reviewers, operators.
        permissions = [
            ("submit_job", "Can submit jobs"),
            ("approve_job", "Can approve or reject checkpoints"),
            ("operate_job", "Can retry or cancel jobs"),
            ("spawn_job", "Can spawn child jobs"),
            ("rerun_job", "Can rerun agents of a job"),
            ("override_approval", "Can open a checkpoint without its approvals (break-glass)"),
        ]

    def __str__(self):
        return f"{self.kind} job {self.job_id}"


class JobEvent(models.Model):
    """One insert-only fact about a job; `hash` chains it to the previous event of the same job."""

    EventTypeChoices = models.TextChoices("EventTypeChoices", [(e.value, e.value) for e in EventType])

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(JobSpec, on_delete=models.PROTECT, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=32, choices=EventTypeChoices.choices)
    step = models.CharField(max_length=32, null=True, blank=True)
    actor = models.JSONField()
    payload = models.JSONField()
    schema_version = models.CharField(max_length=32)
    recorded_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Ed25519 signature of `hash` (jobs.signing) and the id of the key that made it; null only on events
    # written before events were signed, which `verify_events` reports as unsigned.
    key_id = models.CharField(max_length=64, null=True, blank=True)
    signature = models.CharField(max_length=128, null=True, blank=True)

    class Meta:
        ordering = ["job_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["job", "seq"], name="jobevent_job_seq_unique"),
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="jobevent_seq_positive"),
            models.CheckConstraint(
                condition=models.Q(event_type__in=[e.value for e in EventType]), name="jobevent_type_valid"
            ),
        ]

    def __str__(self):
        return f"{self.job_id}#{self.seq} {self.event_type}"


class JobState(models.Model):
    """Projection of a job's events (rebuildable at any time) plus the mutable lease of the worker running it."""

    StatusChoices = models.TextChoices("StatusChoices", [(s.value, s.value) for s in Status])

    job = models.OneToOneField(JobSpec, primary_key=True, on_delete=models.PROTECT, related_name="state")
    kind = models.CharField(max_length=16)
    status = models.CharField(max_length=24, choices=StatusChoices.choices)
    stage = models.PositiveIntegerField(default=0)
    next_step = models.CharField(max_length=32, null=True, blank=True)
    waiting_step = models.CharField(max_length=32, null=True, blank=True)
    review_sha256 = models.CharField(max_length=64, null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    error = models.JSONField(null=True, blank=True)
    last_seq = models.PositiveIntegerField()
    last_event_type = models.CharField(max_length=32)
    last_hash = models.CharField(max_length=64)
    available_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=8, null=True, blank=True)  # of the latest gates step
    reruns = models.JSONField(null=True, blank=True)  # agent reruns pending, oldest first; null when none
    # The open checkpoint's approval rule, its approvals so far and its escalation; null when it has no rule.
    review = models.JSONField(null=True, blank=True)
    lease_owner = models.CharField(max_length=150, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "job_id"]
        indexes = [models.Index(fields=["status", "created_at"], name="jobstate_status_created")]

    def __str__(self):
        return f"{self.job_id}: {self.status}"


class ArtifactRead(models.Model):
    """One artifact served to someone: the insert-only access log (jobs.access). Not an event of the job: reading
    changes nothing about it, and its hash chain stays the record of what happened to it."""

    class Via(models.TextChoices):
        API = "api", "API download"
        UI = "ui", "page"
        BUNDLE = "bundle", "bundle"

    id = models.BigAutoField(primary_key=True)
    who = models.CharField(max_length=150, help_text='username, or "anonymous" (EAM_PUBLIC_READ)')
    job_id = models.CharField(max_length=12)
    path = models.TextField(help_text="as requested, relative to the job (dossier/... for its run's dossier)")
    storage_path = models.TextField(help_text="where the bytes were read, relative to the artifact root")
    sha256 = models.CharField(max_length=64, help_text="of the bytes served")
    bytes = models.PositiveBigIntegerField()
    at = models.DateTimeField(default=timezone.now, help_text="when the bytes were served")
    request_id = models.CharField(max_length=128)
    via = models.CharField(max_length=8, choices=Via.choices)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["job_id", "id"], name="artifactread_job"),
            models.Index(fields=["who", "id"], name="artifactread_who"),
            models.Index(fields=["at"], name="artifactread_at"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(via__in=["api", "ui", "bundle"]), name="artifactread_via_valid"),
        ]

    def __str__(self):
        return f"{self.who} read {self.job_id}/{self.path}"
