"""The shapes of responses, for the OpenAPI schema: they describe what the selectors return, and the schema
test checks that they agree. (The inputs are read by jobs/api/http.py.)"""
from rest_framework import serializers

from .http import ACTOR_KINDS, HEALTH_STATUSES, KIND_CHOICES, STATUS_CHOICES


# -- responses -----------------------------------------------------------------------------------------------

class ErrorItem(serializers.Serializer):
    path = serializers.CharField(help_text="JSON pointer into the request document")
    message = serializers.CharField()


class ErrorResponse(serializers.Serializer):
    detail = serializers.CharField(help_text="for a person")
    code = serializers.CharField(help_text="stable, for a program")
    errors = ErrorItem(many=True, required=False)


class BudgetExhaustedResponse(ErrorResponse):
    reason = serializers.CharField(required=False, help_text="budget_exhausted: the limit reached")
    limit = serializers.DictField(required=False, help_text="budget_exhausted: {limit name: value}")
    counters = serializers.DictField(required=False, help_text="budget_exhausted: the counters the database held "
                                                                "(generation, children_of_parent, jobs_in_root, "
                                                                "requested, spawned)")


class JobSummary(serializers.Serializer):
    job_id = serializers.CharField()
    title = serializers.CharField(allow_null=True, help_text="the blueprint's name or the idea's title")
    kind = serializers.ChoiceField(choices=KIND_CHOICES)
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    waiting_step = serializers.CharField(allow_null=True)
    next_step = serializers.CharField(allow_null=True)
    attempt = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    last_event_type = serializers.CharField()
    snapshot_id = serializers.CharField()
    policy_bundle_id = serializers.CharField()
    root_job_id = serializers.CharField()
    parent_job_id = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    submitted_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    verdict = serializers.CharField(allow_null=True, help_text="PASS or FAIL of the latest gates step; null before")


class SubmitResponse(JobSummary):
    created = serializers.BooleanField(help_text="false: the same content was submitted before (HTTP 200)")


class JobPage(serializers.Serializer):
    results = JobSummary(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class RecordedArtifact(serializers.Serializer):
    path = serializers.CharField()
    sha256 = serializers.CharField()
    bytes = serializers.IntegerField()
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    step = serializers.CharField(allow_null=True)


class Lineage(serializers.Serializer):
    root_job_id = serializers.CharField()
    parent_job_id = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    children = serializers.ListField(child=serializers.CharField())


class JobDetail(JobSummary):
    spec = serializers.DictField()
    spec_sha256 = serializers.CharField()
    review_sha256 = serializers.CharField(allow_null=True)
    error = serializers.DictField(allow_null=True)
    lease_owner = serializers.CharField(allow_null=True)
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    lineage = Lineage()
    run_id = serializers.CharField(allow_null=True)
    imported = serializers.BooleanField(help_text="imported from a file-based job store (manage.py import_jobstore): "
                                                  "its events keep the originals under payload.provenance")
    artifacts = RecordedArtifact(many=True)
    can_approve = serializers.BooleanField()
    can_reject = serializers.BooleanField()
    can_retry = serializers.BooleanField()
    can_cancel = serializers.BooleanField()
    can_rerun = serializers.BooleanField()
    can_override = serializers.BooleanField(help_text="may open the checkpoint without its approvals (break-glass)")
    rerun_agents = serializers.ListField(child=serializers.CharField(),
                                         help_text="agents that have run: POST /jobs/{id}/rerun may name them")
    reruns = serializers.ListField(child=serializers.DictField(),
                                   help_text="agent reruns pending, oldest first: agent_id, rerun_id, attempt, running")
    approval = serializers.DictField(
        allow_null=True, help_text="the open checkpoint's approval rule and its progress: checkpoint, rule, approvals "
                                   "({actor, group}), missing ({group: count}), escalated_to; null without a rule")


class LineageJob(serializers.Serializer):
    job_id = serializers.CharField()
    title = serializers.CharField(allow_null=True, help_text="the blueprint's name or the idea's title")
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    verdict = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    parent_job_id = serializers.CharField(allow_null=True)
    children = serializers.ListField(child=serializers.CharField(), help_text="ids in creation order")


class LineageTree(serializers.Serializer):
    job_id = serializers.CharField(help_text="the job asked for")
    root_job_id = serializers.CharField()
    jobs = LineageJob(many=True, help_text="every job of the root's tree, in (generation, created_at, job_id) order")


class EventActor(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ACTOR_KINDS)
    id = serializers.CharField()


class Event(serializers.Serializer):
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    step = serializers.CharField(allow_null=True)
    actor = EventActor()
    payload = serializers.DictField()
    schema_version = serializers.CharField()
    recorded_at = serializers.DateTimeField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()
    key_id = serializers.CharField(allow_null=True, help_text="the signing key's id (docs/operations.md)")
    signature = serializers.CharField(allow_null=True, help_text="Ed25519 signature of the hash, hex")


class EventPage(serializers.Serializer):
    job_id = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUS_CHOICES)
    last_seq = serializers.IntegerField()
    events = Event(many=True)
    has_more = serializers.BooleanField(help_text="call again with after_seq = the last seq returned")


class StoredArtifact(serializers.Serializer):
    path = serializers.CharField(help_text="relative to the job: use it in /jobs/{job_id}/artifacts/{path}")
    storage_path = serializers.CharField(help_text="path in artifact storage, as events record it")
    sha256 = serializers.CharField()
    bytes = serializers.IntegerField()
    content_type = serializers.CharField()


class ArtifactList(serializers.Serializer):
    job_id = serializers.CharField()
    artifacts = StoredArtifact(many=True)


class RunSegmentRow(serializers.Serializer):
    segment_id = serializers.CharField()
    role = serializers.ChoiceField(choices=["test", "holdout"])
    has_curve = serializers.BooleanField()


class Trial(serializers.Serializer):
    job_id = serializers.CharField()
    verdict = serializers.CharField()
    created_at = serializers.DateTimeField()


class RunDetail(serializers.Serializer):
    run_id = serializers.CharField()
    kernel_version = serializers.CharField(allow_null=True)
    snapshot_id = serializers.CharField(allow_null=True)
    snapshot_sha256 = serializers.CharField(allow_null=True)
    policy_bundle_id = serializers.CharField(allow_null=True)
    policy_bundle_sha256 = serializers.CharField(allow_null=True)
    holdout_visibility = serializers.CharField()
    metrics = serializers.DictField()
    segments = RunSegmentRow(many=True)
    test_segments = serializers.IntegerField(allow_null=True)
    positive_share = serializers.FloatField(allow_null=True)
    trials = Trial(many=True)


class Table(serializers.Serializer):
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())


class RunSegment(serializers.Serializer):
    run_id = serializers.CharField()
    segment_id = serializers.CharField()
    role = serializers.ChoiceField(choices=["test", "holdout"])
    metrics = serializers.DictField(required=False)
    curve = Table(required=False, help_text="test segments only")
    trades = Table(required=False, help_text="test segments only")


class RegistryItem(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.CharField()
    job_id = serializers.CharField()
    root_job_id = serializers.CharField()
    family = serializers.CharField()
    params_sha256 = serializers.CharField()
    snapshot_id = serializers.CharField()
    policy_bundle_id = serializers.CharField()
    verdict = serializers.CharField()
    metrics = serializers.DictField()
    created_at = serializers.DateTimeField()


class RegistryPage(serializers.Serializer):
    results = RegistryItem(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class Snapshot(serializers.Serializer):
    snapshot_id = serializers.CharField()
    sha256 = serializers.CharField()
    symbols = serializers.ListField(child=serializers.CharField())
    start = serializers.DateField()
    end = serializers.DateField()
    bars = serializers.IntegerField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    source = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    is_default = serializers.BooleanField()


class SnapshotList(serializers.Serializer):
    results = Snapshot(many=True)


class PolicyBundle(serializers.Serializer):
    policy_bundle_id = serializers.CharField()
    valid = serializers.BooleanField()
    sha256 = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    error = serializers.CharField(required=False)
    errors = ErrorItem(many=True, required=False)
    is_default = serializers.BooleanField()


class PolicyList(serializers.Serializer):
    results = PolicyBundle(many=True)


class Health(serializers.Serializer):
    status = serializers.ChoiceField(choices=HEALTH_STATUSES)
    detail = serializers.CharField(required=False)
