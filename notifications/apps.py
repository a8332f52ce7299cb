"""Notifications: planned from the event log, delivered by e-mail and webhooks, every attempt recorded."""
from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from . import webhooks  # noqa: F401  registers the EAM_WEBHOOKS system check
