"""Reading a run: the dossier as reads show it, and the holdout rule (a holdout shows its metrics only)."""
import json
import shutil

import pytest

from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.errors import ArtifactNotFound, HoldoutHidden, InvalidRunId, RunNotFound, SegmentNotFound
from research.runs import dossier_file, run_detail, run_segment, shows

from ..builders import RESEARCH, a_blueprint

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_id(small_snapshot) -> str:
    runspec, run_id = compile_blueprint(blueprint=a_blueprint(base=RESEARCH), snapshot_id="small_snap",
                                        policy_bundle_id="default_v1")
    run_dossier(runspec)
    return run_id


def test_the_holdout_rule():
    assert [part for part in ("metrics", "curve", "trades") if shows("holdout", part)] == ["metrics"]
    assert [part for part in ("metrics", "curve", "trades") if shows("test", part)] == ["metrics", "curve", "trades"]


def test_a_run_lists_its_segments_and_which_have_a_curve(run_id):
    run = run_detail(run_id=run_id)

    roles = {s["segment_id"]: (s["role"], s["has_curve"]) for s in run["segments"]}
    assert roles.pop("holdout") == ("holdout", False)
    assert roles and set(roles.values()) == {("test", True)}
    assert run["trials"] == []  # no job has recorded it yet


def test_a_test_segment_shows_metrics_curve_and_trades(run_id):
    segment = run_segment(run_id=run_id, segment_id="seg_001")

    assert list(segment) == ["run_id", "segment_id", "role", "metrics", "curve", "trades"]
    assert segment["curve"]["columns"][0] == "date" and segment["curve"]["rows"]
    assert run_segment(run_id=run_id, segment_id="seg_001", part="trades").keys() == {
        "run_id", "segment_id", "role", "trades"}


def test_a_holdout_shows_its_metrics_only(run_id):
    assert list(run_segment(run_id=run_id, segment_id="holdout")) == ["run_id", "segment_id", "role", "metrics"]
    for part in ("curve", "trades"):
        with pytest.raises(HoldoutHidden, match="metrics only"):
            run_segment(run_id=run_id, segment_id="holdout", part=part)
        with pytest.raises(HoldoutHidden):
            dossier_file(run_id, f"segments/holdout/{part}.csv")
    assert dossier_file(run_id, "segments/holdout/metrics.json").startswith(b"{")
    assert dossier_file(run_id, "segments/seg_001/curve.csv").startswith(b"date,")


def test_unknown_runs_segments_and_files_are_not_found(run_id, artifact_root):
    with pytest.raises(InvalidRunId, match="12 lowercase hex"):
        run_detail(run_id="../etc")
    with pytest.raises(RunNotFound, match="run 0123456789ab not found"):
        run_detail(run_id="0123456789ab")
    with pytest.raises(SegmentNotFound, match="has no segment seg_999"):
        run_segment(run_id=run_id, segment_id="seg_999")
    with pytest.raises(ArtifactNotFound, match="no artifact segments/seg_999/curve.csv"):
        dossier_file(run_id, "segments/seg_999/curve.csv")

    # a dossier whose segment files went missing: the file is not found, under the name the reader asked for
    shutil.rmtree(artifact_root / f"dossiers/{run_id}/segments/seg_001")
    with pytest.raises(ArtifactNotFound, match="no artifact metrics.json"):
        run_segment(run_id=run_id, segment_id="seg_001")


def test_a_dossier_of_kernel_1_stays_readable(artifact_root):
    # given a dossier as kernel eam-research-1 wrote it: no benchmark columns, trades without side or pnl,
    # `exposure` instead of gross_exposure / time_in_market, no oos_returns.json
    run_id = "0a1b2c3d4e5f"
    old = {
        "dossier.json": {"schema_version": "dossier_v1", "run_id": run_id, "kernel_version": "eam-research-1",
                         "snapshot_id": "small_snap", "snapshot_sha256": "0" * 64, "policy_bundle_id": "default_v1",
                         "policy_bundle_sha256": "1" * 64, "holdout_visibility": "metrics_only",
                         "segments": [{"segment_id": "seg_001", "role": "test"},
                                      {"segment_id": "holdout", "role": "holdout"}], "files": []},
        "metrics.json": {"run_id": run_id, "oos": {"sharpe": 0.5, "exposure": 0.8, "trades": 3,
                                                  "segments": ["seg_001"]}},
        "segments_summary.json": {"run_id": run_id, "test_segments": 1, "positive_segments": 1, "positive_share": 1.0,
                                  "segments": [{"segment_id": "seg_001", "role": "test", "sharpe": 0.5},
                                               {"segment_id": "holdout", "role": "holdout", "sharpe": 0.1}]},
        "segments/seg_001/metrics.json": {"run_id": run_id, "segment_id": "seg_001", "metrics": {"exposure": 0.8}},
    }
    folder = artifact_root / "dossiers" / run_id
    for name, doc in old.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(doc))
    (folder / "segments/seg_001/curve.csv").write_text("date,equity,drawdown,net_return,weight_AAA\n"
                                                       "2020-01-02,1.01,0,0.01,1\n")
    (folder / "segments/seg_001/trades.csv").write_text("symbol,entry_date,exit_date,bars,return\n"
                                                        "AAA,2020-01-02,,1,0.01\n")

    # when it is read as the API and the pages read it, then it shows what it holds
    run = run_detail(run_id=run_id)
    segment = run_segment(run_id=run_id, segment_id="seg_001")

    assert run["kernel_version"] == "eam-research-1" and run["metrics"]["oos"]["exposure"] == 0.8
    assert segment["curve"]["columns"] == ["date", "equity", "drawdown", "net_return", "weight_AAA"]
    assert segment["trades"]["rows"] == [["AAA", "2020-01-02", None, 1, 0.01]]
    with pytest.raises(ArtifactNotFound):
        dossier_file(run_id, "oos_returns.json")


def test_a_kernel_2_segment_shows_benchmark_and_trade_sides(run_id):
    segment = run_segment(run_id=run_id, segment_id="seg_001")

    assert segment["curve"]["columns"][4:6] == ["benchmark_equity", "benchmark_return"]
    assert segment["trades"]["columns"] == ["symbol", "side", "entry_date", "exit_date", "bars", "return", "pnl"]
    assert {row[1] for row in segment["trades"]["rows"]} <= {"long", "short"}
    assert isinstance(segment["trades"]["rows"][0][6], float)
    assert "alpha" in run_detail(run_id=run_id)["metrics"]["oos"]
