"""A child process of test_cpu_independence.py: runs the kernel on seeded data and prints one sha256 of its numbers.

Run under different OPENBLAS_CORETYPE values, it must print the same: the kernel may not depend on which BLAS
kernel the CPU selects."""
import hashlib

import numpy as np

from research.backtest import evaluate
from research.overfitting import probability_of_backtest_overfitting
rng = np.random.default_rng(7)
n, k = 1500, 12
close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=(n, k)), axis=0))
dates = np.arange(np.datetime64("2015-01-01"), np.datetime64("2015-01-01") + n).astype("datetime64[D]")
h = hashlib.sha256()
for family, params in (("xs_momentum", {"lookback": 60, "top_k": 4}), ("sma_crossover", {"fast": 10, "slow": 50})):
    ev = evaluate(dates=dates, close=close, symbols=[f"S{i}" for i in range(k)], family=family, params=params,
                  fee_bps=5, slippage_bps=5, start=60, end=n)
    for a in (ev.net, ev.gross, ev.turnover, ev.benchmark, ev.cumulative):
        h.update(np.ascontiguousarray(a).tobytes())
pbo = probability_of_backtest_overfitting(rng.normal(0.0003, 0.01, size=(1600, 20)), partitions=16)
h.update(repr(pbo).encode())
print(h.hexdigest())
