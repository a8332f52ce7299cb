"""Operators see every delivery and each of its attempts, read-only; people's settings are shown too."""
from django.contrib import admin

from jobs.admin.base import JobColumn, RecordAdmin
from jobs.roles import OPERATE

from .models import Delivery, DeliveryAttempt, NotificationSetting

# Who may read deliveries: operators, and anyone granted the model's view permission (superusers hold both).
DELIVERY_READERS = (OPERATE, "notifications.view_delivery")


def may_read_deliveries(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_staff
                and any(user.has_perm(perm) for perm in DELIVERY_READERS))


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = ("number", "at", "outcome", "http_status", "duration_ms", "error")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return may_read_deliveries(request.user)


@admin.register(Delivery)
class DeliveryAdmin(JobColumn, RecordAdmin):
    list_display = ("id", "created_at", "kind", "job_column", "channel", "target", "status", "attempts",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status", "kind", "channel")
    search_fields = ("=job_id", "target", "address")
    ordering = ("-id",)
    fields = readonly_fields = ("job_column", "event", "kind", "channel", "target", "address", "status", "attempts",
                                "created_at", "next_attempt_at", "delivered_at", "last_error", "claimed_until")
    inlines = [AttemptInline]
    list_select_related = False

    def has_view_permission(self, request, obj=None):
        return may_read_deliveries(request.user)

    def has_module_permission(self, request):
        return may_read_deliveries(request.user)


@admin.register(NotificationSetting)
class NotificationSettingAdmin(RecordAdmin):
    """Each person changes their own on /ui/settings/notifications; here they are only read."""

    list_display = ("user", "email_off", "updated_at")
    search_fields = ("user__username",)
    fields = readonly_fields = ("user", "email_off", "updated_at")

    def has_view_permission(self, request, obj=None):
        return may_read_deliveries(request.user)

    def has_module_permission(self, request):
        return may_read_deliveries(request.user)
