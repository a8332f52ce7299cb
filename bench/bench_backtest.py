"""Backtest benchmark: prints how many bars per second the research kernel simulates and scores.

Run from the repository root: `.venv/bin/python bench/bench_backtest.py`. The kernel figure needs numpy
only (no Django); a bar is one symbol on one day, so one run of T days x N symbols counts T*N bars.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from research.backtest import simulate  # noqa: E402
from research.metrics import compute_metrics  # noqa: E402

N_SYMBOLS = 5
N_DAYS = 2520  # ten years of trading days
KERNEL_TARGET_BARS_PER_SECOND = 5_000_000
SMA_PARAMS = {"fast": 20, "slow": 100}


def synthetic_market(n_days: int = N_DAYS, n_symbols: int = N_SYMBOLS, seed: int = 20240101):
    """Deterministic daily closes: a seeded geometric random walk per symbol."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, size=(n_days, n_symbols)), axis=0))
    dates = np.datetime64("2010-01-04") + np.arange(n_days)
    symbols = [f"SYN{i}" for i in range(n_symbols)]
    return dates, close, symbols


def kernel_bars_per_second(repetitions: int = 400, rounds: int = 5) -> float:
    """Best-of-`rounds` throughput of simulate + compute_metrics for sma_crossover(20, 100)."""
    dates, close, symbols = synthetic_market()

    def one_run():
        sim = simulate(dates=dates, close=close, symbols=symbols, family="sma_crossover", params=SMA_PARAMS,
                       fee_bps=1.0, slippage_bps=2.0, start=0, end=close.shape[0])
        return compute_metrics(sim)

    one_run()  # warm caches and lazy imports out of the timing
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(repetitions):
            one_run()
        best = min(best, time.perf_counter() - began)
    return repetitions * close.size / best


def main() -> int:
    rate = kernel_bars_per_second()
    verdict = "ok" if rate >= KERNEL_TARGET_BARS_PER_SECOND else "BELOW TARGET"
    print(f"kernel: sma_crossover(20,100) simulate+metrics, {N_SYMBOLS} symbols x {N_DAYS} days: "
          f"{rate / 1e6:.1f} M bars/s (target {KERNEL_TARGET_BARS_PER_SECOND / 1e6:.0f} M) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
