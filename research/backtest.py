"""Vectorised backtest of one segment: target weights -> held weights -> returns, costs and trades.

Convention (DESIGN 6.2): the signal at the close of bar t sets the position held during bar t+1. Signals see
close[:end] only, so nothing after the segment can leak in; bars before `start` are warm-up. A segment
starts flat, so entering is charged at its first bar; positions still open at its end are not closed
(no exit cost; the trade is reported open).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from research.strategies import target_weights


@dataclass(frozen=True)
class Simulation:
    """The per-bar record of one segment."""

    dates: np.ndarray          # datetime64[D], the bars of the evaluated window, shape (T,)
    weights: np.ndarray        # (T, N) weight held during bar t (decided at the close of bar t-1)
    gross_returns: np.ndarray  # (T,) portfolio simple return before costs
    costs: np.ndarray          # (T,) cost charged at bar t = turnover_t * (fee_bps + slippage_bps) / 1e4
    net_returns: np.ndarray    # (T,)
    turnover: np.ndarray       # (T,) sum over symbols of |w_t - w_{t-1}|
    trades: list[dict]         # round trips: {symbol, entry_date, exit_date (or None if open at end), bars, return}


def simulate(
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
) -> Simulation:
    """Backtest `family` over bars start..end-1 (bar indices into `dates`/`close`, end exclusive)."""
    close = np.asarray(close, dtype=np.float64)
    dates = np.asarray(dates, dtype="datetime64[D]")
    _check_inputs(dates, close, symbols, start, end)

    history = close[:end]
    targets = target_weights(family, history, params)

    # Held during bar t = target at close t-1; a segment starts flat, and bar 0 has no prior close.
    first = max(start, 1)
    weights = np.zeros((end - start, close.shape[1]))
    weights[first - start:] = targets[first - 1:end - 1]

    bar_returns = np.zeros_like(weights)
    bar_returns[first - start:] = history[first:] / history[first - 1:end - 1] - 1.0
    gross_returns = np.einsum("ij,ij->i", weights, bar_returns)

    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    turnover = np.abs(weights - previous).sum(axis=1)
    costs = turnover * ((fee_bps + slippage_bps) / 1e4)

    return Simulation(
        dates=dates[start:end],
        weights=weights,
        gross_returns=gross_returns,
        costs=costs,
        net_returns=gross_returns - costs,
        turnover=turnover,
        trades=round_trips(dates=dates, close=history, weights=weights, start=start, symbols=symbols),
    )


def round_trips(
    *, dates: np.ndarray, close: np.ndarray, weights: np.ndarray, start: int, symbols: list[str]
) -> list[dict]:
    """Round trips per symbol in the window starting at bar `start`: weight 0 -> non-zero -> 0.

    `weights` are the held weights of the window; `dates` and `close` the full history (close at least up
    to the window's end). entry_date is the first bar held, exit_date the first bar flat again (None if
    still open at the end of the window), bars the number of bars held, and return the symbol's price
    return from the close the position was taken at (bar before entry) to the close of its last held bar:
    before costs and independent of the weight size. Sorted by entry date, then universe order.
    """
    held = weights != 0.0
    n_bars = held.shape[0]
    edges = np.diff(held.astype(np.int8), axis=0, prepend=0, append=0)
    entry_bar, entry_column = np.nonzero(edges == 1)  # row-major: by entry bar, then universe order
    exit_bar, exit_column = np.nonzero(edges == -1)
    # Exits in the same symbol-major order as the entries, so the k-th entry of a symbol meets its k-th exit.
    by_symbol = np.lexsort((exit_bar, exit_column))
    exit_for_entry = np.empty_like(exit_bar)
    exit_for_entry[np.lexsort((entry_bar, entry_column))] = exit_bar[by_symbol]

    # A position held in bar e was taken at the close of bar e-1 (never before bar 0: bar 0 is flat).
    trade_returns = (close[start + exit_for_entry - 1, entry_column]
                     / close[start + entry_bar - 1, entry_column] - 1.0)
    # Only the dates that are reported are turned into text: formatting the whole window is the slow part.
    window_dates = dates[start:start + n_bars]
    entry_dates = np.datetime_as_string(window_dates[entry_bar], unit="D").tolist()
    exit_dates = np.datetime_as_string(window_dates[np.minimum(exit_for_entry, n_bars - 1)], unit="D").tolist()
    return [
        {
            "symbol": str(symbols[column]),
            "entry_date": entry_date,
            "exit_date": exit_date if exit_ < n_bars else None,
            "bars": exit_ - entry,
            "return": trade_return,
        }
        for entry, exit_, column, entry_date, exit_date, trade_return in zip(
            entry_bar.tolist(), exit_for_entry.tolist(), entry_column.tolist(),
            entry_dates, exit_dates, trade_returns.tolist(),
        )
    ]


def _check_inputs(dates: np.ndarray, close: np.ndarray, symbols: list[str], start: int, end: int) -> None:
    if close.ndim != 2:
        raise ValueError("close must be a (bars, symbols) matrix")
    if dates.shape != (close.shape[0],):
        raise ValueError("dates must have one entry per row of close")
    if len(symbols) != close.shape[1]:
        raise ValueError("symbols must name every column of close")
    if not 0 <= start < end <= close.shape[0]:
        raise ValueError(f"segment [{start}, {end}) is empty or outside the {close.shape[0]} bars")
    history = close[:end]
    if not np.isfinite(history).all() or (history <= 0).any():
        raise ValueError("close prices must be finite and positive")
