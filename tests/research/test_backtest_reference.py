"""The kernel against an independent bar-by-bar reference (tests/research/reference_backtest.py), and its guards
against look-ahead. Pure numpy: no database, no Django.
"""

import csv
import importlib.util
import io
import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from research import strategies
from research.backtest import evaluate, simulate
from research.demo_data import demo_csv
from research.metrics import compute_metrics

from . import reference_backtest as ref

TOLERANCE = 1e-9


# --- builders -------------------------------------------------------------------------------------------

def business_dates(n_bars, first="2015-01-01"):
    days = np.arange(np.datetime64(first), np.datetime64(first) + 2 * n_bars)
    return days[np.is_busday(days)][:n_bars]


def random_walk(n_bars=600, n_symbols=2, seed=7, step=0.012):
    """A seeded geometric random walk on business days: (dates, close, symbols)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, step, size=(n_bars, n_symbols)), axis=0))
    symbols = [f"SYM{i}" for i in range(n_symbols)]
    return business_dates(n_bars), close, symbols


def run(family, params, *, close, dates, symbols, start, end, fee_bps=1.0, slippage_bps=2.0, **options):
    return simulate(dates=dates, close=close, symbols=symbols, family=family, params=params,
                    fee_bps=fee_bps, slippage_bps=slippage_bps, start=start, end=end, **options)


def demo_market(symbols=("ACME", "BOLT", "CRUX", "DYNA")):
    """The deterministic demo market, parsed from its CSV."""
    rows = list(csv.DictReader(io.StringIO(demo_csv("demo_snap_001").decode())))
    dates = sorted({row["date"] for row in rows})
    at = {(row["date"], row["symbol"]): float(row["close"]) for row in rows}
    close = np.array([[at[(day, s)] for s in symbols] for day in dates])
    return np.array(dates, dtype="datetime64[D]"), close, list(symbols)


def real_market():
    """GOOG's daily open and close 2004-2013, shipped as package data by the pinned `backtesting` package:
    two real price series (a close-to-close and an open-to-open book)."""
    spec = importlib.util.find_spec("backtesting")
    assert spec is not None, "requirements-dev.txt pins `backtesting`, whose package data holds GOOG.csv"
    path = Path(spec.submodule_search_locations[0]) / "test" / "GOOG.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    dates = np.array([row[""] for row in rows], dtype="datetime64[D]")
    close = np.array([[float(row["Close"]), float(row["Open"])] for row in rows])
    return dates, close, ["GOOG", "GOOG_OPEN"]


# --- agreement with the independent reference ----------------------------------------------------------

CASES = [
    ("buy_and_hold", {}, "long_only", None),
    ("buy_and_hold", {}, "long_only", "monthly"),
    ("sma_crossover", {"fast": 10, "slow": 40}, "long_only", None),
    ("sma_crossover", {"fast": 10, "slow": 40}, "long_short", "weekly"),
    ("ts_momentum", {"lookback": 60, "vol_target": None}, "long_only", None),
    ("ts_momentum", {"lookback": 60, "vol_target": 0.15}, "long_short", None),
    ("ts_momentum", {"lookback": 40, "vol_target": None}, "long_short", "daily"),
    ("rsi_mean_reversion", {"period": 14, "entry": 35.0, "exit": 60.0, "trend_filter": None}, "long_only", None),
    ("rsi_mean_reversion", {"period": 14, "entry": 40.0, "exit": 55.0, "trend_filter": 50}, "long_short", None),
    ("xs_momentum", {"lookback": 40, "top_k": 1}, "long_only", None),
    ("xs_momentum", {"lookback": 40, "top_k": 1}, "long_short", "weekly"),
]
MARKETS = {"random_walk": lambda: random_walk(n_bars=700, n_symbols=3, seed=11), "demo": demo_market,
           "real_goog": real_market}


def close_enough(got, expected, key):
    if expected is None or got is None:
        assert got == expected, key
    else:
        assert got == pytest.approx(expected, rel=TOLERANCE, abs=1e-12), key


@pytest.mark.parametrize("market", sorted(MARKETS))
@pytest.mark.parametrize("family, params, direction, rebalance", CASES)
def test_kernel_equals_the_independent_reference(market, family, params, direction, rebalance):
    dates, close, symbols = MARKETS[market]()
    start, end = 150, min(close.shape[0], 1400)
    rule = rebalance or ("monthly" if family == "xs_momentum" else "never")
    fee, slippage = 7.0, 3.0
    days = [date.fromisoformat(str(d)) for d in dates]
    rows = close.tolist()

    evaluation = evaluate(dates=dates, close=close, symbols=symbols, family=family, params=params,
                          direction=direction, rebalance=rebalance, fee_bps=fee, slippage_bps=slippage,
                          start=start, end=end, max_gross_leverage=2.0)
    record = ref.backtest(closes=rows, days=days, family=family, params=params, direction=direction,
                          rebalance=rule, fee_bps=fee, slippage_bps=slippage, start=start, end=end)

    # The whole evaluation (liquidated at its end) and a window inside it (positions carried on).
    for first, stop in ((0, end - start), (100, 400)):
        sim = evaluation.window(first, stop)
        trades = ref.window_trades(record, first, stop, closes=rows, days=days, start=start, symbols=symbols,
                                   k=(fee + slippage) / 1e4)
        expected = ref.metrics(record["net"][first:stop], record["benchmark"][first:stop],
                               weights=record["weights"][first:stop], turnover=record["turnover"][first:stop],
                               trades=trades, cash_rate=0.02)
        got = compute_metrics(sim, cash_rate=0.02)
        np.testing.assert_allclose(np.cumprod(1.0 + sim.net_returns), expected["curve"], rtol=TOLERANCE, atol=0)
        np.testing.assert_allclose(sim.weights, record["weights"][first:stop], rtol=TOLERANCE, atol=1e-15)
        for key in ("total_return", "sharpe", "max_drawdown", "turnover", "gross_exposure", "time_in_market",
                    "trades", "win_rate", "profit_factor", "beta", "alpha", "tracking_error",
                    "information_ratio", "excess_return"):
            if key == "information_ratio" and family == "buy_and_hold":
                continue  # the strategy is its benchmark but for two costs: the active mean is rounding noise
            close_enough(got[key], expected[key], key)
        assert len(sim.trades) == len(trades)
        for mine, theirs in zip(sim.trades, trades):
            assert {k: v for k, v in mine.items() if k not in ("return", "pnl")} == \
                {k: v for k, v in theirs.items() if k not in ("return", "pnl")}
            close_enough(mine["return"], theirs["return"], "return")
            close_enough(mine["pnl"], theirs["pnl"], "pnl")
    assert evaluation.turnover.sum() > 0.9  # something was traded: the comparison covers costs


def test_the_reference_cases_trade_and_short():
    dates, close, symbols = real_market()
    shorts = run("sma_crossover", {"fast": 10, "slow": 40}, close=close, dates=dates, symbols=symbols,
                 start=150, end=1400, direction="long_short")
    assert any(t["side"] == "short" for t in shorts.trades) and len(shorts.trades) >= 20
    assert (shorts.weights < 0).any()


def test_a_named_benchmark_symbol_is_its_own_buy_and_hold():
    dates, close, symbols = random_walk(n_symbols=3)
    index = close[:, 0] * 1.5
    sim = run("sma_crossover", {"fast": 5, "slow": 20}, close=close, dates=dates, symbols=symbols, start=50,
              end=600, benchmark_close=index)
    np.testing.assert_allclose(sim.benchmark_returns, index[50:600] / index[49:599] - 1.0, rtol=1e-10)


# --- continuous evaluation and drifting weights ---------------------------------------------------------

def test_two_symbol_buy_and_hold_over_eight_segments_trades_only_its_entries():
    dates, close, symbols = random_walk(n_bars=9 * 252 + 100, n_symbols=2, seed=3)
    start, fee, slippage = 100, 5.0, 5.0
    k = (fee + slippage) / 1e4
    evaluation = evaluate(dates=dates, close=close, symbols=symbols, family="buy_and_hold", params={},
                          fee_bps=fee, slippage_bps=slippage, start=start, end=close.shape[0])
    oos = evaluation.window(0, 8 * 252)  # eight test segments of 252 bars; the rest is the holdout

    metrics = compute_metrics(oos)
    assert metrics["trades"] == 2 and len(oos.trades) == 2
    assert all(t["exit_date"] is None for t in oos.trades)
    assert sum(len(evaluation.window(s * 252, (s + 1) * 252).trades) for s in range(8)) == 2
    # Drifted weights: 1/2 of each at the start, no rebalancing, entry cost once, nothing else paid.
    growth = close[start + 8 * 252 - 1] / close[start - 1]
    assert metrics["total_return"] == pytest.approx((1 - k) * growth.mean() - 1.0, rel=1e-12)
    assert oos.turnover.sum() == pytest.approx(1.0, rel=1e-15)
    held_growth = close[start + 8 * 252 - 2] / close[start - 1]
    np.testing.assert_allclose(oos.weights[-1], held_growth / held_growth.sum(), rtol=1e-12)


def test_daily_rebalancing_pays_for_the_drift_and_never_does_not():
    dates, close, symbols = random_walk(n_bars=800, n_symbols=2, seed=5)
    args = dict(close=close, dates=dates, symbols=symbols, start=100, end=800, fee_bps=10.0, slippage_bps=0.0)
    drifting = run("buy_and_hold", {}, **args)
    daily = run("buy_and_hold", {}, rebalance="daily", **args)

    assert drifting.turnover.sum() == pytest.approx(2.0)  # in and out
    assert daily.turnover[1:-1].min() > 0  # every close corrects the drift, and pays for it
    expected_net = (1.0 + daily.gross_returns) * (1.0 - 10e-4 * np.r_[daily.turnover[:-1], 0.0]) - 1.0
    np.testing.assert_allclose(daily.net_returns[:-1], expected_net[:-1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(daily.weights, np.full(daily.weights.shape, 0.5))


@pytest.mark.parametrize("rule, first_of", [("weekly", "W"), ("monthly", "M")])
def test_scheduled_rebalancing_trades_on_the_first_bar_of_each_period(rule, first_of):
    dates, close, symbols = random_walk(n_bars=500, n_symbols=3, seed=2)
    sim = run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=50, end=500, rebalance=rule)
    traded_bars = np.flatnonzero(sim.turnover[:-1] > 0)
    decision_dates = [date.fromisoformat(str(d)) for d in dates[49:499]]
    period = np.array([d.isocalendar()[:2] if first_of == "W" else (d.year, d.month) for d in decision_dates])
    period = period[:, 0] * 100 + period[:, 1]
    expected = np.flatnonzero(np.r_[True, period[1:] != period[:-1]])
    np.testing.assert_array_equal(traded_bars, expected)


def test_the_end_of_the_evaluation_liquidates_with_cost():
    dates, close, symbols = random_walk(n_bars=300, n_symbols=2)
    fee = 20.0
    sim = run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=50, end=300, fee_bps=fee,
              slippage_bps=0.0)
    growth = close[299] / close[49]
    value_before_exit = (1 - fee / 1e4) * growth.mean()
    assert compute_metrics(sim)["total_return"] == pytest.approx(value_before_exit * (1 - fee / 1e4) - 1, rel=1e-12)
    assert sim.turnover[-1] == pytest.approx(1.0)
    assert all(t["exit_date"] == str(dates[299]) for t in sim.trades)
    # A window that ends earlier carries its positions on: open, valued less the exit they would pay.
    evaluation = evaluate(dates=dates, close=close, symbols=symbols, family="buy_and_hold", params={},
                          fee_bps=fee, slippage_bps=0.0, start=50, end=300)
    early = evaluation.window(0, 100)
    assert all(t["exit_date"] is None for t in early.trades)
    k = fee / 1e4
    for i, trade in enumerate(early.trades):
        moves = close[50:150, i] / close[49:149, i] - 1.0
        drifted = (close[149, i] / close[49, i]) / (close[149] / close[49]).sum()
        # weight x return over the bars held, less the entry (half the book) and the exit it would pay
        assert trade["pnl"] == pytest.approx(float(early.weights[:, i] @ moves) - k * 0.5 - k * drifted, rel=1e-12)


def test_gross_leverage_cap_scales_targets_down():
    dates, close, symbols = random_walk(n_bars=500, n_symbols=2, seed=9)
    capped = strategies.target_weights("ts_momentum", close, {"lookback": 20, "vol_target": 0.5},
                                       direction="long_short", max_gross_leverage=0.6)
    free = strategies.target_weights("ts_momentum", close, {"lookback": 20, "vol_target": 0.5},
                                     direction="long_short")
    assert np.abs(free).sum(axis=1).max() > 0.6
    assert np.abs(capped).sum(axis=1).max() == pytest.approx(0.6)
    np.testing.assert_array_equal(np.sign(capped), np.sign(free))


# --- look-ahead ------------------------------------------------------------------------------------------

def test_look_ahead_variant_differs_from_reference_and_kernel():
    dates, close, symbols = random_walk()
    targets = strategies.target_weights("sma_crossover", close, {"fast": 5, "slow": 20})
    moves = close[100:600] / close[99:599] - 1.0
    honest = float(np.prod(1.0 + np.einsum("ij,ij->i", targets[99:599], moves)) - 1.0)
    peeking = float(np.prod(1.0 + np.einsum("ij,ij->i", targets[100:600], moves)) - 1.0)

    kernel = compute_metrics(run("sma_crossover", {"fast": 5, "slow": 20}, close=close, dates=dates,
                                 symbols=symbols, start=100, end=600, rebalance="daily", fee_bps=0.0,
                                 slippage_bps=0.0))

    # Trading on the close that produced the signal earns the move that produced it: visibly better.
    assert peeking > honest + 0.15
    assert kernel["total_return"] == pytest.approx(honest, rel=TOLERANCE)


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
    k = (2 * fee_bps + slippage_bps) / 1e4
    # Every bar but the last (which also pays the liquidation): value x (1 - k turnover), then the bar's move.
    expected = (1 + base.gross_returns[:-1]) * (1 - k * base.turnover[:-1]) - 1
    np.testing.assert_allclose(doubled.net_returns[:-1], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(base.costs, base.gross_returns - base.net_returns, rtol=0, atol=1e-15)
    assert base.turnover.sum() > 10  # the comparison covers many trades
    assert base.turnover[0] == pytest.approx(np.abs(base.weights[0]).sum())  # entering is charged
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
    assert metrics["gross_exposure"] > 0 and metrics["time_in_market"] > 0 and metrics["trades"] > 0
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

def test_trades_are_round_trips_closed_at_the_end_of_the_evaluation():
    dates, close, symbols = random_walk()
    sim = run("buy_and_hold", {}, close=close, dates=dates, symbols=symbols, start=100, end=600)

    assert [t["symbol"] for t in sim.trades] == symbols
    for i, trade in enumerate(sim.trades):
        # Entered at the close before the first bar, left at the last close (the liquidation).
        assert trade["entry_date"] == str(dates[99]) and trade["exit_date"] == str(dates[599])
        assert trade["bars"] == 500 and trade["side"] == "long"
        assert trade["return"] == pytest.approx(close[599, i] / close[99, i] - 1.0, rel=1e-12)

    sma = run("sma_crossover", {"fast": 5, "slow": 20}, close=close, dates=dates, symbols=symbols,
              start=100, end=600)
    assert sum(t["exit_date"] is not None for t in sma.trades) >= 10
    assert all(t["exit_date"] is not None for t in sma.trades)


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
    np.testing.assert_array_equal(weights[7], [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(weights[-1], [0.0, 0.0, 0.0, 0.0])  # all returns equal again: no ranking
    short = strategies.xs_momentum(close, lookback=3, top_k=1, direction="long_short")
    np.testing.assert_array_equal(short[7], [0.5, 0.0, 0.0, -0.5])


# --- exact signals: flat, constant drift and step series ------------------------------------------------

SIGNAL_FAMILIES = [
    ("sma_crossover", {"fast": 5, "slow": 20}),
    ("ts_momentum", {"lookback": 10, "vol_target": None}),
    ("rsi_mean_reversion", {"period": 5, "entry": 30.0, "exit": 60.0, "trend_filter": None}),
    ("xs_momentum", {"lookback": 10, "top_k": 1}),
]


@pytest.mark.parametrize("direction", ["long_only", "long_short"])
@pytest.mark.parametrize("family, params", SIGNAL_FAMILIES)
def test_a_flat_series_never_trades(family, params, direction):
    close = np.full((300, 2), 37.3)
    dates = business_dates(300)

    sim = run(family, params, close=close, dates=dates, symbols=["A", "B"], start=50, end=300, direction=direction)

    assert sim.turnover.sum() == 0 and sim.trades == []


@pytest.mark.parametrize("seed", range(20))
def test_sma_averages_of_a_price_gone_flat_are_equal(seed):
    # A random walk, then the price stops: once the slow window is flat the averages are the same number.
    _, walk, _ = random_walk(n_bars=400, n_symbols=1, seed=seed)
    close = np.vstack([walk, np.full((200, 1), walk[-1, 0])])
    weights = strategies.sma_crossover(close, fast=20, slow=100, direction="long_short")
    assert (weights[400 + 99:] == 0).all()


@pytest.mark.parametrize("direction", ["long_only", "long_short"])
def test_constant_drift_gives_one_steady_position_per_family(direction):
    close = 100.0 * np.array([1.001, 1.003]) ** np.arange(300)[:, None]
    short = direction == "long_short"

    sma = strategies.sma_crossover(close, fast=5, slow=20, direction=direction)
    ts = strategies.ts_momentum(close, lookback=10, direction=direction)
    rsi = strategies.rsi_mean_reversion(close, period=5, entry=30.0, exit=60.0, direction=direction)
    xs = strategies.xs_momentum(close, lookback=10, top_k=1, direction=direction)

    assert (sma[:19] == 0).all() and (sma[19:] == 0.5).all()
    assert (ts[:10] == 0).all() and (ts[10:] == 0.5).all()
    # Only gains: RSI 100, never oversold; overbought for the mirrored short, which never sees RSI fall back.
    assert (rsi[:5] == 0).all() and (rsi[5:] == (-0.5 if short else 0.0)).all()
    assert (xs[:10] == 0).all() and (xs[10:] == ([-0.5, 0.5] if short else [0.0, 1.0])).all()


@pytest.mark.parametrize("direction", ["long_only", "long_short"])
def test_a_step_is_followed_until_the_windows_are_flat_again(direction):
    close = np.full((200, 2), 50.0)
    close[100:, 0] = 55.0  # symbol 0 steps up at bar 100, symbol 1 stays flat
    short = direction == "long_short"

    sma = strategies.sma_crossover(close, fast=5, slow=20, direction=direction)[:, 0]
    ts = strategies.ts_momentum(close, lookback=10, direction=direction)[:, 0]
    rsi = strategies.rsi_mean_reversion(close, period=5, entry=30.0, exit=60.0, direction=direction)[:, 0]
    xs = strategies.xs_momentum(close, lookback=10, top_k=1, direction=direction)

    held = np.zeros(200)
    held[100:119] = 0.5  # until the slow window holds only the new price (bar 119): then equal, flat
    np.testing.assert_array_equal(sma, held)
    held = np.zeros(200)
    held[100:110] = 0.5  # until the lookback reaches past the step
    np.testing.assert_array_equal(ts, held)
    np.testing.assert_array_equal(rsi, np.where(np.arange(200) >= 100, -0.5 if short else 0.0, 0.0))
    expected = np.zeros((200, 2))
    expected[100:110] = [0.5, -0.5] if short else [1.0, 0.0]
    np.testing.assert_array_equal(xs, expected)


def test_a_book_that_loses_everything_is_refused_not_divided_by_zero():
    dates = business_dates(60)
    close = np.full((60, 1), 100.0)
    close[:40, 0] = 10.0 * 0.99 ** np.arange(40)  # falls: the lookback return is negative, the book goes short
    # then, from bar 40, the price is tenfold: a 2x short loses more than the book
    with pytest.raises(ValueError, match="lost all its value"):
        run("ts_momentum", {"lookback": 5, "vol_target": 10.0}, close=close, dates=dates, symbols=["A"], start=31,
            end=60, direction="long_short", max_gross_leverage=2.0)
