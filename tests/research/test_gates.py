"""The GateRunner: the bundle's gates against the dossier, with values, evidence and a PASS/FAIL verdict."""
import json

import pytest

from contracts import validate
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.errors import ArtifactConflict, DossierError, PolicyError, ResearchError
from research.gates import evaluate_gates

from ..builders import RESEARCH, a_blueprint, stored_files

pytestmark = pytest.mark.django_db
OUT = "jobs/0123456789ab/outputs/gate_results.json"


def prepared(family="sma_crossover", params=None, bundle="default_v1"):
    runspec, run_id = compile_blueprint(blueprint=a_blueprint(family, params, base=RESEARCH), snapshot_id="small_snap",
                                        policy_bundle_id=bundle)
    run_dossier(runspec)
    return runspec, run_id


def gates_by_id(artifact_root, path=OUT):
    doc = json.loads((artifact_root / path).read_text())
    return doc, {g["gate_id"]: g for g in doc["gates"]}


@pytest.fixture
def policy_root(tmp_path, settings):
    root = tmp_path / "policies"
    root.mkdir()
    settings.EAM_POLICY_ROOT = str(root)
    return root


def write_bundle(root, bundle_id, gates):
    with open("policies/default_v1.json", encoding="utf-8") as handle:
        doc = json.load(handle)
    doc.update(policy_bundle_id=bundle_id, gates=gates)
    (root / f"{bundle_id}.json").write_text(json.dumps(doc))


def test_default_gates_are_evaluated_with_values_and_evidence(small_snapshot, artifact_root):
    runspec, run_id = prepared()

    result = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)

    doc, gates = gates_by_id(artifact_root)
    assert validate("gate_results_v1", doc) == []
    assert list(gates) == ["data_integrity", "min_trades", "oos_sharpe_positive", "positive_segments", "max_drawdown",
                           "cost_stress", "deflated_sharpe", "holdout_sharpe"]
    metrics = json.loads((artifact_root / f"dossiers/{run_id}/metrics.json").read_text())
    summary = json.loads((artifact_root / f"dossiers/{run_id}/segments_summary.json").read_text())
    holdout = json.loads((artifact_root / f"dossiers/{run_id}/segments/holdout/metrics.json").read_text())
    expected = {
        "data_integrity": (True, f"snapshots/small_snap/ohlcv.csv", ""),
        "min_trades": (metrics["oos"]["trades"], f"dossiers/{run_id}/metrics.json", "/oos/trades"),
        "oos_sharpe_positive": (metrics["oos"]["sharpe"], f"dossiers/{run_id}/metrics.json", "/oos/sharpe"),
        "positive_segments": (summary["positive_share"], f"dossiers/{run_id}/segments_summary.json", "/positive_share"),
        "max_drawdown": (metrics["oos"]["max_drawdown"], f"dossiers/{run_id}/metrics.json", "/oos/max_drawdown"),
        "cost_stress": (metrics["stress"]["costs_x2"]["sharpe"], f"dossiers/{run_id}/metrics.json",
                        "/stress/costs_x2/sharpe"),
        "holdout_sharpe": (holdout["metrics"]["sharpe"], f"dossiers/{run_id}/segments/holdout/metrics.json",
                           "/metrics/sharpe"),
    }
    for gate_id, (value, artifact, pointer) in expected.items():
        evidence = {"artifact": artifact, "pointer": pointer}
        assert (gates[gate_id]["value"], gates[gate_id]["evidence"]) == (value, evidence)
    assert 0.0 <= gates["deflated_sharpe"]["value"] <= 1.0
    assert "n_trials=1" in gates["deflated_sharpe"]["note"]
    passed = [g["result"] == "PASS" for g in gates.values()]
    assert doc["verdict"] == result.verdict == ("PASS" if all(passed) else "FAIL")
    assert doc["summary"] == {"total": 8, "passed": sum(passed), "failed": 8 - sum(passed)}
    assert result.artifact.path == OUT
    assert result.summary["failed_gates"] == [g for g, ok in zip(gates, passed) if not ok]


def test_each_gate_compares_its_value_with_its_threshold(small_snapshot, artifact_root, policy_root):
    write_bundle(policy_root, "mixed", [
        {"gate_id": "high_bar", "metric": "oos.sharpe", "operator": ">", "threshold": 100},
        {"gate_id": "low_bar", "metric": "oos.sharpe", "operator": "<", "threshold": 100},
        {"gate_id": "bars", "metric": "oos.n_bars", "operator": "!=", "threshold": 0},
        {"gate_id": "typed", "metric": "oos.trades", "operator": "==", "threshold": True},
    ])
    runspec, run_id = prepared(bundle="mixed")

    result = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)

    _, gates = gates_by_id(artifact_root)
    assert {g: gates[g]["result"] for g in gates} == {"high_bar": "FAIL", "low_bar": "PASS", "bars": "PASS",
                                                       "typed": "FAIL"}
    assert gates["typed"]["note"] == "cannot compare int with a bool threshold"
    assert result.verdict == "FAIL" and result.summary["failed_gates"] == ["high_bar", "typed"]


def test_an_undefined_or_unknown_metric_fails_its_gate_with_a_note(small_snapshot, artifact_root, policy_root):
    write_bundle(policy_root, "strict", [
        {"gate_id": "sharpe", "metric": "oos.sharpe", "operator": ">", "threshold": 0},
        {"gate_id": "dsr", "metric": "oos.deflated_sharpe", "operator": ">=", "threshold": 0},
        {"gate_id": "unknown", "metric": "oos.no_such_metric", "operator": ">", "threshold": 0},
        {"gate_id": "nowhere", "metric": "mystery.value", "operator": ">", "threshold": 0},
    ])
    # RSI never below 0: never enters, so returns are all zero and the Sharpe ratio is undefined.
    runspec, run_id = prepared("rsi_mean_reversion", {"period": 14, "entry": 0, "exit": 50}, bundle="strict")

    result = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=3, output_path=OUT)

    _, gates = gates_by_id(artifact_root)
    assert result.verdict == "FAIL"
    for gate in gates.values():
        assert (gate["value"], gate["result"]) == (None, "FAIL")
        assert "fails the gate" in gate["note"]
    assert gates["dsr"]["note"].startswith("undefined:")
    assert gates["unknown"]["note"].startswith("metric 'oos.no_such_metric' is not in")
    assert gates["nowhere"]["note"].startswith("unknown metric 'mystery.value'")


def test_the_data_gate_hashes_the_snapshot_file_again(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    path = artifact_root / "snapshots/small_snap/ohlcv.csv"
    path.write_bytes(path.read_bytes() + b"2099-01-01,AAA,1,1,1,1,1\n")

    result = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)

    _, gates = gates_by_id(artifact_root)
    assert (gates["data_integrity"]["value"], gates["data_integrity"]["result"]) == (False, "FAIL")
    assert result.verdict == "FAIL"


def test_more_trials_deflate_the_sharpe_ratio(small_snapshot, artifact_root):
    runspec, run_id = prepared()

    evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path="a/gate_results.json")
    evaluate_gates(runspec=runspec, run_id=run_id, n_trials=50, output_path="b/gate_results.json")
    evaluate_gates(runspec=runspec, run_id=run_id, n_trials=50, output_path="c/gate_results.json", sharpe_variance=0.5)

    dsr = {k: gates_by_id(artifact_root, f"{k}/gate_results.json")[1]["deflated_sharpe"]["value"] for k in "abc"}
    assert dsr["a"] > dsr["b"] > dsr["c"]
    doc, _ = gates_by_id(artifact_root, "c/gate_results.json")
    assert doc["trials"] == {"n_trials": 50, "sharpe_variance": 0.5}


def test_gate_results_are_write_once(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    first = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)

    assert evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT) == first
    with pytest.raises(ArtifactConflict):
        evaluate_gates(runspec=runspec, run_id=run_id, n_trials=2, output_path=OUT)


def test_refusals_write_nothing(small_snapshot, artifact_root, policy_root):
    write_bundle(policy_root, "mutable", [{"gate_id": "g", "metric": "oos.sharpe", "operator": ">", "threshold": 0}])
    runspec, run_id = prepared(bundle="mutable")
    before = stored_files(artifact_root)

    with pytest.raises(ResearchError, match="n_trials must be an integer >= 1"):
        evaluate_gates(runspec=runspec, run_id=run_id, n_trials=0, output_path=OUT)
    with pytest.raises(DossierError, match="is not the content id"):
        evaluate_gates(runspec=runspec, run_id="000000000000", n_trials=1, output_path=OUT)
    unrun, unrun_id = compile_blueprint(blueprint=a_blueprint("buy_and_hold", base=RESEARCH), snapshot_id="small_snap",
                                        policy_bundle_id="mutable")
    with pytest.raises(DossierError, match="no dossier for run"):
        evaluate_gates(runspec=unrun, run_id=unrun_id, n_trials=1, output_path=OUT)
    write_bundle(policy_root, "mutable", [{"gate_id": "g", "metric": "oos.sharpe", "operator": ">", "threshold": 1}])
    with pytest.raises(PolicyError, match="changed since compile"):
        evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)

    assert stored_files(artifact_root) == before


def test_a_dossier_file_that_changed_is_refused(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    path = artifact_root / f"dossiers/{run_id}/metrics.json"
    path.write_text(path.read_text().replace('"sharpe":', '"sharpe": 9, "was":', 1))

    with pytest.raises(DossierError, match="does not match the sha256 recorded"):
        evaluate_gates(runspec=runspec, run_id=run_id, n_trials=1, output_path=OUT)
    assert not (artifact_root / OUT).exists()
