"""Performance metrics of a simulated segment, and the Sharpe-ratio statistics used by the gates.

Everything returned is a plain float/int or None (undefined: too few bars, zero variance, no losses...),
so it can be written to JSON as is. The Sharpe tests follow Bailey & López de Prado: the Probabilistic
Sharpe Ratio (2012, "The Sharpe Ratio Efficient Frontier") and the Deflated Sharpe Ratio (2014, "The
Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality").
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from research.backtest import Simulation

EULER_MASCHERONI = 0.5772156649015329
_STANDARD_NORMAL = NormalDist()


def compute_metrics(sim: Simulation, *, periods_per_year: int = 252, cash_rate: float = 0.0) -> dict:
    """Headline metrics of one window, on its net (after-cost) returns.

    Sharpe, Sortino, the PSR and the t-stat are of the returns in excess of `cash_rate` (annual, simple,
    earned per bar as cash_rate / periods_per_year). Win rate and profit factor are of the trades' net P&L.
    Beside the benchmark: its own headline, beta and alpha (CAPM regression of excess returns, alpha
    annualised), tracking error and information ratio (annualised, of the daily active return net -
    benchmark) and excess_return (total return minus the benchmark's).
    """
    returns = np.asarray(sim.net_returns, dtype=np.float64)
    n_bars = int(returns.shape[0])
    excess = returns - cash_rate / periods_per_year
    total_return, cagr, max_drawdown, drawdown_bars = _growth(returns, periods_per_year)

    mean = float(excess.mean()) if n_bars else math.nan
    std = float(returns.std(ddof=1)) if n_bars > 1 else math.nan
    sharpe_per_bar = mean / std if std > 0 else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2))) if n_bars else math.nan
    skew, kurtosis = _moments(returns)
    trade_pnl = np.array([trade["pnl"] for trade in sim.trades], dtype=np.float64)
    wins, losses = trade_pnl[trade_pnl > 0], trade_pnl[trade_pnl < 0]
    gross_exposure = np.abs(sim.weights).sum(axis=1)  # per bar; not `@ ones`, whose BLAS kernel varies by CPU

    psr = math.nan
    if math.isfinite(sharpe_per_bar) and math.isfinite(kurtosis):
        try:
            psr = probabilistic_sharpe_ratio(sharpe_per_bar, 0.0, n_bars, skew, kurtosis)
        except ValueError:
            pass  # degenerate moments: the PSR is undefined, reported as None

    return {
        "total_return": _json_float(total_return),
        "cagr": _json_float(cagr),
        "ann_volatility": _json_float(std * math.sqrt(periods_per_year)),
        "sharpe": _json_float(sharpe_per_bar * math.sqrt(periods_per_year)),
        "sortino": _json_float(mean / downside * math.sqrt(periods_per_year) if downside > 0 else math.nan),
        "max_drawdown": _json_float(max_drawdown),
        "max_drawdown_duration_bars": drawdown_bars,
        "calmar": _json_float(cagr / -max_drawdown if max_drawdown < 0 else math.nan),
        "turnover": _json_float(float(np.sum(sim.turnover)) / n_bars * periods_per_year if n_bars else math.nan),
        "gross_exposure": _json_float(float(gross_exposure.mean()) if n_bars else math.nan),
        "time_in_market": _json_float(float(np.mean(gross_exposure > 0)) if n_bars else math.nan),
        "trades": len(sim.trades),
        "win_rate": _json_float(wins.size / trade_pnl.size if trade_pnl.size else math.nan),
        "profit_factor": _json_float(wins.sum() / -losses.sum() if losses.size else math.nan),
        "skew": _json_float(skew),
        "kurtosis": _json_float(kurtosis),
        "psr": _json_float(psr),
        "t_stat": _json_float(sharpe_per_bar * math.sqrt(n_bars)),
        "n_bars": n_bars,
        "cash_rate": float(cash_rate),
        **_relative(returns, np.asarray(sim.benchmark_returns, dtype=np.float64), total_return,
                    periods_per_year, cash_rate),
    }


def _growth(returns: np.ndarray, periods_per_year: int) -> tuple[float, float, float, int]:
    """Total return, CAGR, max drawdown and its duration in bars of a return series."""
    n_bars = returns.shape[0]
    equity = np.cumprod(1.0 + returns)
    total_return = float(equity[-1] - 1.0) if n_bars else 0.0
    cagr = (1.0 + total_return) ** (periods_per_year / n_bars) - 1.0 if n_bars and total_return > -1 else math.nan
    max_drawdown, drawdown_bars = _drawdown(equity)
    return total_return, cagr, max_drawdown, drawdown_bars


def _relative(returns: np.ndarray, benchmark: np.ndarray, total_return: float, periods_per_year: int,
              cash_rate: float) -> dict:
    """The benchmark's headline and the strategy's figures against it."""
    n_bars = returns.shape[0]
    bench_total, bench_cagr, bench_drawdown, _ = _growth(benchmark, periods_per_year)
    cash = cash_rate / periods_per_year
    bench_std = float(benchmark.std(ddof=1)) if n_bars > 1 else math.nan
    bench_sharpe = (float(benchmark.mean()) - cash) / bench_std if bench_std > 0 else math.nan
    beta = alpha = tracking = information = math.nan
    if n_bars > 1:
        variance = float(np.var(benchmark, ddof=1))
        if variance > 0:
            beta = float(np.mean((returns - returns.mean()) * (benchmark - benchmark.mean()))) * n_bars / (
                n_bars - 1) / variance
            alpha = ((float(returns.mean()) - cash) - beta * (float(benchmark.mean()) - cash)) * periods_per_year
        active = returns - benchmark
        tracking_per_bar = float(active.std(ddof=1))
        tracking = tracking_per_bar * math.sqrt(periods_per_year)
        if tracking_per_bar > 0:
            information = float(active.mean()) / tracking_per_bar * math.sqrt(periods_per_year)
    return {
        "benchmark": {
            "total_return": _json_float(bench_total),
            "cagr": _json_float(bench_cagr),
            "sharpe": _json_float(bench_sharpe * math.sqrt(periods_per_year)),
            "max_drawdown": _json_float(bench_drawdown),
        },
        "alpha": _json_float(alpha),
        "beta": _json_float(beta),
        "tracking_error": _json_float(tracking),
        "information_ratio": _json_float(information),
        "excess_return": _json_float(total_return - bench_total),
    }


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P(true SR > sr_benchmark) given an observed per-period `sr` over `n_obs` returns.

    Bailey & López de Prado (2012), eq. for PSR: Phi((sr - sr*) sqrt(n-1) / sqrt(1 - g3 sr + (g4-1)/4 sr^2)),
    with g3 the skewness and g4 the non-excess kurtosis (3 for a normal distribution).
    """
    if n_obs < 2:
        raise ValueError("the PSR needs at least two observations")
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not variance > 0:
        raise ValueError("skew and kurtosis give a non-positive Sharpe-ratio variance")
    return normal_cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(variance))


def expected_max_sharpe(n_trials: int, var_trials: float = 1.0) -> float:
    """Expected maximum Sharpe ratio of `n_trials` skill-less trials whose SRs have variance `var_trials`.

    Bailey & López de Prado (2014): sqrt(V) ((1-g) Phi^-1(1-1/N) + g Phi^-1(1-1/(N e))), g the
    Euler-Mascheroni constant. A single trial has nothing to select from: 0.
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if var_trials < 0:
        raise ValueError("var_trials must be >= 0")
    if n_trials == 1:
        return 0.0
    gamma = EULER_MASCHERONI
    return math.sqrt(var_trials) * (
        (1.0 - gamma) * normal_ppf(1.0 - 1.0 / n_trials)
        + gamma * normal_ppf(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    sr: float, n_obs: int, skew: float, kurtosis: float, n_trials: int, var_trials: float
) -> float:
    """PSR against the Sharpe ratio the best of `n_trials` would reach by luck (all per-period)."""
    return probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, var_trials), n_obs, skew, kurtosis)


def normal_cdf(x: float) -> float:
    """Standard normal CDF, via erfc so the far tails keep their relative precision."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_ppf(p: float) -> float:
    """Standard normal quantile (statistics.NormalDist: Wichura's AS241, about 1e-16 relative); +-inf at 0, 1."""
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in [0, 1]")
    return _STANDARD_NORMAL.inv_cdf(p)


def _moments(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness and non-excess kurtosis (population moments, as in Bailey & López de Prado)."""
    if returns.shape[0] < 2:
        return math.nan, math.nan
    deviation = returns - returns.mean()
    squared = deviation * deviation
    m2 = float(np.mean(squared))
    if not m2 > 0:
        return math.nan, math.nan
    return float(np.mean(squared * deviation)) / m2 ** 1.5, float(np.mean(squared * squared)) / m2 ** 2


def _drawdown(equity: np.ndarray) -> tuple[float, int]:
    """Deepest fall from a running peak (<= 0) and the longest stretch of bars spent below a peak."""
    curve = np.concatenate([[1.0], equity])  # the segment starts at its peak
    peak = np.maximum.accumulate(curve)
    depth = float(np.min(curve / peak - 1.0))
    bar = np.arange(curve.shape[0])
    last_peak = np.maximum.accumulate(np.where(curve >= peak, bar, 0))
    return depth, int(np.max(bar - last_peak))


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
