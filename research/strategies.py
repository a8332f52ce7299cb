"""Strategy families: turn a close-price matrix into target weights, fully vectorised.

Every family takes `close` of shape (T, N) and returns target weights of the same shape, where row t is the
portfolio decided at the close of bar t (it is held from bar t+1; the shift is `research.backtest`'s job).
Row t depends on close[:t+1] only. Long-only, equal weight 1/N across the universe unless a family says
otherwise. Parameters arrive schema-validated; only the rules a kernel cannot live without are re-checked.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PERIODS_PER_YEAR = 252
# Realised volatility for vol targeting: 20 daily returns, about one trading month.
VOL_WINDOW = 20
# Vol targeting may lever a calm symbol up to twice its equal-weight slot (gross exposure <= 200%):
# without a cap a near-constant price would ask for unbounded leverage.
MAX_VOL_SCALE = 2.0
# Wilder smoothing is evaluated in closed form per block; a block is as long as the growth factor
# (1/a)^k stays below this bound, far from float64 overflow (~1e308).
_MAX_BLOCK_GROWTH = 1e100


def sma(close: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average of the last `window` closes at each bar; NaN until `window` bars exist."""
    if window < 1:
        raise ValueError("window must be >= 1")
    out = np.full(close.shape, np.nan)
    if window > close.shape[0]:
        return out
    # Centre on the first close before the running sum so the difference of two large sums does not
    # eat the digits of the average.
    centred = close - close[:1]
    sums = np.cumsum(centred, axis=0)
    window_sums = sums[window - 1:].copy()
    window_sums[1:] -= sums[:-window]
    out[window - 1:] = window_sums / window + close[:1]
    return out


def rolling_volatility(close: np.ndarray, window: int = VOL_WINDOW) -> np.ndarray:
    """Annualised std (ddof=1) of the last `window` simple returns; NaN until `window` returns exist."""
    out = np.full(close.shape, np.nan)
    returns = close[1:] / close[:-1] - 1.0
    if returns.shape[0] < window:
        return out
    windows = sliding_window_view(returns, window, axis=0)  # (T-window, N, window)
    out[window:] = windows.std(axis=-1, ddof=1) * math.sqrt(PERIODS_PER_YEAR)
    return out


def lookback_return(close: np.ndarray, lookback: int) -> np.ndarray:
    """close_t / close_{t-lookback} - 1; NaN for the first `lookback` bars."""
    out = np.full(close.shape, np.nan)
    if lookback < close.shape[0]:
        out[lookback:] = close[lookback:] / close[:-lookback] - 1.0
    return out


def wilder_average(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's running average of values[1:] (row 0 is ignored: it has no price change).

    Seeded at bar `period` with the mean of values[1:period+1], then
    avg_t = avg_{t-1} * (period-1)/period + values_t / period. NaN before bar `period`.

    The recursion avg_{s+k} = a^k * (avg_s + (1-a) * sum_{j<=k} a^-j x_{s+j}) is exact; it is evaluated
    with one cumulative sum per block, blocks short enough that a^-k cannot overflow. The Python loop runs
    over blocks (a handful), never over bars.
    """
    n_bars = values.shape[0]
    out = np.full(values.shape, np.nan)
    if period < 1:
        raise ValueError("period must be >= 1")
    if n_bars <= period:
        return out
    seed = values[1:period + 1].mean(axis=0)
    out[period] = seed
    tail = values[period + 1:]
    if period == 1 or tail.shape[0] == 0:
        out[period + 1:] = tail
        return out
    decay = (period - 1) / period
    block = max(1, int(math.log(_MAX_BLOCK_GROWTH) / -math.log(decay)))
    level = seed
    for first in range(0, tail.shape[0], block):
        chunk = tail[first:first + block]
        steps = np.arange(1, chunk.shape[0] + 1, dtype=np.float64)[:, None]
        growth = decay ** -steps
        smoothed = decay ** steps * (level + (1.0 - decay) * np.cumsum(chunk * growth, axis=0))
        out[period + 1 + first:period + 1 + first + chunk.shape[0]] = smoothed
        level = smoothed[-1]
    return out


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI in [0, 100]; NaN for the first `period` bars.

    No losses in the window gives 100, no gains 0, and a flat price (neither) the neutral 50.
    """
    change = np.zeros(close.shape)
    change[1:] = np.diff(close, axis=0)
    avg_gain = wilder_average(np.maximum(change, 0.0), period)
    avg_loss = wilder_average(np.maximum(-change, 0.0), period)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        # 100 - 100/(1+G/L) == 100*G/(G+L), which also covers L == 0 without an infinity.
        out = np.where(total > 0, 100.0 * avg_gain / total, 50.0)
    out[np.isnan(total)] = np.nan
    return out


def hold_between(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    """Stateful position from events: in after an `enter` bar, out after a `leave` bar; starts out.

    A bar flagged both ways resolves to out (the conservative reading). Vectorised as a forward fill of
    the last event: the index of the latest event at or before each bar, by a running maximum.
    """
    event = enter | leave
    n_bars = enter.shape[0]
    bar_index = np.arange(1, n_bars + 1)[:, None]
    # Row 0 of `state` is the "no event yet" start state (out); event at bar t lives in row t+1.
    last_event = np.maximum.accumulate(np.where(event, bar_index, 0), axis=0)
    state = np.vstack([np.zeros((1, enter.shape[1]), dtype=bool), enter & ~leave])
    return np.take_along_axis(state, last_event, axis=0)


def buy_and_hold(close: np.ndarray) -> np.ndarray:
    """1/N on every symbol from the first bar."""
    n_symbols = close.shape[1]
    return np.full(close.shape, 1.0 / n_symbols)


def sma_crossover(close: np.ndarray, *, fast: int, slow: int) -> np.ndarray:
    """Long 1/N while SMA(fast) > SMA(slow) at the close; flat until both averages exist."""
    with np.errstate(invalid="ignore"):
        long = sma(close, fast) > sma(close, slow)  # NaN compares False: flat during warm-up
    return long / close.shape[1]


def ts_momentum(close: np.ndarray, *, lookback: int, vol_target: float | None = None) -> np.ndarray:
    """Long 1/N while the lookback return is positive; optionally scaled to a volatility target.

    With `vol_target` (annualised) the weight is 1/N * min(vol_target / realised vol, MAX_VOL_SCALE);
    flat until the realised volatility exists too.
    """
    with np.errstate(invalid="ignore"):
        long = lookback_return(close, lookback) > 0.0
    weights = long / close.shape[1]
    if vol_target is None:
        return weights
    vol = rolling_volatility(close)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.minimum(vol_target / vol, MAX_VOL_SCALE)  # vol == 0 -> inf -> capped
    scale[np.isnan(vol)] = 0.0
    return weights * scale


def rsi_mean_reversion(
    close: np.ndarray, *, period: int, entry: float, exit: float, trend_filter: int | None = None
) -> np.ndarray:
    """Enter long 1/N when RSI < entry, stay long until RSI > exit (hysteresis).

    With `trend_filter`, the position is only held while close > SMA(trend_filter); the hysteresis state
    runs underneath, so the position comes back if the trend returns before the exit level is reached.
    """
    strength = rsi(close, period)
    with np.errstate(invalid="ignore"):
        long = hold_between(strength < entry, strength > exit)
        if trend_filter is not None:
            long &= close > sma(close, trend_filter)
    return long / close.shape[1]


def xs_momentum(close: np.ndarray, *, lookback: int, top_k: int) -> np.ndarray:
    """Hold the top_k symbols by lookback return, 1/top_k each; flat until every return exists.

    Ties go to the symbol listed first in the universe, so the ranking is deterministic.
    """
    n_symbols = close.shape[1]
    if not 1 <= top_k <= n_symbols:
        raise ValueError(f"top_k must be between 1 and the number of symbols ({n_symbols})")
    momentum = lookback_return(close, lookback)
    order = np.argsort(-momentum, axis=1, kind="stable")
    weights = np.zeros(close.shape)
    np.put_along_axis(weights, order[:, :top_k], 1.0 / top_k, axis=1)
    weights[np.isnan(momentum).any(axis=1)] = 0.0
    return weights


FAMILIES: dict[str, Callable[..., np.ndarray]] = {
    "buy_and_hold": buy_and_hold,
    "sma_crossover": sma_crossover,
    "ts_momentum": ts_momentum,
    "rsi_mean_reversion": rsi_mean_reversion,
    "xs_momentum": xs_momentum,
}


def target_weights(family: str, close: np.ndarray, params: dict) -> np.ndarray:
    """Target weights (T, N) of `family` on `close`; row t is decided at the close of bar t."""
    try:
        signal = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown strategy family {family!r}") from None
    return signal(close, **params)


def warmup_bars(family: str, params: dict) -> int:
    """Bars of history needed before a segment so its first bar can already hold an informed position.

    Equals (first bar whose target can be non-zero) + 1, because the target at close t is held in t+1.
    """
    if family == "buy_and_hold":
        first = 0
    elif family == "sma_crossover":
        first = max(params["fast"], params["slow"]) - 1
    elif family == "ts_momentum":
        first = params["lookback"]
        if params.get("vol_target") is not None:
            first = max(first, VOL_WINDOW)
    elif family == "rsi_mean_reversion":
        first = params["period"]
        if params.get("trend_filter") is not None:
            first = max(first, params["trend_filter"] - 1)
    elif family == "xs_momentum":
        first = params["lookback"]
    else:
        raise ValueError(f"unknown strategy family {family!r}")
    return first + 1
