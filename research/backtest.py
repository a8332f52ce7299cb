"""Continuous portfolio simulation over the evaluation period; test segments and the holdout are slices of it.

Conventions (DESIGN 6.2, 6.3a):
- The signal at the close of bar t sets the target held during bar t+1; signals see close[:t+1] only.
- One simulation from `start` (the first test bar; the book is flat before it and the first trade is made
  at the close of bar start-1) to `end`: positions carry across segment boundaries.
- Holdings drift with prices between trades: a weight held in bar t becomes w (1 + R) / (1 + g) at its
  close, g the portfolio's gross return (cash earns nothing). The book trades to its target
  (all symbols at once) at the close of a rebalance day (`daily`, the first bar of each `weekly`/`monthly`
  period) or, with `never`, whenever the target changes. Every trade, drift corrections included, is charged
  k = (fee + slippage) / 1e4 on its turnover sum |target - drifted|: the value falls by the factor
  (1 - k turnover) before the next bar's move, so a bar's net return is (1 + g)(1 - k turnover) - 1.
- End of evaluation: the book is liquidated at the close of the last bar, with cost (charged on that bar).
  A window that ends earlier (a test segment, the out-of-sample record) carries its positions on: a trade
  open at its end is reported open, valued at the window's last close less the cost its exit would pay.
- Trades are round trips per symbol (a run of bars held on one side). Their dates are those of the closes at
  which they were entered and left; `pnl` is the net contribution to the portfolio: the sum over the bars held
  of weight x the symbol's return, less fees and slippage on every trade of that symbol in between (entry,
  resizing, exit). `return` is the symbol's price return from entry close to exit close, in the trade's
  direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from research.strategies import target_weights

REBALANCE_RULES = ("never", "daily", "weekly", "monthly")
# Each family's rebalance rule unless the blueprint names one: signal families trade on their signal and let
# weights drift in between; cross-sectional momentum re-ranks once a month.
DEFAULT_REBALANCE = {
    "buy_and_hold": "never",
    "sma_crossover": "never",
    "ts_momentum": "never",
    "rsi_mean_reversion": "never",
    "xs_momentum": "monthly",
}


class BookWipedOut(ValueError):
    """A levered book whose value fell to zero or below: there are no weights to continue with."""


@dataclass(frozen=True)
class Simulation:
    """The per-bar record of one window of the evaluation."""

    dates: np.ndarray              # datetime64[D], the bars of the window, shape (T,)
    weights: np.ndarray            # (T, N) weight held during bar t (after the trade at the close of t-1)
    gross_returns: np.ndarray      # (T,) portfolio simple return before costs
    costs: np.ndarray              # (T,) gross - net
    net_returns: np.ndarray        # (T,) (1 + gross)(1 - k turnover) - 1
    turnover: np.ndarray           # (T,) sum |traded weight| charged on bar t (trade at close t-1; exit at end)
    trades: list[dict]             # round trips entered in the window (see the module docstring)
    benchmark_returns: np.ndarray  # (T,) the benchmark's return (buy-and-hold, no costs)


@dataclass(frozen=True)
class Evaluation:
    """One continuous simulation of bars start..end-1; `window` slices it."""

    dates: np.ndarray        # (n,) bars start..end-1
    close_dates: np.ndarray  # (n+1,) bars start-1..end-1: where the trades are made
    symbols: list
    prices: np.ndarray       # (n+1, N) closes of bars start-1..end-1
    weights: np.ndarray      # (n, N)
    gross: np.ndarray
    net: np.ndarray
    turnover: np.ndarray
    drifted: np.ndarray      # (n, N) weights at the close of each bar, before any trade there
    cumulative: np.ndarray   # (n, N) running sum per symbol of its net contribution: weight x return - its costs
    cost_rate: float
    benchmark: np.ndarray    # (n,)

    def window(self, first: int, stop: int) -> Simulation:
        """Bars first..stop-1 (indices into the evaluation, 0 = bar `start`) as a Simulation."""
        if not 0 <= first < stop <= self.net.shape[0]:
            raise ValueError(f"window [{first}, {stop}) is outside the {self.net.shape[0]} evaluated bars")
        rows = slice(first, stop)
        return Simulation(
            dates=self.dates[rows], weights=self.weights[rows], gross_returns=self.gross[rows],
            costs=self.gross[rows] - self.net[rows], net_returns=self.net[rows], turnover=self.turnover[rows],
            trades=self._trades(first, stop), benchmark_returns=self.benchmark[rows],
        )

    @cached_property
    def _runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every round trip of the evaluation: (first bar, symbol column, last bar, side), by first bar then
        universe order."""
        side = (self.weights > 0).view(np.int8) - (self.weights < 0).view(np.int8)
        changes = np.ones((side.shape[0] + 1, side.shape[1]), dtype=bool)  # row j: side changes before bar j
        np.not_equal(side[1:], side[:-1], out=changes[1:-1])
        held = side != 0
        # Flat indices are row-major: by bar, then universe order.
        entry_bar, entry_column = np.divmod(np.flatnonzero(held & changes[:-1]), side.shape[1])
        last_bar, last_column = np.divmod(np.flatnonzero(held & changes[1:]), side.shape[1])
        # The k-th run of a symbol starts at its k-th entry and ends at its k-th last bar.
        last_for_entry = np.empty_like(last_bar)
        last_for_entry[np.argsort(entry_column, kind="stable")] = last_bar[np.argsort(last_column, kind="stable")]
        return entry_bar, entry_column, last_for_entry, side[entry_bar, entry_column]

    def _trades(self, first: int, stop: int) -> list[dict]:
        entry_bar, entry_column, last_bar, sides = self._runs
        keep = (entry_bar >= first) & (entry_bar < stop)
        entry_bar, entry_column, last_bar, sides = entry_bar[keep], entry_column[keep], last_bar[keep], sides[keep]
        is_open = last_bar >= stop  # runs on past the window (never at the evaluation's end: liquidated)
        last_bar = np.minimum(last_bar, stop - 1)
        before = self.cumulative[np.maximum(entry_bar - 1, 0), entry_column] * (entry_bar > 0)
        pnl = self.cumulative[last_bar, entry_column] - before
        pnl = pnl - is_open * self.cost_rate * np.abs(self.drifted[last_bar, entry_column])
        # prices[j] is the close of bar j-1: the entry close is prices[entry], the exit close prices[last + 1].
        price_return = sides * (self.prices[last_bar + 1, entry_column] / self.prices[entry_bar, entry_column] - 1.0)
        entry_dates = np.datetime_as_string(self.close_dates[entry_bar], unit="D").tolist()
        exit_dates = np.datetime_as_string(self.close_dates[last_bar + 1], unit="D").tolist()
        return [
            {
                "symbol": str(self.symbols[column]),
                "side": "long" if s > 0 else "short",
                "entry_date": entry_date,
                "exit_date": None if open_ else exit_date,
                "bars": last - entry + 1,
                "return": r,
                "pnl": p,
            }
            for entry, last, column, s, open_, entry_date, exit_date, r, p in zip(
                entry_bar.tolist(), last_bar.tolist(), entry_column.tolist(), sides.tolist(), is_open.tolist(),
                entry_dates, exit_dates, price_return.tolist(), pnl.tolist(),
            )
        ]


def evaluate(
    *,
    dates: np.ndarray,
    close: np.ndarray,
    symbols: list[str],
    family: str,
    params: dict,
    fee_bps: float,
    slippage_bps: float,
    start: int,
    end: int,
    direction: str = "long_only",
    rebalance: str | None = None,
    max_gross_leverage: float | None = None,
    benchmark_close: np.ndarray | None = None,
) -> Evaluation:
    """Simulate `family` over bars start..end-1 (indices into `dates`/`close`, end exclusive, start >= 1)."""
    close = np.asarray(close, dtype=np.float64)
    dates = np.asarray(dates, dtype="datetime64[D]")
    _check_inputs(dates, close, symbols, start, end)
    rule = rebalance or DEFAULT_REBALANCE.get(family)
    if rule not in REBALANCE_RULES:
        raise ValueError(f"unknown rebalance rule {rebalance!r}")
    targets = target_weights(family, close[:end], params, direction=direction,
                             max_gross_leverage=max_gross_leverage)[start - 1:end - 1]
    prices = close[start - 1:end]
    n_bars = end - start
    k = (fee_bps + slippage_bps) / 1e4

    trades_at = _trade_days(rule, dates[start - 1:end - 1], targets)
    bar = np.arange(n_bars)
    anchor = np.maximum.accumulate(np.where(trades_at, bar, 0))  # the last trade at or before close j
    # In-place arithmetic on few (T, N) buffers: fresh large arrays cost page faults, more than the arithmetic.
    # Value of each holding at the close of bar j per unit of book value at the last trade, then as weights.
    scratch = np.take(prices, anchor, axis=0)
    np.divide(prices[1:], scratch, out=scratch)
    drifted = np.take(targets, anchor, axis=0)
    drifted *= scratch
    # Row sums are numpy reductions, never a matrix product: BLAS picks its kernel by CPU, and its order of
    # summation with it, so `@ ones` gave other last bits (other dossier bytes) on another machine.
    book_value = 1.0 + (drifted.sum(axis=1) - targets.sum(axis=1)[anchor])
    if not (book_value > 0).all():  # a levered short through a price jump: no weights to speak of
        raise BookWipedOut("the book lost all its value: the simulation cannot continue")
    drifted /= book_value[:, None]
    days = np.flatnonzero(trades_at)
    weights = np.empty_like(drifted)
    weights[1:] = drifted[:-1]
    weights[days] = targets[days]
    contribution = np.divide(prices[1:], prices[:-1], out=scratch)
    contribution -= 1.0
    contribution *= weights  # each holding's part of the bar's return
    gross = contribution.sum(axis=1)

    # Only the trade days trade: work on those rows alone.
    before_trade = np.zeros((days.shape[0], targets.shape[1]))
    before_trade[days > 0] = drifted[days[days > 0] - 1]  # drifted weights at the close of the trade
    traded = np.abs(targets[days] - before_trade)
    exit_traded = np.abs(drifted[-1])  # liquidation at the close of the last bar
    turnover = np.zeros(n_bars)
    turnover[days] = traded.sum(axis=1)
    net = (1.0 + gross) * (1.0 - k * turnover) - 1.0
    turnover[-1] += exit_traded.sum()
    net[-1] = (1.0 + net[-1]) * (1.0 - k * exit_traded.sum()) - 1.0

    # Cost of each trade per symbol: closing an old position is booked on its last bar, the rest (opening,
    # resizing) on the first bar held after the trade.
    closing = np.where(np.sign(targets[days]) != np.sign(before_trade), np.abs(before_trade), 0.0)
    contribution[days] -= k * (traded - closing)
    contribution[days[days > 0] - 1] -= k * closing[days > 0]
    contribution[-1] -= k * exit_traded
    cumulative = np.cumsum(contribution, axis=0, out=contribution)  # in place: no fresh (T, N) buffer

    return Evaluation(
        dates=dates[start:end], close_dates=dates[start - 1:end], symbols=list(symbols), prices=prices,
        weights=weights, gross=gross, net=net, turnover=turnover, drifted=drifted,
        cumulative=cumulative, cost_rate=k,
        benchmark=_benchmark_returns(prices if benchmark_close is None else
                                     np.asarray(benchmark_close, dtype=np.float64)[start - 1:end, None]),
    )


def simulate(**kwargs) -> Simulation:
    """The whole evaluation bars start..end-1 as one window (liquidated at its end); arguments of `evaluate`."""
    evaluation = evaluate(**kwargs)
    return evaluation.window(0, evaluation.net.shape[0])


def _trade_days(rule: str, decision_dates: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Whether the book trades at each decision close (the first one always: it starts flat)."""
    if rule == "daily":
        days = np.ones(targets.shape[0], dtype=bool)
    elif rule == "never":
        days = np.zeros(targets.shape[0], dtype=bool)
        days[1:] = (targets[1:] != targets[:-1]).any(axis=1)
    else:
        # The first bar of each week (weeks start on Monday; 1970-01-01 was a Thursday) or calendar month.
        period = ((decision_dates.astype("int64") + 3) // 7 if rule == "weekly"
                  else decision_dates.astype("datetime64[M]").astype("int64"))
        days = np.zeros(targets.shape[0], dtype=bool)
        days[1:] = period[1:] != period[:-1]
    days[0] = True
    return days


def _benchmark_returns(prices: np.ndarray) -> np.ndarray:
    """Buy-and-hold, equal weight at the close before the first bar, never rebalanced, no costs."""
    value = (prices / prices[0]).sum(axis=1)
    return value[1:] / value[:-1] - 1.0


def _check_inputs(dates: np.ndarray, close: np.ndarray, symbols: list[str], start: int, end: int) -> None:
    if close.ndim != 2:
        raise ValueError("close must be a (bars, symbols) matrix")
    if dates.shape != (close.shape[0],):
        raise ValueError("dates must have one entry per row of close")
    if len(symbols) != close.shape[1]:
        raise ValueError("symbols must name every column of close")
    if not 1 <= start < end <= close.shape[0]:
        raise ValueError(f"evaluation [{start}, {end}) is empty, outside the {close.shape[0]} bars or has no "
                         "close before its first bar")
    history = close[:end]
    if not np.isfinite(history).all() or (history <= 0).any():
        raise ValueError("close prices must be finite and positive")
