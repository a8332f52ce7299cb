"""The dossier: per-segment evidence, a metrics-only holdout, stitched out-of-sample metrics and an index."""
import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest

from contracts import sha256_hex, validate
from research.compiler import compile_blueprint
from research.backtest import Simulation
from research.dossier import curve_csv, dossier_summary, run_dossier
from research.errors import CompileError, SnapshotError

from ..builders import FAMILIES, RESEARCH, a_blueprint, stored_files

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
        [f"{root}/{name}" for name in ("dossier.json", "metrics.json", "segments_summary.json")]
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
    assert metrics["oos"]["trades"] == sum(m["trades"] for m in per_segment)
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
    assert curve[0] == ["date", "equity", "drawdown", "net_return"] + weights
    assert len(curve) - 1 == first["bars"]
    assert (curve[1][0], curve[-1][0]) == (first["start"], first["end"])
    assert all(float(row[2]) <= 0 for row in curve[1:])
    assert trades and set(trades[0]) == {"symbol", "entry_date", "exit_date", "bars", "return"}


def test_curve_rows_carry_twelve_significant_digits_and_spell_out_what_is_not_finite():
    # given three bars: compounding returns, a NaN return, a weight that is infinite
    nan, inf = float("nan"), float("inf")
    sim = Simulation(
        dates=np.array(["2024-01-02", "2024-01-03", "2024-01-04"], dtype="datetime64[D]"),
        weights=np.array([[0.5, -0.25], [1 / 3, 0.0], [inf, 1e-7]]),
        gross_returns=None, costs=None, turnover=None, trades=[],
        net_returns=np.array([0.1, -0.05, nan]),
    )

    assert curve_csv(sim, ["AAA", "BBB"]).decode().splitlines() == [
        "date,equity,drawdown,net_return,weight_AAA,weight_BBB",
        "2024-01-02,1.1,0,0.1,0.5,-0.25",
        "2024-01-03,1.045,-0.05,-0.05,0.333333333333,0",
        "2024-01-04,nan,nan,nan,inf,1e-07",
    ]
    assert curve_csv(replace(sim, dates=sim.dates[:0], weights=sim.weights[:0], net_returns=sim.net_returns[:0]),
                     ["AAA", "BBB"]) == b"date,equity,drawdown,net_return,weight_AAA,weight_BBB\n"


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
