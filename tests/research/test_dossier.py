"""The dossier: per-segment evidence, a metrics-only holdout, stitched out-of-sample metrics and an index."""
import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from contracts import content_id, sha256_hex, validate
from research.compiler import compile_blueprint
from research.backtest import Simulation
from research.dossier import curve_csv, dossier_summary, run_dossier
from research.errors import CompileError, SnapshotError
from research.snapshots import ingest_csv

from ..builders import FAMILIES, RESEARCH, a_blueprint, small_csv, stored_files

pytestmark = pytest.mark.django_db


def compiled(family="sma_crossover", params=None, **sections):
    return compile_blueprint(blueprint=a_blueprint(family, params, base=RESEARCH, **sections), snapshot_id="small_snap",
                             policy_bundle_id="default_v1")


def read_json(root, path):
    return json.loads((root / path).read_text(encoding="utf-8"))


def test_the_holdout_folder_holds_metrics_only(small_snapshot, artifact_root):
    runspec, run_id = compiled()

    run_dossier(runspec)

    holdout = artifact_root / "dossiers" / run_id / "segments" / "holdout"
    assert sorted(p.name for p in holdout.rglob("*")) == ["metrics.json"]
    doc = read_json(artifact_root, f"dossiers/{run_id}/segments/holdout/metrics.json")
    assert doc["role"] == "holdout" and doc["metrics"]["n_bars"] == doc["bars"]
    assert not [p for p in stored_files(artifact_root) if "holdout" in p and not p.endswith("holdout/metrics.json")]


def test_every_file_is_indexed_with_its_sha256(small_snapshot, artifact_root):
    runspec, run_id = compiled()

    result = run_dossier(runspec)

    root = f"dossiers/{run_id}"
    test_ids = [s["segment_id"] for s in runspec["segments"]["list"] if s["role"] == "test"]
    expected = sorted(
        [f"{root}/{name}" for name in ("dossier.json", "metrics.json", "oos_curve.csv", "oos_returns.json",
                                       "segments_summary.json")]
        + [f"{root}/segments/holdout/metrics.json"]
        + [f"{root}/segments/{seg}/{name}" for seg in test_ids for name in ("curve.csv", "metrics.json", "trades.csv")]
    )
    assert [p for p in stored_files(artifact_root) if p.startswith("dossiers/")] == expected
    index = read_json(artifact_root, f"{root}/dossier.json")
    assert validate("dossier_v1", index) == []
    assert [f["path"] for f in index["files"]] == [p for p in expected if p != f"{root}/dossier.json"]
    for entry in index["files"]:
        data = (artifact_root / entry["path"]).read_bytes()
        assert (entry["sha256"], entry["bytes"]) == (sha256_hex(data), len(data))
    assert result.run_id == run_id
    assert sorted(ref.path for ref in result.artifacts) == expected
    assert result.artifacts[-1].path == f"{root}/dossier.json"


def test_stitched_metrics_cover_the_test_segments_only(small_snapshot, artifact_root):
    runspec, run_id = compiled()

    result = run_dossier(runspec)

    segments = runspec["segments"]["list"]
    tests = [s for s in segments if s["role"] == "test"]
    metrics = read_json(artifact_root, f"dossiers/{run_id}/metrics.json")
    assert metrics["oos"]["n_bars"] == sum(s["bars"] for s in tests)
    assert metrics["oos"]["segments"] == [s["segment_id"] for s in tests]
    per_segment = [read_json(artifact_root, f"dossiers/{run_id}/segments/{s['segment_id']}/metrics.json")["metrics"]
                   for s in tests]
    # A trade belongs to the segment it was entered in: the segments' trades are the out-of-sample trades.
    assert metrics["oos"]["trades"] == sum(m["trades"] for m in per_segment)
    assert set(metrics["oos"]["benchmark"]) == {"total_return", "cagr", "sharpe", "max_drawdown"}
    for key in ("alpha", "beta", "information_ratio", "tracking_error", "excess_return"):
        assert isinstance(metrics["oos"][key], float), key
    stress = metrics["stress"]["costs_x2"]
    assert (stress["fee_bps"], stress["slippage_bps"], stress["cost_multiplier"]) == (10.0, 10.0, 2.0)
    assert stress["n_bars"] == metrics["oos"]["n_bars"]
    assert stress["total_return"] < metrics["oos"]["total_return"]  # the same trades, dearer
    summary = read_json(artifact_root, f"dossiers/{run_id}/segments_summary.json")
    positive = sum(1 for m in per_segment if m["total_return"] > 0)
    assert (summary["test_segments"], summary["positive_segments"]) == (len(tests), positive)
    assert summary["positive_share"] == pytest.approx(positive / len(tests))
    assert [row["segment_id"] for row in summary["segments"]] == [s["segment_id"] for s in segments]
    assert result.summary["oos"]["sharpe"] == metrics["oos"]["sharpe"]
    assert result.summary["stress_costs_x2_sharpe"] == stress["sharpe"]
    assert dossier_summary(run_id) == result.summary


def test_curve_and_trades_files(small_snapshot, artifact_root):
    runspec, run_id = compiled()
    run_dossier(runspec)
    first = runspec["segments"]["list"][0]

    folder = artifact_root / f"dossiers/{run_id}/segments/seg_001"
    curve = list(csv.reader(io.StringIO((folder / "curve.csv").read_text())))
    trades = list(csv.DictReader(io.StringIO((folder / "trades.csv").read_text())))

    weights = [f"weight_{s}" for s in runspec["universe"]["symbols"]]
    assert curve[0] == ["date", "equity", "drawdown", "net_return", "benchmark_equity", "benchmark_return"] + weights
    assert len(curve) - 1 == first["bars"]
    assert (curve[1][0], curve[-1][0]) == (first["start"], first["end"])
    assert all(float(row[2]) <= 0 for row in curve[1:])
    assert trades and set(trades[0]) == {"symbol", "side", "entry_date", "exit_date", "bars", "return", "pnl"}
    benchmark = [float(row[5]) for row in curve[1:]]
    assert float(curve[-1][4]) == pytest.approx(np.prod(1 + np.array(benchmark)), rel=1e-9)


def test_curve_rows_carry_twelve_significant_digits_and_spell_out_what_is_not_finite():
    # given three bars: compounding returns, a NaN return, a weight that is infinite
    nan, inf = float("nan"), float("inf")
    sim = Simulation(
        dates=np.array(["2024-01-02", "2024-01-03", "2024-01-04"], dtype="datetime64[D]"),
        weights=np.array([[0.5, -0.25], [1 / 3, 0.0], [inf, 1e-7]]),
        gross_returns=None, costs=None, turnover=None, trades=[],
        net_returns=np.array([0.1, -0.05, nan]), benchmark_returns=np.array([0.02, 0.0, -0.5]),
    )

    assert curve_csv(sim, ["AAA", "BBB"]).decode().splitlines() == [
        "date,equity,drawdown,net_return,benchmark_equity,benchmark_return,weight_AAA,weight_BBB",
        "2024-01-02,1.1,0,0.1,1.02,0.02,0.5,-0.25",
        "2024-01-03,1.045,-0.05,-0.05,1.02,0,0.333333333333,0",
        "2024-01-04,nan,nan,nan,0.51,-0.5,inf,1e-07",
    ]
    assert curve_csv(replace(sim, dates=sim.dates[:0], weights=sim.weights[:0], net_returns=sim.net_returns[:0],
                             benchmark_returns=sim.benchmark_returns[:0]), ["AAA", "BBB"]) == (
        b"date,equity,drawdown,net_return,benchmark_equity,benchmark_return,weight_AAA,weight_BBB\n")


def test_running_twice_writes_nothing_new(small_snapshot, artifact_root):
    runspec, _ = compiled()
    first = run_dossier(runspec)
    files = {p: (artifact_root / p).stat().st_mtime_ns for p in stored_files(artifact_root)}

    second = run_dossier(runspec)

    assert second == first
    assert {p: (artifact_root / p).stat().st_mtime_ns for p in stored_files(artifact_root)} == files


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_runs(family, small_snapshot, artifact_root):
    runspec, run_id = compiled(family)

    result = run_dossier(runspec)

    assert result.summary["test_segments"] == sum(1 for s in runspec["segments"]["list"] if s["role"] == "test")
    assert (artifact_root / f"dossiers/{run_id}/dossier.json").is_file()


def test_an_invalid_runspec_is_refused(small_snapshot, artifact_root):
    runspec, _ = compiled()
    runspec["costs"]["fee_bps"] = -1

    with pytest.raises(CompileError) as caught:
        run_dossier(runspec)

    assert caught.value.errors[0]["path"] == "/costs/fee_bps"
    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


def test_a_snapshot_file_that_changed_stops_the_run(small_snapshot, artifact_root):
    runspec, _ = compiled()
    path = artifact_root / "snapshots/small_snap/ohlcv.csv"
    path.write_bytes(path.read_bytes().replace(b"\n2016-01-04,AAA,", b"\n2016-01-04,AAA,1", 1))

    with pytest.raises(SnapshotError, match="was recorded at ingest"):
        run_dossier(runspec)
    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


def altered_holdout_csv(holdout_start: str, factor: float) -> bytes:
    """The small snapshot with every price from `holdout_start` on multiplied by `factor`."""
    lines = small_csv().decode().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        day, symbol, *prices, volume = line.split(",")
        if day >= holdout_start:
            prices = ["%.4f" % (float(p) * factor) for p in prices]
        out.append(",".join([day, symbol, *prices, volume]))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("family", ["sma_crossover", "buy_and_hold"])
def test_nothing_of_the_holdout_reaches_any_file_but_its_metrics(family, small_snapshot, artifact_root):
    runspec, run_id = compiled(family)
    run_dossier(runspec)
    holdout = next(s for s in runspec["segments"]["list"] if s["role"] == "holdout")
    tests = [s for s in runspec["segments"]["list"] if s["role"] == "test"]
    root = artifact_root / "dossiers" / run_id

    # No holdout bar's date is in any file, except the holdout's own bounds where segments are listed.
    days = np.arange(np.datetime64(holdout["start"]), np.datetime64(holdout["end"]) + 1)
    inner = {str(d) for d in days[np.is_busday(days)]} - {holdout["start"], holdout["end"]}
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]
    assert root / "segments/holdout/metrics.json" in files and len(files) > 10
    for path in files:
        if path == root / "segments/holdout/metrics.json":
            continue
        text = path.read_text()
        assert not [d for d in inner if d in text], path
        if path.name not in ("segments_summary.json", "dossier.json"):  # these list the segments' bounds
            assert holdout["start"] not in text and holdout["end"] not in text, path
    kept = read_json(artifact_root, f"dossiers/{run_id}/oos_returns.json")
    assert kept["schema"] == "oos_returns_v1"
    assert len(kept["dates"]) == len(kept["net_returns"]) == sum(s["bars"] for s in tests)
    assert kept["dates"][0] == tests[0]["start"] and kept["dates"][-1] == tests[-1]["end"]
    assert all(type(r) is float for r in kept["net_returns"])

    # Other holdout prices: every file of the test segments, the stitched record and the kept returns are
    # the same bytes; only the holdout's metrics (and what indexes them) differ.
    ingest_csv(snapshot_id="other_holdout", data=altered_holdout_csv(holdout["start"], 1.7), source="test")
    other, other_id = compile_blueprint(blueprint=a_blueprint(family, base=RESEARCH), snapshot_id="other_holdout",
                                        policy_bundle_id="default_v1")
    run_dossier(other)
    other_root = artifact_root / "dossiers" / other_id
    for name in ["oos_curve.csv", "oos_returns.json"] + [
            f"segments/{s['segment_id']}/{part}" for s in tests for part in ("curve.csv", "trades.csv")]:
        assert (root / name).read_bytes() == (other_root / name).read_bytes(), name
    for name in ["metrics.json"] + [f"segments/{s['segment_id']}/metrics.json" for s in tests]:
        mine, theirs = read_json(root, name), read_json(other_root, name)
        assert {k: v for k, v in mine.items() if k != "run_id"} == {k: v for k, v in theirs.items() if k != "run_id"}
    assert read_json(root, "segments/holdout/metrics.json")["metrics"] != read_json(
        other_root, "segments/holdout/metrics.json")["metrics"]


def test_buy_and_hold_of_two_symbols_trades_twice_over_eight_segments(artifact_root, db):
    ingest_csv(snapshot_id="two", data=small_csv(symbols=("AAA", "BBB"), start="2014-01-01", end="2020-01-01"),
               source="test")
    blueprint = a_blueprint("buy_and_hold", {}, base=RESEARCH, universe={"symbols": ["AAA", "BBB"]},
                            evaluation={"protocol": "walk_forward", "test_months": 6, "holdout_months": 12},
                            costs={"fee_bps": 5, "slippage_bps": 5})
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id="two", policy_bundle_id="default_v1")
    tests = [s for s in runspec["segments"]["list"] if s["role"] == "test"][-8:]
    runspec["segments"]["list"] = tests + [runspec["segments"]["list"][-1]]  # exactly eight test segments
    run_id = content_id(runspec)

    run_dossier(runspec)

    metrics = read_json(artifact_root, f"dossiers/{run_id}/metrics.json")["oos"]
    assert len(tests) == 8 and metrics["trades"] == 2
    assert metrics["turnover"] == pytest.approx(1.0 / metrics["n_bars"] * 252, rel=1e-9)  # the entry only
    rows = list(csv.DictReader(io.StringIO(small_csv(symbols=("AAA", "BBB"), start="2014-01-01",
                                                     end="2020-01-01").decode())))
    close = {(r["date"], r["symbol"]): float(r["close"]) for r in rows}
    days = sorted({r["date"] for r in rows})
    entry_close = days[days.index(tests[0]["start"]) - 1]
    growth = [close[(tests[-1]["end"], s)] / close[(entry_close, s)] for s in ("AAA", "BBB")]
    # Half in each at the entry close, less the entry's cost; then the holdings drift, untouched.
    assert metrics["total_return"] == pytest.approx((1 - 10e-4) * sum(growth) / 2 - 1, rel=1e-9)
