"""The access log of artifact reads, for operators: view-only, filtered by who and job, searched by path."""
from django.contrib import admin

from jobs.access import may_read_log
from jobs.models import ArtifactRead

from .base import JobColumn, RecordAdmin


@admin.register(ArtifactRead)
class ArtifactReadAdmin(JobColumn, RecordAdmin):
    list_display = ("at", "who", "job_column", "path", "bytes", "via", "request_id")
    list_filter = ("who", "job_id", "via", ("at", admin.DateFieldListFilter))
    search_fields = ("path", "storage_path", "=request_id", "=sha256")
    ordering = ("-id",)
    fields = readonly_fields = (
        "at", "who", "job_column", "path", "storage_path", "sha256", "bytes", "via", "request_id",
    )

    # Who read what is for operators (and holders of the model's view permission), not for every role.
    def has_view_permission(self, request, obj=None):
        return may_read_log(request.user)

    def has_module_permission(self, request):
        return may_read_log(request.user) or super().has_module_permission(request)
