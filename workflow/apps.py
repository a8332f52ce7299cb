"""The engine: claims, leases, step executors and the run_jobs worker."""
from django.apps import AppConfig


class WorkflowConfig(AppConfig):
    name = "workflow"
    verbose_name = "Workflow"
