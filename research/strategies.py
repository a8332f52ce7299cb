"""Strategy families: turn a close-price matrix into target weights, fully vectorised.

Every family takes `close` of shape (T, N) and returns target weights of the same shape, where row t is the
portfolio decided at the close of bar t (it is held from bar t+1; the shift is `research.backtest`'s job).
Row t depends on close[:t+1] only. Equal weight 1/N across the universe unless a family says otherwise;
`direction` long_only gives weights >= 0, long_short also shorts (-1/N) on the opposite signal, so a full
signal is gross exposure 1 either way. Signals are exact: equal prices compare equal (a flat window's
average is the price itself, not the price plus running-sum rounding), so a flat series never trades.
Parameters arrive schema-validated; only the rules a kernel cannot live without are re-checked.
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
DIRECTIONS = ("long_only", "long_short")
# Families that can short; buy_and_hold is long by definition.
LONG_SHORT_FAMILIES = frozenset({"sma_crossover", "ts_momentum", "rsi_mean_reversion", "xs_momentum"})
# Wilder smoothing is evaluated in closed form per block; a block is as long as the growth factor
# (1/a)^k stays below this bound, far from float64 overflow (~1e308).
_MAX_BLOCK_GROWTH = 1e100


def sma(close: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average of the last `window` closes at each bar; NaN until `window` bars exist."""
    return _sma(close, window, equal_run(close), _running_sums(close))


def _running_sums(close: np.ndarray) -> np.ndarray:
    # Centred on the first close, so the difference of two large sums does not eat the average's digits.
    return np.cumsum(close - close[:1], axis=0)


def _sma(close: np.ndarray, window: int, runs: np.ndarray | None, sums: np.ndarray) -> np.ndarray:
    """`sma`, given `equal_run(close)` and `_running_sums(close)` (shared by several windows)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    out = np.full(close.shape, np.nan)
    if window > close.shape[0]:
        return out
    window_sums = sums[window - 1:].copy()
    window_sums[1:] -= sums[:-window]
    out[window - 1:] = window_sums / window + close[:1]
    # A window of equal closes averages to exactly that close: the running sums' rounding must not decide.
    if runs is not None:
        flat = runs >= window
        out[flat] = close[flat]
    return out


def equal_run(close: np.ndarray) -> np.ndarray | None:
    """How many consecutive bars up to each bar have exactly its close (1 where the price just changed);
    None when no close ever repeats the one before (then every run is 1)."""
    if not (close[1:] == close[:-1]).any():
        return None
    bar = np.arange(close.shape[0])[:, None]
    changed = np.ones(close.shape, dtype=bool)
    changed[1:] = close[1:] != close[:-1]
    return bar - np.maximum.accumulate(np.where(changed, bar, 0), axis=0) + 1


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


def _signed(long: np.ndarray, short: np.ndarray, direction: str, size: float) -> np.ndarray:
    """`size` where long, -`size` where short (long_short only), 0 elsewhere or where both hold."""
    out = np.zeros(long.shape)
    if direction == "long_only":
        np.copyto(out, size, where=long)
    else:
        np.copyto(out, size, where=long & ~short)
        np.copyto(out, -size, where=short & ~long)
    return out


def crossover_averages(
    close: np.ndarray, *, fast: int, slow: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The averages `sma_crossover` compares, SMA(fast) and SMA(slow), for bars max(fast, slow) - 1 onwards
    (shape (T - max + 1, N)), both minus close[0]; `out` receives the fast one. Needs max(fast, slow) <= T.

    Centred closes (the common centre cannot change their order) keep the average's digits: both come from
    one running sum of close - close[0].
    """
    n_bars = close.shape[0]
    sums = np.empty((n_bars + 1, close.shape[1]))
    sums[0] = 0.0
    np.subtract(close, close[:1], out=sums[1:])
    np.cumsum(sums[1:], axis=0, out=sums[1:])
    first = max(fast, slow)
    fast_average = np.subtract(sums[first:], sums[first - fast:n_bars + 1 - fast], out=out)
    fast_average /= fast
    slow_average = np.subtract(sums[first:], sums[first - slow:n_bars + 1 - slow])
    slow_average /= slow
    runs = equal_run(close)
    if runs is not None:  # a flat window's average is its close, exactly: the rounding of the sums must not decide
        centred = close[first - 1:] - close[:1]
        for average, window in ((fast_average, fast), (slow_average, slow)):
            flat = runs[first - 1:] >= window
            average[flat] = centred[flat]
    return fast_average, slow_average


def sma_crossover(close: np.ndarray, *, fast: int, slow: int, direction: str = "long_only") -> np.ndarray:
    """Long 1/N while SMA(fast) > SMA(slow) at the close (long_short: short 1/N while below); flat while
    equal and until both averages exist."""
    first = max(fast, slow)
    if first > close.shape[0]:
        return np.zeros(close.shape)
    # Few fresh (T, N) buffers (their page faults cost more than the arithmetic): the fast average is computed
    # in the rows of the result it decides, then replaced by the weights.
    weights = np.empty(close.shape)
    weights[:first - 1] = 0.0
    fast_average, slow_average = crossover_averages(close, fast=fast, slow=slow, out=weights[first - 1:])
    above, below = fast_average > slow_average, fast_average < slow_average
    size = 1.0 / close.shape[1]
    np.multiply(above, size, out=fast_average)  # the weights' rows from first - 1 on
    if direction == "long_short":
        np.copyto(fast_average, -size, where=below)
    return weights


def ts_momentum(
    close: np.ndarray, *, lookback: int, vol_target: float | None = None, direction: str = "long_only"
) -> np.ndarray:
    """Long 1/N while the lookback return is positive (long_short: short while negative); optionally
    scaled to a volatility target.

    With `vol_target` (annualised) the weight is 1/N * min(vol_target / realised vol, MAX_VOL_SCALE);
    flat until the realised volatility exists too.
    """
    momentum = lookback_return(close, lookback)
    with np.errstate(invalid="ignore"):
        weights = _signed(momentum > 0.0, momentum < 0.0, direction, 1.0 / close.shape[1])
    if vol_target is None:
        return weights
    vol = rolling_volatility(close)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.minimum(vol_target / vol, MAX_VOL_SCALE)  # vol == 0 -> inf -> capped
    scale[np.isnan(vol)] = 0.0
    return weights * scale


def rsi_mean_reversion(
    close: np.ndarray, *, period: int, entry: float, exit: float, trend_filter: int | None = None,
    direction: str = "long_only",
) -> np.ndarray:
    """Enter long 1/N when RSI < entry, stay long until RSI > exit (hysteresis). long_short mirrors it:
    enter short when RSI > 100 - entry, stay short until RSI < 100 - exit; where both states hold they
    cancel (flat).

    With `trend_filter`, a long is only held while close > SMA(trend_filter) (a short while close is below
    it); the hysteresis state runs underneath, so the position comes back if the trend returns before the
    exit level is reached.
    """
    strength = rsi(close, period)
    with np.errstate(invalid="ignore"):
        long = hold_between(strength < entry, strength > exit)
        short = hold_between(strength > 100.0 - entry, strength < 100.0 - exit)
        if trend_filter is not None:
            trend = sma(close, trend_filter)
            long &= close > trend
            short &= close < trend
    return _signed(long, short, direction, 1.0 / close.shape[1])


def xs_momentum(close: np.ndarray, *, lookback: int, top_k: int, direction: str = "long_only") -> np.ndarray:
    """Hold the top_k symbols by lookback return, 1/top_k each; long_short: also short the bottom_k, each
    side 1/(2 top_k), so gross exposure is 1 and net 0. Flat until every return exists, and on a bar where
    all returns are equal (no ranking to act on).

    Ties go to the symbol listed first in the universe, so the ranking is deterministic.
    """
    n_symbols = close.shape[1]
    sides = 2 if direction == "long_short" else 1
    if not 1 <= sides * top_k <= n_symbols:
        raise ValueError(f"{sides} x top_k must be between 1 and the number of symbols ({n_symbols})")
    order, unranked = momentum_ranking(lookback_return(close, lookback))
    weights = np.zeros(close.shape)
    np.put_along_axis(weights, order[:, :top_k], 1.0 / (sides * top_k), axis=1)
    if sides == 2:  # the last k of the same ranking: never one of the top k, since 2 top_k <= N
        np.put_along_axis(weights, order[:, n_symbols - top_k:], -1.0 / (sides * top_k), axis=1)
    weights[unranked] = 0.0
    return weights


def momentum_ranking(momentum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranking `xs_momentum` acts on: per bar, the columns from the highest return to the lowest (ties to
    the symbol listed first), and whether the bar has no ranking (a return missing, or all equal)."""
    order = np.argsort(-momentum, axis=1, kind="stable")
    with np.errstate(invalid="ignore"):
        unranked = np.isnan(momentum).any(axis=1) | (momentum.max(axis=1) == momentum.min(axis=1))
    return order, unranked


FAMILIES: dict[str, Callable[..., np.ndarray]] = {
    "buy_and_hold": buy_and_hold,
    "sma_crossover": sma_crossover,
    "ts_momentum": ts_momentum,
    "rsi_mean_reversion": rsi_mean_reversion,
    "xs_momentum": xs_momentum,
}


def target_weights(
    family: str, close: np.ndarray, params: dict, *, direction: str = "long_only",
    max_gross_leverage: float | None = None,
) -> np.ndarray:
    """Target weights (T, N) of `family` on `close`; row t is decided at the close of bar t.

    A row whose gross exposure sum |w| exceeds `max_gross_leverage` is scaled down to it.
    """
    try:
        signal = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown strategy family {family!r}") from None
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}")
    if direction == "long_short":
        if family not in LONG_SHORT_FAMILIES:
            raise ValueError(f"{family} is long only")
        weights = signal(close, **params, direction=direction)
    else:
        weights = signal(close, **params)
    if max_gross_leverage is not None:
        gross = np.abs(weights).sum(axis=1, keepdims=True)
        over = gross > max_gross_leverage
        weights = np.where(over, weights * (max_gross_leverage / np.where(over, gross, 1.0)), weights)
    return weights


def indicators(family: str, close: np.ndarray, params: dict) -> dict[str, np.ndarray]:
    """The per-bar values (T, N) the family's signal decides on, by name, from the functions the signal itself
    calls; NaN where a value does not exist (yet). Optional parts appear only when the parameters use them.

    sma_crossover: sma_fast, sma_slow (the compared averages, the first close added back: price units);
    ts_momentum: lookback_return, and volatility with vol_target; rsi_mean_reversion: rsi, and sma_trend with
    trend_filter; xs_momentum: lookback_return, rank (1 = highest return; NaN on a bar with no ranking);
    buy_and_hold: none.
    """
    if family == "sma_crossover":
        fast, slow = params["fast"], params["slow"]
        first = max(fast, slow)
        averages = {"sma_fast": np.full(close.shape, np.nan), "sma_slow": np.full(close.shape, np.nan)}
        if first <= close.shape[0]:
            for name, average in zip(averages, crossover_averages(close, fast=fast, slow=slow)):
                averages[name][first - 1:] = average + close[:1]
        return averages
    if family == "ts_momentum":
        values = {"lookback_return": lookback_return(close, params["lookback"])}
        if params.get("vol_target") is not None:
            values["volatility"] = rolling_volatility(close)
        return values
    if family == "rsi_mean_reversion":
        values = {"rsi": rsi(close, params["period"])}
        if params.get("trend_filter") is not None:
            values["sma_trend"] = sma(close, params["trend_filter"])
        return values
    if family == "xs_momentum":
        momentum = lookback_return(close, params["lookback"])
        order, unranked = momentum_ranking(momentum)
        rank = np.empty(close.shape)
        np.put_along_axis(rank, order, np.arange(1.0, close.shape[1] + 1.0)[None, :], axis=1)
        rank[unranked] = np.nan
        return {"lookback_return": momentum, "rank": rank}
    if family == "buy_and_hold":
        return {}
    raise ValueError(f"unknown strategy family {family!r}")


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
