"""What every EAM model admin shares: view-only, and readable by the people in the EAM roles."""
import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from jobs.roles import JOBS_APP, PERMISSIONS

# Holding any EAM role permission (submit, approve, operate, ...) lets a staff user read the EAM records,
# so the roles need no extra view permissions to work in the admin.
ROLE_PERMISSIONS = tuple(f"{JOBS_APP}.{codename}" for codename in PERMISSIONS)


def in_a_role(user) -> bool:
    return any(user.has_perm(permission) for permission in ROLE_PERMISSIONS)


def pretty_json(value) -> str:
    return format_html('<pre class="eam-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def job_link(job_id: str) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:jobs_jobspec_change", args=[job_id]), job_id)


class JobColumn:
    """A list column and detail field linking a record's `job_id` to the job page."""

    @admin.display(description="job", ordering="job_id")
    def job_column(self, record):
        return job_link(record.job_id)


class RecordAdmin(admin.ModelAdmin):
    """Insert-only records: nothing to add, change or delete here, for superusers too."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or in_a_role(request.user)

    def has_module_permission(self, request):
        return super().has_module_permission(request) or in_a_role(request.user)
