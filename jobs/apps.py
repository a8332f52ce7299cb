"""The event store: job specs, insert-only events, the derived state and the services that change it."""
from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # The role groups come back with their permissions after every migrate or flush.
        post_migrate.connect(_ensure_roles, sender=self)


def _ensure_roles(sender, **kwargs):
    from django.apps import apps

    from .roles import ensure_roles

    ensure_roles(apps)
