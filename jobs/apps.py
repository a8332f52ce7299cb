"""The event store: job specs, insert-only events, the derived state and the services that change it."""
from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from .api.authentication import connect_signals

        # The role groups come back with their permissions after every migrate or flush.
        post_migrate.connect(_ensure_roles, sender=self)
        # A changed token, user, group or permission is not answered from the API's token memory.
        connect_signals()


def _ensure_roles(sender, **kwargs):
    from django.apps import apps

    from .roles import ensure_roles

    ensure_roles(apps)
