"""Database guards: triggers that make the audit tables insert-only, whatever code or shell writes to them."""
from django.apps import AppConfig


class GuardsConfig(AppConfig):
    name = "guards"
    verbose_name = "Database guards"

    def ready(self):
        from . import checks  # noqa: F401  (registers the missing-trigger system check)
