"""The registry of trials: one insert-only row per (job, run) evaluated, counted for the deflated Sharpe ratio."""
import statistics
from contextlib import nullcontext

from django.db import IntegrityError, connection, transaction

from .compiler import params_sha256
from .dossier import dossier_summary
from .errors import DossierError
from .models import RegistryEntry


def record_trial(*, job_id: str, root_job_id: str, run_id: str, runspec: dict, verdict: str,
                 metrics: dict) -> RegistryEntry:
    """Record that job `job_id` evaluated run `run_id`. Idempotent: a second call returns the first row."""
    entry = RegistryEntry(
        run_id=run_id,
        job_id=job_id,
        root_job_id=root_job_id,
        family=runspec["strategy"]["family"],
        params_sha256=params_sha256(runspec),
        snapshot_id=runspec["data"]["snapshot_id"],
        policy_bundle_id=runspec["policy"]["policy_bundle_id"],
        verdict=RegistryEntry.Verdict(verdict),
        metrics=metrics,
    )
    try:
        # In autocommit one INSERT is its own transaction; inside a caller's transaction a savepoint keeps a
        # refused insert from spoiling it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            entry.save(force_insert=True)
    except IntegrityError:
        # An earlier or concurrent call for the same (job, run) wrote it first: its row is the record.
        return RegistryEntry.objects.get(job_id=job_id, run_id=run_id)
    return entry


def lineage_trials(*, root_job_id: str, including_run_id: str | None = None) -> tuple[int, float | None]:
    """(N, variance of the trials' annualised OOS Sharpe ratios) of a lineage, for the deflated Sharpe ratio.

    `including_run_id` is the run being judged: counted once whether or not it is registered yet, its
    Sharpe ratio read from its dossier. Two jobs sharing a run are one trial. The variance is None (the gates'
    documented default) below two.
    """
    rows = list(RegistryEntry.objects.filter(root_job_id=root_job_id).order_by("id").values_list("run_id", "metrics"))
    sharpes = _first_sharpes(rows)
    run_ids = {run_id for run_id, _ in rows}
    n_trials = len(run_ids)
    if including_run_id is not None and including_run_id not in run_ids:
        n_trials += 1
        try:
            sharpe = dossier_summary(including_run_id)["oos"]["sharpe"]
        except DossierError:
            sharpe = None
        if sharpe is not None:
            sharpes[including_run_id] = float(sharpe)
    values = list(sharpes.values())
    return max(n_trials, 1), statistics.variance(values) if len(values) >= 2 else None


def _first_sharpes(rows) -> dict[str, float]:
    """The first recorded OOS Sharpe ratio of each distinct run (runs whose Sharpe is undefined left out)."""
    by_run = {}
    for run_id, metrics in rows:
        sharpe = (metrics or {}).get("oos", {}).get("sharpe")
        if sharpe is not None:
            by_run.setdefault(run_id, float(sharpe))
    return by_run
