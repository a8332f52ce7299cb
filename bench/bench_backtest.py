"""Backtest benchmark: prints how many bars per second the research kernel simulates and scores, and in the
same run how many a minimal plain-numpy backtest does on the same market.

Run from the repository root: `.venv/bin/python bench/bench_backtest.py`. The kernel figures need numpy
only (no Django); a bar is one symbol on one day, so one run of T days x N symbols counts T*N bars. The
minimal backtest is what an outsider writes in a dozen lines: SMA crossover by running sums, weights reset
to target every bar, costs on the weight changes, Sharpe, total return and drawdown. The kernel does more
(drifting holdings, trade days, round trips with net P&L, a benchmark, two dozen metrics); the target is
that it stays within 2x of it (>= 0.5x its bars/s) and above 5 M bars/s.
The full-run figure times what a worker does for one blueprint job on the demo snapshot: compile, run
(every segment, plus the 2x-cost stress), gates and registry, artifacts written to disk. It configures
Django itself, on a throwaway SQLite database and artifact root.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from research.backtest import simulate  # noqa: E402
from research.metrics import compute_metrics  # noqa: E402

N_SYMBOLS = 20
N_DAYS = 5040  # twenty years of trading days
KERNEL_TARGET_BARS_PER_SECOND = 5_000_000
KERNEL_TARGET_SHARE_OF_MINIMAL = 0.5
FULL_RUN_TARGET_SECONDS = 0.5
SMA_PARAMS = {"fast": 20, "slow": 100}


def synthetic_market(n_days: int = N_DAYS, n_symbols: int = N_SYMBOLS, seed: int = 20240101):
    """Deterministic daily closes: a seeded geometric random walk per symbol."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, size=(n_days, n_symbols)), axis=0))
    dates = np.datetime64("2010-01-04") + np.arange(n_days)
    symbols = [f"SYN{i}" for i in range(n_symbols)]
    return dates, close, symbols


def kernel_run(dates, close, symbols) -> dict:
    sim = simulate(dates=dates, close=close, symbols=symbols, family="sma_crossover", params=SMA_PARAMS,
                   fee_bps=1.0, slippage_bps=2.0, start=1, end=close.shape[0])
    return compute_metrics(sim)


def minimal_run(dates, close, symbols, fast: int = 20, slow: int = 100, cost: float = 3e-4) -> dict:
    """The minimal plain-numpy backtest the kernel is measured against."""
    n_days, n_symbols = close.shape
    sums = np.vstack([np.zeros((1, n_symbols)), np.cumsum(close, axis=0)])
    fast_sma = np.full(close.shape, np.nan)
    fast_sma[fast - 1:] = (sums[fast:] - sums[:-fast]) / fast
    slow_sma = np.full(close.shape, np.nan)
    slow_sma[slow - 1:] = (sums[slow:] - sums[:-slow]) / slow
    held = np.zeros(close.shape)
    held[1:] = (fast_sma[:-1] > slow_sma[:-1]) / n_symbols
    returns = np.zeros(close.shape)
    returns[1:] = close[1:] / close[:-1] - 1.0
    net = (held * returns).sum(axis=1) - cost * np.abs(np.diff(held, axis=0, prepend=0.0)).sum(axis=1)
    equity = np.cumprod(1.0 + net)
    return {"sharpe": net.mean() / net.std(ddof=1) * np.sqrt(252), "total_return": equity[-1] - 1.0,
            "max_drawdown": (equity / np.maximum.accumulate(equity) - 1.0).min()}


def bars_per_second(repetitions: int = 40, rounds: int = 7) -> tuple[float, float]:
    """Best-of-`rounds` throughput of the kernel and of the minimal backtest, measured in alternation so both
    see the same machine load."""
    dates, close, symbols = synthetic_market()
    best = {kernel_run: float("inf"), minimal_run: float("inf")}
    for run in best:
        run(dates, close, symbols)  # warm caches and lazy imports out of the timing
    for _ in range(rounds):
        for run in best:
            began = time.perf_counter()
            for _ in range(repetitions):
                run(dates, close, symbols)
            best[run] = min(best[run], time.perf_counter() - began)
    return repetitions * close.size / best[kernel_run], repetitions * close.size / best[minimal_run]


def _django_on_scratch_database(folder: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "eam_site.test_settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ["EAM_ARTIFACT_ROOT"] = f"{folder}/artifacts"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def full_run_seconds(repetitions: int = 10) -> tuple[float, float]:
    """(first run with a cold snapshot cache, median of the next runs) of compile + run + gates + registry.

    Every run has other parameters (slow = 100 + i), so every run computes and writes a new dossier.
    """
    with tempfile.TemporaryDirectory(prefix="eam-bench-") as folder:
        _django_on_scratch_database(folder)
        from research import snapshots
        from research.compiler import compile_blueprint
        from research.dossier import run_dossier
        from research.gates import evaluate_gates
        from research.policies import load_policy_bundle, trials_policy
        from research.registry import record_trial, trials_in_scope

        snapshots.ingest_demo("demo_snap_001")
        snapshots._PANELS.clear()  # the first run reads and parses the snapshot file, as a fresh worker does

        def one_run(i: int) -> float:
            blueprint = {
                "schema_version": "blueprint_v1",
                "strategy": {"family": "sma_crossover", "params": {"fast": 20, "slow": 100 + i}},
                "universe": {"symbols": ["ACME", "BOLT", "CRUX", "DYNA", "EPIC"]},
                "evaluation": {"protocol": "walk_forward"},
            }
            job_id = f"bench{i:07d}"
            began = time.perf_counter()
            runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id="demo_snap_001",
                                                policy_bundle_id="default_v1")
            dossier = run_dossier(runspec)
            bundle, _ = load_policy_bundle("default_v1")
            trials = trials_in_scope(scope=trials_policy(bundle)["scope"], runspec=runspec, run_id=run_id,
                                     root_job_id="bench0000000")
            gates = evaluate_gates(runspec=runspec, run_id=run_id, trials=trials,
                                   output_path=f"jobs/{job_id}/outputs/gate_results.json")
            record_trial(job_id=job_id, root_job_id="bench0000000", run_id=run_id, runspec=runspec,
                         verdict=gates.verdict, metrics=dossier.summary)
            return time.perf_counter() - began

        cold = one_run(0)
        warm = statistics.median(one_run(i) for i in range(1, repetitions + 1))
    return cold, warm


def main() -> int:
    rate, minimal = bars_per_second()
    share = rate / minimal
    met = rate >= KERNEL_TARGET_BARS_PER_SECOND and share >= KERNEL_TARGET_SHARE_OF_MINIMAL
    verdict = "ok" if met else "BELOW TARGET"
    print(f"kernel: sma_crossover(20,100) simulate+metrics, {N_SYMBOLS} symbols x {N_DAYS} days: "
          f"{rate / 1e6:.1f} M bars/s (target {KERNEL_TARGET_BARS_PER_SECOND / 1e6:.0f} M); minimal plain-numpy "
          f"backtest {minimal / 1e6:.1f} M bars/s; kernel/minimal {share:.2f}x "
          f"(target {KERNEL_TARGET_SHARE_OF_MINIMAL}x) {verdict}")
    cold, warm = full_run_seconds()
    verdict = "ok" if max(cold, warm) <= FULL_RUN_TARGET_SECONDS else "ABOVE TARGET"
    print(f"full run: compile + run (8 test segments, holdout, 2x-cost stress) + gates + registry, demo snapshot "
          f"5 of 6 symbols x 2608 days: first {cold:.3f} s, then median {warm:.3f} s "
          f"(target {FULL_RUN_TARGET_SECONDS} s) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
