"""View-only admins of the records: job events, the registry of trials and the data snapshots.

The research models are registered here rather than in `research`, which must not import `jobs`
(layers point down only) and so cannot know the EAM roles that may read them.
"""
from django.contrib import admin

from jobs.models import JobEvent
from jobs.review import actor_label
from research.models import DataSnapshot, RegistryEntry

from .base import JobColumn, RecordAdmin, pretty_json


@admin.register(JobEvent)
class JobEventAdmin(JobColumn, RecordAdmin):
    list_display = ("job_column", "seq", "event_type", "step", "actor_column", "recorded_at")
    list_filter = ("event_type", "step")
    search_fields = ("=job__job_id", "event_type", "step")
    ordering = ("-id",)
    fields = readonly_fields = (
        "job_column", "seq", "event_type", "step", "actor_column", "recorded_at", "payload_column",
        "schema_version", "prev_hash", "hash",
    )

    @admin.display(description="actor")
    def actor_column(self, event):
        return actor_label(event.actor)

    @admin.display(description="payload")
    def payload_column(self, event):
        return pretty_json(event.payload)


@admin.register(RegistryEntry)
class RegistryEntryAdmin(JobColumn, RecordAdmin):
    list_display = ("run_id", "job_column", "root_job_id", "family", "verdict", "snapshot_id", "created_at")
    list_filter = ("verdict", "family", "policy_bundle_id", "snapshot_id")
    search_fields = ("=run_id", "=job_id", "=root_job_id", "family")
    ordering = ("-id",)
    fields = readonly_fields = (
        "run_id", "job_column", "root_job_id", "family", "params_sha256", "snapshot_id", "policy_bundle_id",
        "verdict", "metrics_column", "created_at",
    )

    @admin.display(description="metrics")
    def metrics_column(self, entry):
        return pretty_json(entry.metrics)


@admin.register(DataSnapshot)
class DataSnapshotAdmin(RecordAdmin):
    list_display = ("snapshot_id", "symbol_count", "start", "end", "bars", "rows", "source", "created_at")
    search_fields = ("snapshot_id", "source")
    fields = readonly_fields = (
        "snapshot_id", "sha256", "symbols", "start", "end", "bars", "rows", "bytes", "source", "created_at",
    )

    @admin.display(description="symbols")
    def symbol_count(self, snapshot):
        return len(snapshot.symbols or [])
