"""Trace preview: the kernel's own code path on the first bars of the first test segment, row by row, so a
reviewer sees how the strategy computes before the full run. It never reads a bar after that segment.

The simulation is the dossier's (`dossier.evaluate_runspec` on the runspec's market), only cut short: it is given the
bars up to one past the window, so nothing later (another segment, the holdout) is even loaded into it, and the
window's last bar is not the liquidation bar of that shorter simulation. Rows are then read off the
`Simulation`, `target_weights` and `strategies.indicators`: no arithmetic of the kernel is done again here.
"""
from dataclasses import dataclass

import numpy as np

from contracts import CONTENT_ID, content_id, validate

from . import KERNEL_VERSION
from .artifacts import ArtifactRef, json_bytes, write_artifact
from .dossier import clean_json, csv_number, evaluate_runspec, load_market, segment_bars
from .errors import CompileError, PolicyError, ResearchError
from .policies import load_policy_bundle
from .segments import iso
from .strategies import indicators, target_weights

# Bars traced when the policy bundle has no `trace_preview.bars`: about one trading month.
DEFAULT_BARS = 20
FOLDER = "outputs/trace_preview"

# Each indicator column's meaning; `{...}` are the strategy's parameters.
INDICATOR_MEANINGS = {
    "sma_fast": "simple moving average of the last {fast} closes (the signal compares it with sma_slow)",
    "sma_slow": "simple moving average of the last {slow} closes",
    "lookback_return": "close / close {lookback} bars earlier - 1",
    "volatility": "annualised standard deviation of the last 20 daily returns (scales the weight to vol_target "
                  "{vol_target})",
    "rsi": "Wilder's RSI over {period} bars, 0-100 (enter below {entry}, leave above {exit})",
    "sma_trend": "simple moving average of the last {trend_filter} closes (the trend filter)",
    "rank": "rank of the symbol's lookback_return in the universe, 1 = highest (top {top_k} held); empty on a bar "
            "with no ranking",
}
SYMBOL_COLUMNS = (
    ("date", "the bar's date; the row's values are those at its close"),
    ("symbol", "the universe symbol"),
    ("close", "the symbol's close of the bar"),
)
DECISION_COLUMNS = (
    ("signal", "the strategy's decision at this close: 1 long, -1 short, 0 flat (the sign of target_weight)"),
    ("target_weight", "the weight decided at this close, after the gross leverage cap; held from the next bar"),
    ("weight", "the weight held during this bar: the last trade's target, drifted with prices since"),
)
# The book's figures of the bar, repeated on every symbol's row of that date (sum them over dates, not rows).
PORTFOLIO_COLUMNS = (
    ("portfolio_turnover", "sum of |traded weight| charged on this bar (the trade at the previous close)"),
    ("portfolio_cost", "the bar's fees and slippage as a share of the book: gross - net return"),
    ("portfolio_gross_return", "the book's return over the bar before costs"),
    ("portfolio_net_return", "the book's return over the bar after costs"),
)


@dataclass(frozen=True)
class TracePreview:
    """One runspec's trace: its numbers, and trace.csv and summary.json as bytes and document; nothing written."""

    run_id: str
    dates: list             # the window's bars, ISO dates
    symbols: list
    table: dict             # column name -> (bars, symbols) float array, unrounded, in the CSV's column order
    csv: bytes
    summary: dict

    @property
    def summary_bytes(self) -> bytes:
        return json_bytes(self.summary)


def trace_bars(bundle: dict) -> int:
    """How many bars a bundle asks the trace preview to show (its optional `trace_preview.bars`)."""
    return bundle.get("trace_preview", {}).get("bars", DEFAULT_BARS)


def trace_preview(runspec: dict, *, bars: int | None = None) -> TracePreview:
    """The first `bars` bars (default: the policy's) of the first test segment, per bar and symbol.

    A segment shorter than that gives all of its bars but the last (the simulation needs one bar past the
    window, and that bar must still be in the segment): the window never leaves the first test segment.
    """
    errors = validate("runspec_v1", runspec)
    if errors:
        raise CompileError("the runspec does not validate against runspec_v1", errors=errors)
    requested = _requested_bars(runspec, bars)
    market = load_market(runspec)
    segment, n_bars = _window(runspec, market, requested)
    first, seen = segment["first"], segment["first"] + n_bars + 1
    market = {**market, "dates": market["dates"][:seen], "close": market["close"][:seen],
              "benchmark_close": None if market["benchmark_close"] is None else market["benchmark_close"][:seen]}

    sim = evaluate_runspec(runspec, market, first, 1.0).window(0, n_bars)
    strategy = runspec["strategy"]
    targets = target_weights(strategy["family"], market["close"], strategy["params"],
                             direction=strategy["direction"],
                             max_gross_leverage=runspec["portfolio"]["max_gross_leverage"])
    values = indicators(strategy["family"], market["close"], strategy["params"])
    rows = slice(first, first + n_bars)
    n_symbols = len(market["symbols"])
    table = {
        "close": market["close"][rows],
        **{name: v[rows] for name, v in values.items()},
        "signal": np.sign(targets[rows]),
        "target_weight": targets[rows],
        "weight": sim.weights,
        "portfolio_turnover": _repeated(sim.turnover, n_symbols),
        "portfolio_cost": _repeated(sim.costs, n_symbols),
        "portfolio_gross_return": _repeated(sim.gross_returns, n_symbols),
        "portfolio_net_return": _repeated(sim.net_returns, n_symbols),
    }
    dates = np.datetime_as_string(sim.dates, unit="D").tolist()
    summary = _summary(runspec, segment["doc"], sim, list(values), requested, bars is None)
    return TracePreview(run_id=content_id(runspec), dates=dates, symbols=list(market["symbols"]), table=table,
                        csv=_csv(dates, market["symbols"], table), summary=summary)


def write_trace_preview(*, job_id: str, preview: TracePreview) -> list[ArtifactRef]:
    """`jobs/<job_id>/outputs/trace_preview/trace.csv` and `summary.json`, write-once."""
    if not isinstance(job_id, str) or not CONTENT_ID.fullmatch(job_id):
        raise ResearchError(f"invalid job id {job_id!r}")
    folder = f"jobs/{job_id}/{FOLDER}"
    return [write_artifact(f"{folder}/trace.csv", preview.csv),
            write_artifact(f"{folder}/summary.json", preview.summary_bytes)]


def _window(runspec: dict, market: dict, requested: int) -> tuple[dict, int]:
    """The first test segment (bar indices into `market`) and how many of its bars the trace shows: at most
    all but its last, because the simulation runs one bar past the window and that bar must be in it too."""
    segments = [segment_bars(market, segment) for segment in runspec["segments"]["list"]]
    tests = [s for s in segments if s["role"] == "test"]
    if not tests:
        raise ResearchError("the runspec has no test segment to trace")
    segment = tests[0]
    n_bars = min(requested, segment["stop"] - segment["first"] - 1)
    if n_bars < 1:
        raise ResearchError(f"test segment {segment['doc']['segment_id']} has {segment['stop'] - segment['first']} "
                            "bar(s): too few to trace (the simulation needs one bar past the window)")
    seen = segment["first"] + n_bars + 1
    holdout_first = min((s["first"] for s in segments if s["role"] == "holdout"), default=len(market["dates"]))
    if seen > segment["stop"] or seen > holdout_first:  # the rule this module exists to keep; never relaxed
        raise ResearchError("the trace window would read a bar after the first test segment")
    return segment, n_bars


def _requested_bars(runspec: dict, bars: int | None) -> int:
    """`bars`, or the policy bundle's; the bundle must still be the one the runspec was compiled with."""
    policy = runspec["policy"]
    bundle, sha256 = load_policy_bundle(policy["policy_bundle_id"])
    if sha256 != policy["policy_bundle_sha256"]:
        raise PolicyError(f"policy bundle {policy['policy_bundle_id']!r} changed since compile "
                          f"(sha256 {sha256}, the runspec names {policy['policy_bundle_sha256']})")
    requested = trace_bars(bundle) if bars is None else bars
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ResearchError(f"the trace needs a whole number of bars >= 1, got {requested!r}")
    return requested


def _csv(dates: list, symbols: list, table: dict) -> bytes:
    """One row per bar and symbol, by date then universe order; numbers as the dossier writes them."""
    lines = [",".join(["date", "symbol", *table])]
    for t, day in enumerate(dates):
        for c, symbol in enumerate(symbols):
            lines.append(",".join([day, symbol, *(_cell(values[t, c]) for values in table.values())]))
    return ("\n".join(lines) + "\n").encode()


def _repeated(series: np.ndarray, n_symbols: int) -> np.ndarray:
    """A per-bar figure of the book as a (bars, symbols) column: the same on every symbol's row."""
    return np.repeat(series[:, None], n_symbols, axis=1)


def _cell(value) -> str:
    """12 significant digits (the dossier's `csv_number`); empty where a value does not exist; no `-0`."""
    value = float(value)
    return "" if np.isnan(value) else csv_number(value + 0.0)


def _summary(runspec: dict, segment: dict, sim, names: list, requested: int, from_policy: bool) -> dict:
    strategy = runspec["strategy"]
    params = {k: ("" if v is None else v) for k, v in strategy["params"].items()}
    columns = [
        *({"name": name, "meaning": meaning} for name, meaning in SYMBOL_COLUMNS),
        *({"name": name, "meaning": INDICATOR_MEANINGS[name].format(**params)} for name in names),
        *({"name": name, "meaning": meaning} for name, meaning in DECISION_COLUMNS + PORTFOLIO_COLUMNS),
    ]
    return {
        "run_id": content_id(runspec),
        "kernel_version": KERNEL_VERSION,
        "snapshot_id": runspec["data"]["snapshot_id"],
        "policy_bundle_id": runspec["policy"]["policy_bundle_id"],
        "strategy": strategy,
        "symbols": list(runspec["universe"]["symbols"]),
        "segment": {k: segment[k] for k in ("segment_id", "start", "end", "bars")},
        "window": {
            "start": iso(sim.dates[0]), "end": iso(sim.dates[-1]), "bars": int(sim.dates.shape[0]),
            "bars_requested": requested, "bars_from": "policy" if from_policy else "argument",
        },
        "rows": "one per bar and symbol, by date then universe order; portfolio_* repeated on each symbol's row",
        "columns": columns,
        "totals": clean_json({
            "turnover": float(np.sum(sim.turnover)),
            "cost": float(np.sum(sim.costs)),
            "gross_return": float(np.prod(1.0 + sim.gross_returns) - 1.0),
            "net_return": float(np.prod(1.0 + sim.net_returns) - 1.0),
        }),
    }
