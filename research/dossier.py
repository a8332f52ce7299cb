"""Run a RunSpec and write its dossier under `dossiers/<run_id>/`: the evidence the gates and reviewers read.

Per test segment: metrics.json, curve.csv, trades.csv. The holdout: metrics.json only; its curve and trades
are never computed into a file. Then segments_summary.json, metrics.json (stitched out-of-sample: the test
segments' net returns end to end, and the same at twice the costs) and dossier.json, the index of every
file with its sha256 and size, written last. A pure function of the RunSpec and the snapshot's bytes.
"""
import math
from dataclasses import dataclass

import numpy as np

from contracts import content_id, validate

from . import KERNEL_VERSION
from .artifacts import read_json_artifact, write_artifact, write_json_artifact
from .backtest import Simulation, simulate
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
    """Simulate every segment of `runspec` and write the dossier (write-once: running twice is a no-op)."""
    errors = validate("runspec_v1", runspec)
    if errors:
        raise CompileError("the runspec does not validate against runspec_v1", errors=errors)
    run_id = content_id(runspec)
    root = dossier_root(run_id)
    market = _market(runspec)
    refs, rows, tests, stressed = _run_segments(runspec, run_id, market)
    test_ids = [row["segment_id"] for row in rows if row["role"] == "test"]
    positive = sum(1 for row in rows if row["role"] == "test" and row["total_return"] > 0)
    summary_doc = {
        "run_id": run_id,
        "segments": rows,
        "test_segments": len(test_ids),
        "positive_segments": positive,
        "positive_share": _clean(positive / len(test_ids)),
    }
    refs.append(write_json_artifact(f"{root}/segments_summary.json", summary_doc))
    periods = runspec["execution"]["periods_per_year"]
    multiplier = runspec["stress"]["costs_x2"]["cost_multiplier"]
    metrics_doc = {
        "run_id": run_id,
        "oos": {**_clean(compute_metrics(stitch(tests), periods_per_year=periods)), "segments": test_ids},
        "stress": {"costs_x2": {
            **_clean(compute_metrics(stitch(stressed), periods_per_year=periods)),
            "cost_multiplier": multiplier,
            "fee_bps": runspec["costs"]["fee_bps"] * multiplier,
            "slippage_bps": runspec["costs"]["slippage_bps"] * multiplier,
        }},
    }
    refs.append(write_json_artifact(f"{root}/metrics.json", metrics_doc))
    refs.append(write_json_artifact(f"{root}/dossier.json", _index(runspec, run_id, rows, refs)))
    return DossierResult(run_id=run_id, artifacts=refs, summary=_summary(run_id, metrics_doc, summary_doc))


def _run_segments(runspec: dict, run_id: str, market: dict):
    """Each segment's metrics.json (and for test segments curve.csv, trades.csv); the simulations to stitch."""
    periods = runspec["execution"]["periods_per_year"]
    fee, slippage = runspec["costs"]["fee_bps"], runspec["costs"]["slippage_bps"]
    multiplier = runspec["stress"]["costs_x2"]["cost_multiplier"]
    refs, rows, tests, stressed = [], [], [], []
    for segment in runspec["segments"]["list"]:
        sim = _simulate(runspec, market, segment, fee, slippage)
        metrics = _clean(compute_metrics(sim, periods_per_year=periods))
        folder = f"{dossier_root(run_id)}/segments/{segment['segment_id']}"
        refs.append(write_json_artifact(f"{folder}/metrics.json", {"run_id": run_id, **segment, "metrics": metrics}))
        if segment["role"] == "test":
            refs.append(write_artifact(f"{folder}/curve.csv", curve_csv(sim, market["symbols"])))
            refs.append(write_artifact(f"{folder}/trades.csv", trades_csv(sim.trades)))
            tests.append(sim)
            stressed.append(_simulate(runspec, market, segment, fee * multiplier, slippage * multiplier))
        rows.append({**segment, **{k: metrics[k] for k in HEADLINE}, "metrics_path": f"{folder}/metrics.json"})
    return refs, rows, tests, stressed


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


def _market(runspec: dict) -> dict:
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
    if hi - lo != data["period"]["bars"] or len(columns) != len(runspec["universe"]["symbols"]):
        raise DossierError(f"the runspec's period or universe does not match snapshot {data['snapshot_id']!r}")
    return {"dates": panel.dates[lo:hi], "close": panel.close[lo:hi][:, columns],
            "symbols": list(runspec["universe"]["symbols"])}


def _simulate(runspec: dict, market: dict, segment: dict, fee_bps: float, slippage_bps: float) -> Simulation:
    dates = market["dates"]
    start = int(np.searchsorted(dates, np.datetime64(segment["start"]), side="left"))
    end = int(np.searchsorted(dates, np.datetime64(segment["end"]), side="right"))
    if end - start != segment["bars"]:
        raise DossierError(f"segment {segment['segment_id']} has {end - start} bars in the data, "
                           f"the runspec says {segment['bars']}")
    strategy = runspec["strategy"]
    return simulate(dates=dates, close=market["close"], symbols=market["symbols"], family=strategy["family"],
                    params=strategy["params"], fee_bps=fee_bps, slippage_bps=slippage_bps, start=start, end=end)


def stitch(sims: list[Simulation]) -> Simulation:
    """Segments end to end, as one simulation: the out-of-sample record."""
    return Simulation(
        dates=np.concatenate([s.dates for s in sims]),
        weights=np.vstack([s.weights for s in sims]),
        gross_returns=np.concatenate([s.gross_returns for s in sims]),
        costs=np.concatenate([s.costs for s in sims]),
        net_returns=np.concatenate([s.net_returns for s in sims]),
        turnover=np.concatenate([s.turnover for s in sims]),
        trades=[trade for s in sims for trade in s.trades],
    )


def _number(value) -> str:
    return "%.*g" % (SIGNIFICANT_DIGITS, value)


def _clean(value):
    """JSON-safe and stable: numpy scalars to Python, floats to 12 significant digits, NaN/inf to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return float(_number(value)) if math.isfinite(value) else None
    return value


def curve_csv(sim: Simulation, symbols: list) -> bytes:
    """date,equity,drawdown,net_return,weight_<symbol>...; equity starts at 1 before the first bar."""
    equity = np.cumprod(1.0 + sim.net_returns)
    drawdown = equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1.0
    table = np.column_stack([equity, drawdown, sim.net_returns, sim.weights]).tolist()
    dates = np.datetime_as_string(sim.dates, unit="D").tolist()
    header = ",".join(["date", "equity", "drawdown", "net_return"] + [f"weight_{s}" for s in symbols])
    # One %-format for the whole table: the same "%.12g" as _number, without a call per value.
    row_format = ",".join(["%s"] + [f"%.{SIGNIFICANT_DIGITS}g"] * (len(symbols) + 3)) + "\n"
    values = tuple(value for day, row in zip(dates, table) for value in (day, *row))
    return (header + "\n" + row_format * len(dates) % values).encode()


def trades_csv(trades: list[dict]) -> bytes:
    """symbol,entry_date,exit_date,bars,return; exit_date empty for a position still open at the end."""
    lines = ["symbol,entry_date,exit_date,bars,return"] + [
        f"{t['symbol']},{t['entry_date']},{t['exit_date'] or ''},{t['bars']},{_number(t['return'])}" for t in trades
    ]
    return ("\n".join(lines) + "\n").encode()

