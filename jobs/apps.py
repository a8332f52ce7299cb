"""The event store: job specs, insert-only events, the derived state and the services that change it."""
from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
