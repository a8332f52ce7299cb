"""The vectorised backtest against a plain bar-by-bar reference, and its guards against look-ahead.

Pure numpy: no database, no Django.
"""

import json
import math

import numpy as np
import pytest

from research import strategies
from research.backtest import simulate
from research.metrics import compute_metrics

TOLERANCE = 1e-9


# --- builders -------------------------------------------------------------------------------------------

def random_walk(n_bars=600, n_symbols=2, seed=7, step=0.012):
    """A seeded geometric random walk: (dates, close, symbols)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, step, size=(n_bars, n_symbols)), axis=0))
    dates = np.datetime64("2015-01-01") + np.arange(n_bars)
    symbols = [f"SYM{i}" for i in range(n_symbols)]
    return dates, close, symbols


def run(family, params, *, close, dates, symbols, start, end, fee_bps=1.0, slippage_bps=2.0):
    return simulate(dates=dates, close=close, symbols=symbols, family=family, params=params,
                    fee_bps=fee_bps, slippage_bps=slippage_bps, start=start, end=end)


# --- the reference: one bar at a time, only the closes seen so far ----------------------------------------

def reference_decision(family, params, seen, n_symbols):
    """Target weight per symbol at the close of the last bar of `seen` (a list of rows of closes)."""
    if family == "buy_and_hold":
        return [1.0 / n_symbols] * n_symbols
    fast, slow = params["fast"], params["slow"]
    weights = []
    for i in range(n_symbols):
        if len(seen) < slow:
            weights.append(0.0)
            continue
        sma_fast = sum(row[i] for row in seen[-fast:]) / fast
        sma_slow = sum(row[i] for row in seen[-slow:]) / slow
        weights.append(1.0 / n_symbols if sma_fast > sma_slow else 0.0)
    return weights


def reference_backtest(family, params, close, start, end, fee_bps, slippage_bps, lag=1):
    """Bar-by-bar backtest. lag=1 is the convention (decided at close t-1, held in t); lag=0 peeks."""
    n_symbols = len(close[0])
    rows = [list(map(float, row)) for row in close[:end]]
    decisions = [reference_decision(family, params, rows[:t + 1], n_symbols) for t in range(end)]
    held_before = [0.0] * n_symbols
    net, held_history = [], []
    for t in range(start, end):
        decided_at = t - lag
        held = decisions[decided_at] if decided_at >= 0 and t >= 1 else [0.0] * n_symbols
        gross = sum(held[i] * (rows[t][i] / rows[t - 1][i] - 1.0) for i in range(n_symbols)) if t >= 1 else 0.0
        turnover = sum(abs(held[i] - held_before[i]) for i in range(n_symbols))
        net.append(gross - turnover * (fee_bps + slippage_bps) / 1e4)
        held_history.append(held)
        held_before = held
    return net, held_history


def reference_summary(net, held_history):
    equity, peak, max_drawdown = 1.0, 1.0, 0.0
    for r in net:
        equity *= 1.0 + r
        peak = max(peak, equity)
        max_drawdown = min(max_drawdown, equity / peak - 1.0)
    n = len(net)
    mean = sum(net) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in net) / (n - 1))
    trades = 0
    for i in range(len(held_history[0])):
        was_held = False
        for held in held_history:
            if held[i] != 0.0 and not was_held:
                trades += 1
            was_held = held[i] != 0.0
    return {"total_return": equity - 1.0, "sharpe": mean / std * math.sqrt(252),
            "max_drawdown": max_drawdown, "trades": trades}


def assert_matches_reference(metrics, expected):
    for key in ("total_return", "sharpe", "max_drawdown"):
        assert metrics[key] == pytest.approx(expected[key], abs=TOLERANCE, rel=0), key
    assert metrics["trades"] == expected["trades"]


# --- agreement with the reference ------------------------------------------------------------------------

@pytest.mark.parametrize("family, params", [
    ("buy_and_hold", {}),
    ("sma_crossover", {"fast": 10, "slow": 40}),
    ("sma_crossover", {"fast": 5, "slow": 20}),
])
@pytest.mark.parametrize("start, end", [(0, 600), (150, 450)])
def test_kernel_equals_bar_by_bar_reference(family, params, start, end):
    dates, close, symbols = random_walk()

    sim = run(family, params, close=close, dates=dates, symbols=symbols, start=start, end=end)
    metrics = compute_metrics(sim)
    net, held = reference_backtest(family, params, close, start, end, 1.0, 2.0)

    assert_matches_reference(metrics, reference_summary(net, held))
    np.testing.assert_allclose(sim.net_returns, net, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(sim.weights, np.array(held))
    assert sim.dates[0] == dates[start] and sim.dates.shape == (end - start,)


def test_sma_reference_has_enough_trades_to_mean_something():
    dates, close, symbols = random_walk()
    sim = run("sma_crossover", {"fast": 5, "slow": 20}, close=close, dates=dates, symbols=symbols, start=0, end=600)
    assert len(sim.trades) >= 10


# --- look-ahead ------------------------------------------------------------------------------------------

def test_look_ahead_variant_differs_from_reference_and_kernel():
    dates, close, symbols = random_walk()
    params = {"fast": 5, "slow": 20}

    honest = reference_summary(*reference_backtest("sma_crossover", params, close, 100, 600, 1.0, 2.0, lag=1))
    peeking = reference_summary(*reference_backtest("sma_crossover", params, close, 100, 600, 1.0, 2.0, lag=0))
    kernel = compute_metrics(run("sma_crossover", params, close=close, dates=dates, symbols=symbols,
                                 start=100, end=600))

    # Trading on the close that produced the signal earns the move that produced it: visibly better.
    assert peeking["sharpe"] > honest["sharpe"] + 0.5
    assert kernel["total_return"] == pytest.approx(honest["total_return"], abs=TOLERANCE, rel=0)
    assert kernel["total_return"] != pytest.approx(peeking["total_return"], abs=1e-3)


@pytest.mark.parametrize("family, params", [
    ("sma_crossover", {"fast": 5, "slow": 20}),
    ("ts_momentum", {"lookback": 20, "vol_target": 0.15}),
    ("rsi_mean_reversion", {"period": 14, "entry": 35, "exit": 55, "trend_filter": 50}),
    ("xs_momentum", {"lookback": 20, "top_k": 2}),
])
def test_prices_after_end_do_not_change_the_segment(family, params):
    dates, close, symbols = random_walk(n_symbols=4)
    altered = close.copy()
    altered[450:] *= 3.0
    altered[460:, 1] /= 7.0

    before = run(family, params, close=close, dates=dates, symbols=symbols, start=200, end=450)
    after = run(family, params, close=altered, dates=dates, symbols=symbols, start=200, end=450)

    np.testing.assert_array_equal(before.weights, after.weights)
    np.testing.assert_array_equal(before.net_returns, after.net_returns)
    assert before.trades == after.trades


@pytest.mark.parametrize("family, params", [
    ("buy_and_hold", {}),
    ("sma_crossover", {"fast": 5, "slow": 20}),
    ("ts_momentum", {"lookback": 20, "vol_target": 0.15}),
    ("rsi_mean_reversion", {"period": 14, "entry": 35, "exit": 55, "trend_filter": 50}),
    ("xs_momentum", {"lookback": 20, "top_k": 2}),
])
def test_weight_held_in_a_bar_ignores_that_bars_close(family, params):
    dates, close, symbols = random_walk(n_symbols=4)
    shocked = close.copy()
    shocked[300] *= np.array([1.5, 0.6, 1.3, 0.8])

    before = run(family, params, close=close, dates=dates, symbols=symbols, start=100, end=600)
    after = run(family, params, close=shocked, dates=dates, symbols=symbols, start=100, end=600)

    # Bar 300 is row 200 of the segment: its weight (and all before) was fixed at the close of bar 299.
    np.testing.assert_array_equal(before.weights[:201], after.weights[:201])


# --- costs -----------------------------------------------------------------------------------------------

def test_doubling_the_fee_costs_exactly_the_extra_fee_on_recorded_turnover():
    dates, close, symbols = random_walk()
    fee_bps, slippage_bps = 5.0, 3.0
    params = {"fast": 5, "slow": 20}

    base = run("sma_crossover", params, close=close, dates=dates, symbols=symbols, start=50, end=600,
               fee_bps=fee_bps, slippage_bps=slippage_bps)
    doubled = run("sma_crossover", params, close=close, dates=dates, symbols=symbols, start=50, end=600,
                  fee_bps=2 * fee_bps, slippage_bps=slippage_bps)

    np.testing.assert_array_equal(base.turnover, doubled.turnover)
    np.testing.assert_array_equal(base.gross_returns, doubled.gross_returns)
    np.testing.assert_allclose(doubled.net_returns, base.net_returns - base.turnover * fee_bps / 1e4,
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(base.costs, base.turnover * (fee_bps + slippage_bps) / 1e4, rtol=0, atol=1e-15)
    assert base.turnover.sum() > 10  # the comparison covers many trades
    assert base.turnover[0] == pytest.approx(np.abs(base.weights[0]).sum())  # entering is charged

    expected_total = float(np.prod(1.0 + base.net_returns - base.turnover * fee_bps / 1e4) - 1.0)
    assert compute_metrics(doubled)["total_return"] == pytest.approx(expected_total, abs=TOLERANCE, rel=0)
    assert compute_metrics(doubled)["total_return"] < compute_metrics(base)["total_return"]


# --- every family ----------------------------------------------------------------------------------------

ALL_FAMILIES = [
    ("buy_and_hold", {}),
    ("sma_crossover", {"fast": 10, "slow": 50}),
    ("ts_momentum", {"lookback": 60}),
    ("ts_momentum", {"lookback": 60, "vol_target": 0.15}),
    ("rsi_mean_reversion", {"period": 14, "entry": 30, "exit": 55}),
    ("rsi_mean_reversion", {"period": 14, "entry": 40, "exit": 60, "trend_filter": 100}),
    ("xs_momentum", {"lookback": 60, "top_k": 2}),
]


@pytest.mark.parametrize("family, params", ALL_FAMILIES)
def test_every_family_gives_finite_json_ready_results(family, params):
    dates, close, symbols = random_walk(n_bars=800, n_symbols=5, seed=11)

    sim = run(family, params, close=close, dates=dates, symbols=symbols, start=150, end=800)
    metrics = compute_metrics(sim)

    for series in (sim.weights, sim.gross_returns, sim.net_returns, sim.costs, sim.turnover):
        assert np.isfinite(series).all()
    assert (sim.weights >= 0).all()
    assert metrics["exposure"] > 0 and metrics["trades"] > 0
    json.dumps({"metrics": metrics, "trades": sim.trades}, allow_nan=False)


def test_vol_target_scales_weights_within_the_cap():
    dates, close, symbols = random_walk(n_bars=800, n_symbols=5, seed=11)
    plain = strategies.ts_momentum(close, lookback=60)
    scaled = strategies.ts_momentum(close, lookback=60, vol_target=0.15)

    assert (scaled[plain == 0] == 0).all()
    assert scaled.max() <= strategies.MAX_VOL_SCALE / 5 + 1e-15
    realised = strategies.rolling_volatility(close)[300, 0]
    if plain[300, 0]:
        assert scaled[300, 0] == pytest.approx(min(0.15 / realised, 2.0) / 5)


def test_xs_momentum_holds_exactly_top_k_once_warm():
    dates, close, symbols = random_walk(n_bars=400, n_symbols=5, seed=3)
    weights = strategies.xs_momentum(close, lookback=30, top_k=2)

    held_count = (weights > 0).sum(axis=1)
    assert (held_count[:30] == 0).all()
    assert (held_count[30:] == 2).all()
    np.testing.assert_allclose(weights[30:].sum(axis=1), 1.0)
    momentum = close[300] / close[270] - 1.0
    assert set(np.flatnonzero(weights[300])) == set(np.argsort(-momentum)[:2])


def test_xs_momentum_refuses_top_k_above_universe():
    _, close, _ = random_walk(n_symbols=2)
    with pytest.raises(ValueError):
        strategies.xs_momentum(close, lookback=10, top_k=3)


# --- RSI -------------------------------------------------------------------------------------------------

def reference_rsi(prices, period):
    """Wilder's RSI, one bar at a time."""
    out = [math.nan] * len(prices)
    gains = [max(prices[t] - prices[t - 1], 0.0) for t in range(1, len(prices))]
    losses = [max(prices[t - 1] - prices[t], 0.0) for t in range(1, len(prices))]
    avg_gain = avg_loss = None
    for t in range(period, len(prices)):
        if avg_gain is None:
            avg_gain, avg_loss = sum(gains[:period]) / period, sum(losses[:period]) / period
        else:
            avg_gain = (avg_gain * (period - 1) + gains[t - 1]) / period
            avg_loss = (avg_loss * (period - 1) + losses[t - 1]) / period
        out[t] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


@pytest.mark.parametrize("period", [2, 3, 14, 30])
def test_rsi_equals_wilder_recursion(period):
    _, close, _ = random_walk(n_bars=3000, n_symbols=2, seed=5)

    fast = strategies.rsi(close, period)

    for i in range(2):
        np.testing.assert_allclose(fast[:, i], reference_rsi(list(close[:, i]), period), rtol=0, atol=1e-9)


def test_rsi_hysteresis_enters_below_entry_and_leaves_above_exit():
    # Falls (RSI low: enter), rebounds mildly (RSI between levels: stay), then rallies (RSI high: leave),
    # drifts down mildly (between levels: stay out).
    down = list(100.0 - np.arange(8) * 2.0)
    mild_up = [down[-1] + 0.5 * k * (1 if k % 2 else -0.6) for k in range(1, 4)]
    rally = [mild_up[-1] + 3.0 * k for k in range(1, 6)]
    drift = [rally[-1] - 0.4 * k * (1 if k % 2 else -0.5) for k in range(1, 4)]
    close = np.array(down + mild_up + rally + drift)[:, None]
    strength = strategies.rsi(close, 3)

    weights = strategies.rsi_mean_reversion(close, period=3, entry=30, exit=70)[:, 0]

    expected, long = [], False
    for value in strength:
        if value < 30:
            long = True
        elif value > 70:
            long = False
        expected.append(1.0 if long else 0.0)
    np.testing.assert_array_equal(weights, expected)
    between = (strength >= 30) & (strength <= 70)
    assert (between & (weights == 1.0)).any(), "a bar between the levels stays long"
    assert (between & (weights == 0.0) & ~np.isnan(strength)).any(), "a bar between the levels stays flat"


def test_rsi_trend_filter_only_holds_above_the_average():
    _, close, _ = random_walk(n_bars=800, n_symbols=3, seed=11)
    plain = strategies.rsi_mean_reversion(close, period=14, entry=40, exit=60)
    filtered = strategies.rsi_mean_reversion(close, period=14, entry=40, exit=60, trend_filter=100)

    with np.errstate(invalid="ignore"):
        above = close > strategies.sma(close, 100)
    np.testing.assert_array_equal(filtered, np.where(above, plain, 0.0))
    assert (filtered > 0).any() and (filtered < plain).any()


# --- trades and warm-up ----------------------------------------------------------------------------------

def test_trades_are_round_trips_with_an_open_one_at_the_end():
    dates, close, symbols = random_walk()
    sim = run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=100, end=600)

    assert [t["symbol"] for t in sim.trades] == symbols
    for i, trade in enumerate(sim.trades):
        assert trade["entry_date"] == str(dates[100]) and trade["exit_date"] is None
        assert trade["bars"] == 500
        assert trade["return"] == pytest.approx(close[599, i] / close[99, i] - 1.0, rel=1e-12)

    sma = run("sma_crossover", {"fast": 5, "slow": 20}, close=close, dates=dates, symbols=symbols,
              start=100, end=600)
    assert sma.trades == reference_trades(sma.weights, close, dates, symbols, start=100)
    assert any(t["exit_date"] is None for t in sma.trades) or sma.weights[-1].sum() == 0
    assert sum(t["exit_date"] is not None for t in sma.trades) >= 10


def reference_trades(weights, close, dates, symbols, start):
    """Round trips rebuilt bar by bar, listed by entry bar then universe order."""
    found = []
    for i, symbol in enumerate(symbols):
        entry = None
        for k in range(weights.shape[0] + 1):
            held = k < weights.shape[0] and weights[k, i] != 0
            if held and entry is None:
                entry = k
            elif not held and entry is not None:
                last = start + k - 1
                found.append((entry, i, {
                    "symbol": symbol,
                    "entry_date": str(dates[start + entry]),
                    "exit_date": str(dates[start + k]) if k < weights.shape[0] else None,
                    "bars": k - entry,
                    "return": float(close[last, i] / close[start + entry - 1, i] - 1.0),
                }))
                entry = None
    return [trade for _, _, trade in sorted(found, key=lambda row: row[:2])]


@pytest.mark.parametrize("family, params", ALL_FAMILIES)
def test_warmup_bars_is_where_the_first_informed_position_appears(family, params):
    # A steady trend every family acts on at once: rising (falling for mean reversion), at distinct rates.
    rates = np.array([1.001, 1.002, 1.003, 1.004, 1.005])
    if family == "rsi_mean_reversion":
        rates = 1.0 / rates
    close = 100.0 * rates ** np.arange(400)[:, None]
    weights = strategies.target_weights(family, close, params)
    warmup = strategies.warmup_bars(family, params)

    assert (weights[:warmup - 1] == 0).all()
    if params.get("trend_filter") is None:  # a falling price never passes the trend filter
        assert (weights[warmup - 1] != 0).any()


def test_invalid_segment_is_refused():
    dates, close, symbols = random_walk()
    with pytest.raises(ValueError):
        run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=300, end=300)
    with pytest.raises(ValueError):
        run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=0, end=601)
    with pytest.raises(ValueError):
        run("no_such_family", {}, close=close, dates=dates, symbols=symbols, start=0, end=600)


def test_hold_between_resolves_a_bar_flagged_both_ways_to_flat():
    enter = np.array([[False], [True], [True], [False], [False], [True]])
    leave = np.array([[False], [False], [True], [False], [True], [False]])

    held = strategies.hold_between(enter, leave)[:, 0]

    np.testing.assert_array_equal(held, [False, True, False, False, False, True])


def test_sma_crossover_stays_flat_when_the_averages_are_equal():
    close = np.full((60, 2), 50.0)
    assert (strategies.sma_crossover(close, fast=5, slow=20) == 0).all()


def test_xs_momentum_breaks_ties_by_universe_order():
    close = np.ones((10, 4)) * np.array([10.0, 20.0, 30.0, 40.0])
    close[5:, 3] *= 0.9  # the last symbol falls; the other three tie at zero momentum
    weights = strategies.xs_momentum(close, lookback=3, top_k=2)
    np.testing.assert_array_equal(weights[-1], [0.5, 0.5, 0.0, 0.0])
