"""The registry of trials: one insert-only row per (job, run) evaluated, and the set of trials a policy's
`trials.scope` counts for the deflated Sharpe ratio and the probability of backtest overfitting."""
import statistics
from contextlib import nullcontext
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction

from .compiler import params_sha256
from .dossier import dossier_summary
from .errors import DossierError, PolicyError
from .models import RegistryEntry
from .policies import TRIAL_SCOPES


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
        symbols=list(runspec["universe"]["symbols"]),
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


@dataclass(frozen=True)
class TrialSet:
    """The trials a run is judged among: distinct runs, in the order they were first registered, the judged
    run included once (last if it is not registered yet), each with its annualised out-of-sample Sharpe."""

    scope: str
    run_id: str                 # the run being judged
    run_ids: tuple[str, ...]
    sharpes: tuple[float | None, ...]

    @property
    def n_trials(self) -> int:
        return len(self.run_ids)

    @property
    def sharpe_variance(self) -> float | None:
        """Sample variance of the defined Sharpe ratios; None below two (the gates' documented default)."""
        values = [s for s in self.sharpes if s is not None]
        return statistics.variance(values) if len(values) >= 2 else None

    def record(self) -> dict:
        """What gate_results.json keeps of the trial set."""
        return {"scope": self.scope, "n_trials": self.n_trials, "sharpe_variance": self.sharpe_variance,
                "run_ids": list(self.run_ids)}


def trials_in_scope(*, scope: str, runspec: dict, run_id: str, root_job_id: str,
                    counted: list[str] | None = None) -> TrialSet:
    """The trials that count for run `run_id` (of `runspec`, judged for a job of lineage `root_job_id`).

    scope `lineage`: the registered trials of the lineage; `snapshot`: every registered trial on the runspec's
    snapshot whose universe shares a symbol with the runspec's (a row written before universes were kept
    counts: unknown is not disjoint); `all`: every registered trial. Two jobs sharing a run are one trial; a
    trial's Sharpe ratio is the first recorded `oos.sharpe` (test segments only, never the holdout). The
    judged run counts once, registered or not; unregistered, its Sharpe is read from its dossier.

    `counted`: the run ids an earlier attempt of the same gates step counted (its gate_results.json was
    written, its result never recorded): the same trials again, so the retry writes the same bytes even if
    trials were registered since.
    """
    if scope not in TRIAL_SCOPES:
        raise PolicyError(f"unknown trials scope {scope!r} (one of {', '.join(TRIAL_SCOPES)})")
    rows = RegistryEntry.objects.order_by("id")
    if scope == "lineage":
        rows = rows.filter(root_job_id=root_job_id)
    elif scope == "snapshot":
        rows = rows.filter(snapshot_id=runspec["data"]["snapshot_id"])
    if counted is not None:
        rows = rows.filter(run_id__in=counted)
    universe = set(runspec["universe"]["symbols"])
    sharpes: dict[str, float | None] = {}
    for other, symbols, metrics in rows.values_list("run_id", "symbols", "metrics"):
        if scope == "snapshot" and symbols and universe.isdisjoint(symbols):
            continue
        sharpe = (metrics or {}).get("oos", {}).get("sharpe")
        if sharpes.get(other) is None:  # first defined Sharpe of the run (dicts keep first-insertion order)
            sharpes[other] = None if sharpe is None else float(sharpe)
    if run_id not in sharpes:
        sharpes[run_id] = _dossier_sharpe(run_id)
    if counted is not None:  # in the order they were counted, whatever was registered since
        sharpes = {other: sharpes[other] if other in sharpes else _dossier_sharpe(other) for other in counted}
    return TrialSet(scope=scope, run_id=run_id, run_ids=tuple(sharpes), sharpes=tuple(sharpes.values()))


def _dossier_sharpe(run_id: str) -> float | None:
    try:
        sharpe = dossier_summary(run_id)["oos"]["sharpe"]
    except DossierError:
        return None
    return None if sharpe is None else float(sharpe)
