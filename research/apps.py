"""The reference research kernel: snapshots, compiler, backtester, gates, registry."""
from django.apps import AppConfig


class ResearchConfig(AppConfig):
    name = "research"
    verbose_name = "Research"

    def ready(self):
        from .agents import providers  # noqa: F401  (registers the "agents" system check, research.E010)
