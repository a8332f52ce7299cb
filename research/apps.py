"""The reference research kernel: snapshots, compiler, backtester, gates, registry."""
from django.apps import AppConfig


class ResearchConfig(AppConfig):
    name = "research"
    verbose_name = "Research"
