"""The research kernel's two records: market data snapshots and the registry of trials. Both are insert-only."""
from django.db import models
from django.utils import timezone

from guards.triggers import GuardedTable, register

SNAPSHOT_GUARD = register(GuardedTable(table="research_datasnapshot", pk="snapshot_id"))
REGISTRY_GUARD = register(GuardedTable(table="research_registryentry", pk="id", unique=(("job_id", "run_id"),)))


class DataSnapshot(models.Model):
    """Immutable, content-addressed daily OHLCV data; its file lives at `snapshots/<snapshot_id>/ohlcv.csv`."""

    snapshot_id = models.CharField(max_length=64, primary_key=True)
    sha256 = models.CharField(max_length=64, help_text="sha256 of the stored ohlcv.csv")
    symbols = models.JSONField(help_text="sorted list of the symbols, the panel's columns")
    start = models.DateField()
    end = models.DateField()
    bars = models.PositiveIntegerField(help_text="number of dates (rows of the panel)")
    rows = models.PositiveIntegerField(help_text="number of data lines (bars x symbols)")
    bytes = models.PositiveBigIntegerField()
    source = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["snapshot_id"]

    def __str__(self):
        return f"{self.snapshot_id} ({len(self.symbols)} symbols, {self.start}..{self.end})"

    @property
    def data_path(self) -> str:
        return data_path(self.snapshot_id)


def data_path(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}/ohlcv.csv"


class RegistryEntry(models.Model):
    """One trial: a run evaluated for a job, with its verdict. Counted for the deflated Sharpe ratio and the PBO."""

    class Verdict(models.TextChoices):
        PASS = "PASS", "Pass"
        FAIL = "FAIL", "Fail"

    run_id = models.CharField(max_length=12)
    # No foreign key: research must not import jobs (layers point down only).
    job_id = models.CharField(max_length=12)
    root_job_id = models.CharField(max_length=12)
    family = models.CharField(max_length=64)
    params_sha256 = models.CharField(max_length=64)
    snapshot_id = models.CharField(max_length=64)
    # The run's universe, to tell which trials on a snapshot overlap; [] in rows written before it was kept.
    symbols = models.JSONField(default=list, help_text="the run's universe symbols")
    policy_bundle_id = models.CharField(max_length=64)
    verdict = models.CharField(max_length=4, choices=Verdict.choices)
    metrics = models.JSONField(default=dict, help_text="headline metrics of the run")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "registry entries"
        constraints = [
            models.UniqueConstraint(fields=["job_id", "run_id"], name="research_registry_job_run_unique"),
        ]
        indexes = [
            models.Index(fields=["root_job_id", "family"], name="research_registry_root_family"),
            models.Index(fields=["run_id"], name="research_registry_run"),
            models.Index(fields=["snapshot_id"], name="research_registry_snapshot"),  # the default trials scope
        ]

    def __str__(self):
        return f"{self.run_id} for job {self.job_id}: {self.verdict}"
