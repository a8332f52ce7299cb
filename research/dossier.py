"""Run a RunSpec and write its dossier under `dossiers/<run_id>/`: the evidence the gates and reviewers read.

One continuous simulation over the evaluation period (and one at the stress costs); segments are slices of it.
Per test segment: metrics.json, curve.csv (with the benchmark beside the strategy), trades.csv. The holdout:
metrics.json only; its curve and trades are never computed into a file. Then segments_summary.json,
oos_curve.csv and oos_returns.json (the stitched out-of-sample record: the test segments end to end, never a
holdout bar), metrics.json (out-of-sample, and the same at twice the costs) and dossier.json, the index of
every file with its sha256 and size, written last. A pure function of the RunSpec and the snapshot's bytes.
"""
import math
from dataclasses import dataclass

import numpy as np

from contracts import content_id, validate

from . import KERNEL_VERSION
from .artifacts import read_json_artifact, write_artifact, write_json_artifact
from .backtest import BookWipedOut, Evaluation, Simulation, evaluate
from .errors import ArtifactNotFound, CompileError, DossierError, SnapshotError
from .metrics import compute_metrics
from .snapshots import load_panel

HEADLINE = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "psr", "n_bars")
SIGNIFICANT_DIGITS = 12


@dataclass(frozen=True)
class DossierResult:
    run_id: str
    artifacts: list  # [ArtifactRef], dossier.json last
    summary: dict


def dossier_root(run_id: str) -> str:
    return f"dossiers/{run_id}"


def run_dossier(runspec: dict) -> DossierResult:
    """Simulate the evaluation of `runspec` and write the dossier (write-once: running twice is a no-op)."""
    errors = validate("runspec_v1", runspec)
    if errors:
        raise CompileError("the runspec does not validate against runspec_v1", errors=errors)
    run_id = content_id(runspec)
    root = dossier_root(run_id)
    market = load_market(runspec)
    segments = [segment_bars(market, segment) for segment in runspec["segments"]["list"]]
    tests = [s for s in segments if s["role"] == "test"]
    first, oos_stop = tests[0]["first"], tests[-1]["stop"]
    multiplier = runspec["stress"]["costs_x2"]["cost_multiplier"]
    evaluation = evaluate_runspec(runspec, market, first, 1.0)
    stressed = evaluate_runspec(runspec, market, first, multiplier)

    refs, rows = _write_segments(runspec, run_id, market, evaluation, segments, first)
    test_ids = [row["segment_id"] for row in rows if row["role"] == "test"]
    positive = sum(1 for row in rows if row["role"] == "test" and (row["total_return"] or 0) > 0)
    summary_doc = {
        "run_id": run_id,
        "segments": rows,
        "test_segments": len(test_ids),
        "positive_segments": positive,
        "positive_share": clean_json(positive / len(test_ids)),
    }
    refs.append(write_json_artifact(f"{root}/segments_summary.json", summary_doc))
    oos = evaluation.window(0, oos_stop - first)
    refs.append(write_artifact(f"{root}/oos_curve.csv", curve_csv(oos, [])))
    refs.append(write_json_artifact(f"{root}/oos_returns.json", oos_returns(oos)))
    metrics_doc = {
        "run_id": run_id,
        "oos": {**clean_json(_metrics(runspec, oos)), "segments": test_ids},
        "stress": {"costs_x2": {
            **clean_json(_metrics(runspec, stressed.window(0, oos_stop - first))),
            "cost_multiplier": multiplier,
            "fee_bps": runspec["costs"]["fee_bps"] * multiplier,
            "slippage_bps": runspec["costs"]["slippage_bps"] * multiplier,
        }},
    }
    refs.append(write_json_artifact(f"{root}/metrics.json", metrics_doc))
    refs.append(write_json_artifact(f"{root}/dossier.json", _index(runspec, run_id, rows, refs)))
    return DossierResult(run_id=run_id, artifacts=refs, summary=_summary(run_id, metrics_doc, summary_doc))


def oos_returns(oos: Simulation) -> dict:
    """The kept out-of-sample return series (schema oos_returns_v1), for the overfitting tests over trials."""
    return {
        "schema": "oos_returns_v1",
        "dates": np.datetime_as_string(oos.dates, unit="D").tolist(),
        "net_returns": [clean_json(float(r)) for r in oos.net_returns.tolist()],
    }


def _write_segments(runspec: dict, run_id: str, market: dict, evaluation: Evaluation, segments: list,
                    first: int):
    """Each segment's metrics.json (and for test segments curve.csv, trades.csv); the summary rows."""
    refs, rows = [], []
    for segment in segments:
        doc = segment["doc"]
        sim = evaluation.window(segment["first"] - first, segment["stop"] - first)
        metrics = clean_json(_metrics(runspec, sim))
        folder = f"{dossier_root(run_id)}/segments/{doc['segment_id']}"
        refs.append(write_json_artifact(f"{folder}/metrics.json", {"run_id": run_id, **doc, "metrics": metrics}))
        if doc["role"] == "test":
            refs.append(write_artifact(f"{folder}/curve.csv", curve_csv(sim, market["symbols"])))
            refs.append(write_artifact(f"{folder}/trades.csv", trades_csv(sim.trades)))
        rows.append({**doc, **{k: metrics[k] for k in HEADLINE}, "metrics_path": f"{folder}/metrics.json"})
    return refs, rows


def _metrics(runspec: dict, sim: Simulation) -> dict:
    return compute_metrics(sim, periods_per_year=runspec["execution"]["periods_per_year"],
                           cash_rate=runspec["portfolio"]["cash_rate"])


def _index(runspec: dict, run_id: str, rows: list, refs: list) -> dict:
    index = {
        "schema_version": "dossier_v1",
        "run_id": run_id,
        "kernel_version": KERNEL_VERSION,
        "snapshot_id": runspec["data"]["snapshot_id"],
        "snapshot_sha256": runspec["data"]["snapshot_sha256"],
        "policy_bundle_id": runspec["policy"]["policy_bundle_id"],
        "policy_bundle_sha256": runspec["policy"]["policy_bundle_sha256"],
        "holdout_visibility": "metrics_only",
        "segments": [{"segment_id": row["segment_id"], "role": row["role"]} for row in rows],
        "files": sorted((ref.as_dict() for ref in refs), key=lambda f: f["path"]),
    }
    problems = validate("dossier_v1", index)
    if problems:  # a bug in this module
        raise ValueError(f"dossier index does not validate against dossier_v1: {problems}")
    return index


def dossier_summary(run_id: str) -> dict:
    """The headline figures of a dossier already written (the same dict as DossierResult.summary)."""
    root = dossier_root(run_id)
    try:
        metrics_doc = read_json_artifact(f"{root}/metrics.json")
        summary_doc = read_json_artifact(f"{root}/segments_summary.json")
    except ArtifactNotFound as exc:
        raise DossierError(f"no dossier for run {run_id}") from exc
    return _summary(run_id, metrics_doc, summary_doc)


def _summary(run_id: str, metrics_doc: dict, summary_doc: dict) -> dict:
    holdout = next(row for row in summary_doc["segments"] if row["role"] == "holdout")
    return {
        "run_id": run_id,
        "oos": {k: metrics_doc["oos"][k] for k in HEADLINE},
        "stress_costs_x2_sharpe": metrics_doc["stress"]["costs_x2"]["sharpe"],
        "holdout_sharpe": holdout["sharpe"],
        "test_segments": summary_doc["test_segments"],
        "positive_share": summary_doc["positive_share"],
    }


def load_market(runspec: dict) -> dict:
    """The runspec's slice of the snapshot: its period and universe only, nothing after, nothing else."""
    data = runspec["data"]
    panel = load_panel(data["snapshot_id"])
    if panel.sha256 != data["snapshot_sha256"]:
        raise SnapshotError(
            f"snapshot {data['snapshot_id']!r} has sha256 {panel.sha256}, the runspec was compiled "
            f"against {data['snapshot_sha256']}"
        )
    lo = int(np.searchsorted(panel.dates, np.datetime64(data["period"]["start"]), side="left"))
    hi = int(np.searchsorted(panel.dates, np.datetime64(data["period"]["end"]), side="right"))
    columns = [panel.symbols.index(s) for s in runspec["universe"]["symbols"] if s in panel.symbols]
    benchmark = runspec["benchmark"]["symbol"]
    if (hi - lo != data["period"]["bars"] or len(columns) != len(runspec["universe"]["symbols"])
            or (benchmark is not None and benchmark not in panel.symbols)):
        raise DossierError(f"the runspec's period, universe or benchmark does not match snapshot "
                           f"{data['snapshot_id']!r}")
    return {"dates": panel.dates[lo:hi], "close": panel.close[lo:hi][:, columns],
            "symbols": list(runspec["universe"]["symbols"]),
            "benchmark_close": None if benchmark is None else panel.close[lo:hi, panel.symbols.index(benchmark)]}


def segment_bars(market: dict, segment: dict) -> dict:
    """The segment's bar indices in the market slice, checked against the runspec."""
    dates = market["dates"]
    first = int(np.searchsorted(dates, np.datetime64(segment["start"]), side="left"))
    stop = int(np.searchsorted(dates, np.datetime64(segment["end"]), side="right"))
    if stop - first != segment["bars"]:
        raise DossierError(f"segment {segment['segment_id']} has {stop - first} bars in the data, "
                           f"the runspec says {segment['bars']}")
    return {"doc": segment, "role": segment["role"], "first": first, "stop": stop}


def evaluate_runspec(runspec: dict, market: dict, first: int, cost_multiplier: float) -> Evaluation:
    """The continuous simulation from bar `first` to the end of the period, at `cost_multiplier` x the costs."""
    try:
        return _evaluate_market(runspec, market, first, cost_multiplier)
    except BookWipedOut as exc:
        raise DossierError(f"run cannot be evaluated: {exc}") from exc


def _evaluate_market(runspec: dict, market: dict, first: int, cost_multiplier: float) -> Evaluation:
    strategy, costs = runspec["strategy"], runspec["costs"]
    return evaluate(
        dates=market["dates"], close=market["close"], symbols=market["symbols"], family=strategy["family"],
        params=strategy["params"], direction=strategy["direction"], rebalance=strategy["rebalance"],
        max_gross_leverage=runspec["portfolio"]["max_gross_leverage"],
        fee_bps=costs["fee_bps"] * cost_multiplier, slippage_bps=costs["slippage_bps"] * cost_multiplier,
        start=first, end=len(market["dates"]), benchmark_close=market["benchmark_close"],
    )


def csv_number(value) -> str:
    return "%.*g" % (SIGNIFICANT_DIGITS, value)


def clean_json(value):
    """JSON-safe and stable: numpy scalars to Python, floats to 12 significant digits, NaN/inf to None."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return float(csv_number(value)) if math.isfinite(value) else None
    return value


def curve_csv(sim: Simulation, symbols: list) -> bytes:
    """date,equity,drawdown,net_return,benchmark_equity,benchmark_return,weight_<symbol>...; both equities
    start at 1 before the first bar (no weight columns when `symbols` is empty: the stitched curve)."""
    equity = np.cumprod(1.0 + sim.net_returns)
    drawdown = equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1.0
    benchmark = np.cumprod(1.0 + sim.benchmark_returns)
    columns = [equity, drawdown, sim.net_returns, benchmark, sim.benchmark_returns]
    table = np.column_stack(columns + ([sim.weights] if symbols else [])).tolist()
    dates = np.datetime_as_string(sim.dates, unit="D").tolist()
    header = ",".join(["date", "equity", "drawdown", "net_return", "benchmark_equity", "benchmark_return"]
                      + [f"weight_{s}" for s in symbols])
    # One %-format for the whole table: the same "%.12g" as csv_number, without a call per value.
    row_format = ",".join(["%s"] + [f"%.{SIGNIFICANT_DIGITS}g"] * (len(symbols) + 5)) + "\n"
    values = tuple(value for day, row in zip(dates, table) for value in (day, *row))
    return (header + "\n" + row_format * len(dates) % values).encode()


def trades_csv(trades: list[dict]) -> bytes:
    """symbol,side,entry_date,exit_date,bars,return,pnl; exit_date empty for a position still open at the end."""
    lines = ["symbol,side,entry_date,exit_date,bars,return,pnl"] + [
        f"{t['symbol']},{t['side']},{t['entry_date']},{t['exit_date'] or ''},{t['bars']},{csv_number(t['return'])},"
        f"{csv_number(t['pnl'])}"
        for t in trades
    ]
    return ("\n".join(lines) + "\n").encode()
