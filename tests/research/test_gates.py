"""The GateRunner: the bundle's gates against the dossier, with values, evidence and a PASS/FAIL verdict."""
import json

import pytest

from contracts import sha256_hex, validate
from research.artifacts import json_bytes
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.errors import ArtifactConflict, DossierError, PolicyError, ResearchError
from research.gates import evaluate_gates
from research.metrics import probabilistic_sharpe_ratio
from research.registry import TrialSet, record_trial, trials_in_scope

from ..builders import RESEARCH, a_blueprint, stored_files

pytestmark = pytest.mark.django_db
OUT = "jobs/0123456789ab/outputs/gate_results.json"


def alone(runspec, run_id, scope="snapshot"):
    """The trials of a run judged with nothing registered: itself."""
    return trials_in_scope(scope=scope, runspec=runspec, run_id=run_id, root_job_id="0123456789ab")


def among(run_id, sharpes, scope="snapshot"):
    """The run judged among len(sharpes) trials (the others never run), with these Sharpe ratios."""
    others = tuple(f"{i:012x}" for i in range(1, len(sharpes)))
    return TrialSet(scope=scope, run_id=run_id, run_ids=(run_id, *others), sharpes=tuple(sharpes))


def rewrite_kept_returns(artifact_root, run_id, change):
    """Give the run's dossier other kept returns: `change(doc)` returns the new oos_returns.json document, or None
    for a dossier that keeps none (as a kernel v1 dossier). The index is rewritten to match, as if the kernel
    had written it so: the gates must judge the content, not a sha256 mismatch."""
    root = artifact_root / "dossiers" / run_id
    index = json.loads((root / "dossier.json").read_text())
    path = f"dossiers/{run_id}/oos_returns.json"
    kept = root / "oos_returns.json"
    doc = change(json.loads(kept.read_text()) if kept.exists() else None)
    kept.unlink(missing_ok=True)
    files = [f for f in index["files"] if f["path"] != path]
    if doc is not None:
        data = json_bytes(doc)
        (root / "oos_returns.json").write_bytes(data)
        files.append({"path": path, "sha256": sha256_hex(data), "bytes": len(data)})
    index["files"] = sorted(files, key=lambda f: f["path"])
    (root / "dossier.json").write_bytes(json_bytes(index))


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

    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

    doc, gates = gates_by_id(artifact_root)
    assert validate("gate_results_v1", doc) == []
    assert doc["trials"] == {"scope": "snapshot", "n_trials": 1, "sharpe_variance": None, "run_ids": [run_id]}
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
    assert "n_trials=1 (scope snapshot)" in gates["deflated_sharpe"]["note"]
    passed = [g["result"] == "PASS" for g in gates.values()]
    assert doc["verdict"] == result.verdict == ("PASS" if all(passed) else "FAIL")
    assert doc["summary"] == {"total": 8, "passed": sum(passed), "failed": 8 - sum(passed), "not_applicable": 0}
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

    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

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

    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [None, 0.1, 0.2]), output_path=OUT)

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

    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

    _, gates = gates_by_id(artifact_root)
    assert (gates["data_integrity"]["value"], gates["data_integrity"]["result"]) == (False, "FAIL")
    assert result.verdict == "FAIL"


def test_more_trials_deflate_the_sharpe_ratio(small_snapshot, artifact_root):
    runspec, run_id = prepared()

    evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [None]), output_path="a/gate_results.json")
    evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [None] * 50), output_path="b/gate_results.json")
    # Two defined Sharpe ratios, 0 and 1: their sample variance is 0.5.
    evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [0.0, 1.0] + [None] * 48),
                   output_path="c/gate_results.json")

    dsr = {k: gates_by_id(artifact_root, f"{k}/gate_results.json")[1]["deflated_sharpe"]["value"] for k in "abc"}
    assert dsr["a"] > dsr["b"] > dsr["c"]
    doc, _ = gates_by_id(artifact_root, "c/gate_results.json")
    assert doc["trials"]["n_trials"] == 50 and doc["trials"]["sharpe_variance"] == 0.5
    assert doc["trials"]["run_ids"] == [run_id, *(f"{i:012x}" for i in range(1, 50))]


def test_gate_results_are_write_once(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    first = evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

    assert evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT) == first
    with pytest.raises(ArtifactConflict) as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [None, None]), output_path=OUT)
    assert caught.value.code == "artifact_conflict"


def test_refusals_write_nothing(small_snapshot, artifact_root, policy_root):
    write_bundle(policy_root, "mutable", [{"gate_id": "g", "metric": "oos.sharpe", "operator": ">", "threshold": 0}])
    runspec, run_id = prepared(bundle="mutable")
    before = stored_files(artifact_root)

    trials = alone(runspec, run_id)
    refusals = []
    with pytest.raises(ResearchError, match="counted for run 000000000001, not for run") as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=among("000000000001", [None]), output_path=OUT)
    refusals.append(caught.value.code)
    with pytest.raises(PolicyError, match="trials counted with scope 'lineage'; the policy bundle asks for 'snapshot'") \
            as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id, scope="lineage"), output_path=OUT)
    refusals.append(caught.value.code)
    with pytest.raises(DossierError, match="is not the content id") as caught:
        evaluate_gates(runspec=runspec, run_id="000000000000", trials=trials, output_path=OUT)
    refusals.append(caught.value.code)
    unrun, unrun_id = compile_blueprint(blueprint=a_blueprint("buy_and_hold", base=RESEARCH), snapshot_id="small_snap",
                                        policy_bundle_id="mutable")
    with pytest.raises(DossierError, match="no dossier for run") as caught:
        evaluate_gates(runspec=unrun, run_id=unrun_id, trials=alone(unrun, unrun_id), output_path=OUT)
    refusals.append(caught.value.code)
    write_bundle(policy_root, "mutable", [{"gate_id": "g", "metric": "oos.sharpe", "operator": ">", "threshold": 1}])
    with pytest.raises(PolicyError, match="changed since compile") as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=trials, output_path=OUT)
    refusals.append(caught.value.code)

    assert refusals == ["research_error", "policy_error", "dossier_error", "dossier_error", "policy_error"]
    assert stored_files(artifact_root) == before


def test_a_dossier_file_that_changed_is_refused(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    path = artifact_root / f"dossiers/{run_id}/metrics.json"
    path.write_text(path.read_text().replace('"sharpe":', '"sharpe": 9, "was":', 1))

    with pytest.raises(DossierError, match="does not match the sha256 recorded") as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=among(run_id, [0.5]), output_path=OUT)
    assert caught.value.code == "dossier_error"
    assert not (artifact_root / OUT).exists()


FOURTEEN = [
    *(("sma_crossover", {"fast": fast, "slow": slow}) for fast, slow in ((5, 20), (10, 50), (20, 100), (5, 50), (1, 30))),
    *(("ts_momentum", {"lookback": lookback}) for lookback in (20, 60, 120)),
    ("rsi_mean_reversion", {"period": 14, "entry": 30, "exit": 55}),
    ("rsi_mean_reversion", {"period": 7, "entry": 25, "exit": 60}),
    ("xs_momentum", {"lookback": 60, "top_k": 2}),
    ("xs_momentum", {"lookback": 120, "top_k": 1}),
    ("buy_and_hold", {}),
    ("sma_crossover", {"fast": 10, "slow": 30}),
]


def judge_as_own_lineage(artifact_root, number, family, params, bundle="default_v2"):
    """Submit a blueprint directly (its job is its own lineage's root), judge it, register it like the engine."""
    runspec, run_id = compile_blueprint(blueprint=a_blueprint(family, params, base=RESEARCH), snapshot_id="small_snap",
                                        policy_bundle_id=bundle)
    run_dossier(runspec)
    job_id = f"{number:012x}"
    trials = trials_in_scope(scope="snapshot", runspec=runspec, run_id=run_id, root_job_id=job_id)
    output = f"jobs/{job_id}/outputs/gate_results.json"
    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=trials, output_path=output)
    metrics = json.loads((artifact_root / f"dossiers/{run_id}/metrics.json").read_text())
    record_trial(job_id=job_id, root_job_id=job_id, run_id=run_id, runspec=runspec, verdict=result.verdict,
                 metrics=metrics)
    doc, gates = gates_by_id(artifact_root, output)
    return runspec, run_id, doc, gates, metrics


def test_fourteen_blueprints_on_one_snapshot_are_fourteen_trials(small_snapshot, artifact_root):
    judged = [judge_as_own_lineage(artifact_root, number, family, params)
              for number, (family, params) in enumerate(FOURTEEN, start=1)]

    run_ids = [run_id for _, run_id, _, _, _ in judged]
    assert len(set(run_ids)) == 14
    runspec, run_id, doc, gates, metrics = judged[-1]
    assert validate("gate_results_v1", doc) == []
    assert doc["trials"]["scope"] == "snapshot"
    assert doc["trials"]["n_trials"] == 14 and doc["trials"]["run_ids"] == run_ids
    sharpes = [m["oos"]["sharpe"] for *_, m in judged]
    assert doc["trials"]["sharpe_variance"] == pytest.approx(
        sum((s - sum(sharpes) / 14) ** 2 for s in sharpes) / 13, rel=1e-12)
    # Deflated by 14 trials, the Sharpe ratio is judged against the best of 14 by luck: below its PSR.
    assert gates["deflated_sharpe"]["value"] < metrics["oos"]["psr"]
    assert "n_trials=14 (scope snapshot)" in gates["deflated_sharpe"]["note"]
    # Counted per lineage, as before, it would be one trial and the DSR its PSR.
    assert trials_in_scope(scope="lineage", runspec=runspec, run_id=run_id, root_job_id="00000000000e").n_trials == 1

    for number, (_, _, doc, gates, _) in enumerate(judged, start=1):
        pbo = gates["pbo"]
        if number < 10:
            assert (pbo["result"], pbo["value"]) == ("NOT_APPLICABLE", None)
            assert pbo["note"] == f"{number} trial(s) in scope, fewer than the minimum of 10"
            assert doc["summary"]["not_applicable"] == 1
        else:
            assert pbo["result"] in ("PASS", "FAIL") and 0.0 <= pbo["value"] <= 1.0
            assert pbo["result"] == ("PASS" if pbo["value"] <= 0.5 else "FAIL")
            record = doc["overfitting"]["pbo"]
            assert (record["status"], record["n_trials"], record["combinations"]) == ("computed", number, 12870)
            assert pbo["evidence"] == {"artifact": f"jobs/{number:012x}/outputs/gate_results.json",
                                       "pointer": "/overfitting/pbo/value"}
        failed = [g["gate_id"] for g in doc["gates"] if g["result"] == "FAIL"]
        assert doc["verdict"] == ("FAIL" if failed else "PASS")


def test_pbo_is_not_applicable_while_a_trial_keeps_no_returns(small_snapshot, artifact_root, policy_root):
    write_bundle(policy_root, "few", [{"gate_id": "pbo", "metric": "trials.pbo", "operator": "<=", "threshold": 0.5}])
    bundle = json.loads((policy_root / "few.json").read_text())
    bundle["trials"] = {"pbo": {"min_trials": 2, "partitions": 4}}
    (policy_root / "few.json").write_text(json.dumps(bundle))
    first = prepared("sma_crossover", {"fast": 5, "slow": 20}, bundle="few")
    second = prepared("ts_momentum", {"lookback": 20}, bundle="few")
    kept = json.loads((artifact_root / f"dossiers/{first[1]}/oos_returns.json").read_text())
    rewrite_kept_returns(artifact_root, first[1], lambda doc: None)  # a dossier of a kernel that kept none
    record_trial(job_id="aaaaaaaaaaaa", root_job_id="aaaaaaaaaaaa", run_id=first[1], runspec=first[0],
                 verdict="PASS", metrics={"oos": {"sharpe": 0.1}})
    trials = trials_in_scope(scope="snapshot", runspec=second[0], run_id=second[1], root_job_id="bbbbbbbbbbbb")

    result = evaluate_gates(runspec=second[0], run_id=second[1], trials=trials, output_path="a/gate_results.json")

    doc, gates = gates_by_id(artifact_root, "a/gate_results.json")
    assert (gates["pbo"]["result"], gates["pbo"]["value"]) == ("NOT_APPLICABLE", None)
    assert gates["pbo"]["note"] == f"trial {first[1]} keeps no out-of-sample returns (dossiers/{first[1]}/oos_returns.json)"
    assert result.verdict == "PASS" and doc["summary"] == {"total": 1, "passed": 0, "failed": 0, "not_applicable": 1}

    rewrite_kept_returns(artifact_root, first[1], lambda doc: kept)
    evaluate_gates(runspec=second[0], run_id=second[1], trials=trials, output_path="b/gate_results.json")

    doc, gates = gates_by_id(artifact_root, "b/gate_results.json")
    assert 0.0 <= gates["pbo"]["value"] <= 1.0
    record = doc["overfitting"]["pbo"]
    assert (record["status"], record["n_trials"], record["combinations"]) == ("computed", 2, 6)
    assert record["bars"] == len(kept["dates"]) // 4 * 4 and record["end"] == kept["dates"][-1]


def test_kept_returns_that_reach_the_holdout_are_refused(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    summary = json.loads((artifact_root / f"dossiers/{run_id}/segments_summary.json").read_text())
    holdout = next(s for s in summary["segments"] if s["role"] == "holdout")
    rewrite_kept_returns(artifact_root, run_id, lambda doc: {
        **doc, "dates": [*doc["dates"], holdout["start"]], "net_returns": [*doc["net_returns"], 0.0]})
    before = stored_files(artifact_root)

    with pytest.raises(DossierError, match=f"holds {holdout['start']}, a date outside the run's test segments") as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

    assert caught.value.code == "dossier_error"
    assert stored_files(artifact_root) == before


def test_kept_returns_that_break_their_contract_are_refused(small_snapshot, artifact_root):
    runspec, run_id = prepared()
    rewrite_kept_returns(artifact_root, run_id, lambda doc: {**doc, "net_returns": doc["net_returns"][1:]})

    with pytest.raises(DossierError, match="breaks the oos_returns_v1 contract") as caught:
        evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path=OUT)

    assert caught.value.code == "dossier_error"
    assert not (artifact_root / OUT).exists()


def test_track_record_and_sharpe_interval_are_recorded_and_gated_when_asked(small_snapshot, artifact_root,
                                                                             policy_root):
    write_bundle(policy_root, "record", [
        {"gate_id": "track_record", "metric": "oos.min_track_record_met", "operator": "==", "threshold": True},
        {"gate_id": "trl_bars", "metric": "oos.min_track_record_length", "operator": "<=", "threshold": 1000000},
        {"gate_id": "ci_lower", "metric": "oos.sharpe_ci_lower", "operator": ">", "threshold": -100},
    ])
    runspec, run_id = prepared("buy_and_hold", {}, bundle="record")

    evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path="a/gate_results.json")
    evaluate_gates(runspec=runspec, run_id=run_id, trials=alone(runspec, run_id), output_path="b/gate_results.json")

    doc, gates = gates_by_id(artifact_root, "a/gate_results.json")
    assert doc["overfitting"] == gates_by_id(artifact_root, "b/gate_results.json")[0]["overfitting"]  # seeded
    oos = json.loads((artifact_root / f"dossiers/{run_id}/metrics.json").read_text())["oos"]
    trl = doc["overfitting"]["min_track_record_length"]
    sr = oos["sharpe"] / 252 ** 0.5
    assert oos["sharpe"] > 0  # the small snapshot drifts upwards
    assert probabilistic_sharpe_ratio(sr, 0.0, trl["bars"], oos["skew"], oos["kurtosis"]) == pytest.approx(0.95)
    assert trl["met"] == (oos["n_bars"] >= trl["bars"]) and trl["years"] == pytest.approx(trl["bars"] / 252)
    assert (gates["track_record"]["value"], gates["trl_bars"]["value"]) == (trl["met"], trl["bars"])
    assert gates["trl_bars"]["evidence"] == {"artifact": "a/gate_results.json",
                                             "pointer": "/overfitting/min_track_record_length/bars"}
    ci = doc["overfitting"]["sharpe_ci"]
    assert ci["status"] == "computed" and ci["lower"] < ci["sharpe"] < ci["upper"]
    assert ci["sharpe"] == pytest.approx(oos["sharpe"], rel=1e-9)  # the kept returns are the stitched OOS series
    assert (ci["samples"], ci["seed"], ci["confidence"], ci["block_bars"]) == (2000, 0, 0.95, 10)
    assert (gates["ci_lower"]["value"], gates["ci_lower"]["result"]) == (ci["lower"], "PASS")
