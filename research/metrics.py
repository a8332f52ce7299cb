"""Performance metrics of a simulated segment, and the Sharpe-ratio statistics used by the gates.

Everything returned is a plain float/int or None (undefined: too few bars, zero variance, no losses...),
so it can be written to JSON as is. The Sharpe tests follow Bailey & López de Prado: the Probabilistic
Sharpe Ratio (2012, "The Sharpe Ratio Efficient Frontier") and the Deflated Sharpe Ratio (2014, "The
Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality").
"""

from __future__ import annotations

import math

import numpy as np

from research.backtest import Simulation

EULER_MASCHERONI = 0.5772156649015329


def compute_metrics(sim: Simulation, *, periods_per_year: int = 252) -> dict:
    """Headline metrics of one simulation, computed on its net (after-cost) returns."""
    returns = np.asarray(sim.net_returns, dtype=np.float64)
    n_bars = int(returns.shape[0])
    equity = np.cumprod(1.0 + returns)
    total_return = float(equity[-1] - 1.0) if n_bars else 0.0

    mean = float(returns.mean()) if n_bars else math.nan
    std = float(returns.std(ddof=1)) if n_bars > 1 else math.nan
    sharpe_per_bar = mean / std if std > 0 else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) if n_bars else math.nan
    skew, kurtosis = _moments(returns)

    cagr = (1.0 + total_return) ** (periods_per_year / n_bars) - 1.0 if n_bars and total_return > -1 else math.nan
    max_drawdown, drawdown_bars = _drawdown(equity)
    trade_returns = np.array([trade["return"] for trade in sim.trades], dtype=np.float64)
    wins, losses = trade_returns[trade_returns > 0], trade_returns[trade_returns < 0]

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
        "exposure": _json_float(float(np.mean(np.any(sim.weights != 0.0, axis=1))) if n_bars else math.nan),
        "trades": len(sim.trades),
        "win_rate": _json_float(wins.size / trade_returns.size if trade_returns.size else math.nan),
        "profit_factor": _json_float(wins.sum() / -losses.sum() if losses.size else math.nan),
        "skew": _json_float(skew),
        "kurtosis": _json_float(kurtosis),
        "psr": _json_float(psr),
        "t_stat": _json_float(sharpe_per_bar * math.sqrt(n_bars)),
        "n_bars": n_bars,
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


# Acklam's rational approximation of the normal quantile (relative error < 1.15e-9 before refinement).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def normal_ppf(p: float) -> float:
    """Standard normal quantile: Acklam's approximation plus one Halley step (about 1e-15 relative)."""
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        raise ValueError("p must be in [0, 1]")
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = _tail(q)
    elif p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        x = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q / (
            ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
        )
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -_tail(q)
    # Halley refinement against the erfc-based CDF.
    error = normal_cdf(x) - p
    u = error * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _tail(q: float) -> float:
    return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
        (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
    )


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
