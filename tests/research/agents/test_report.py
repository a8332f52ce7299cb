"""The report agent: the dossier's and the gates' own figures, and of the holdout only what the gates report."""
import json

from contracts import canonical_json, validate
from research.agents import report, run_agent
from research.agents.inputs import report_input
from research.artifacts import read_json_artifact

from ...builders import TINY_SNAPSHOT, a_blueprint, a_gated_run, a_snapshot


def gated_report(family="sma_crossover", params=None):
    a_snapshot(TINY_SNAPSHOT)
    run = a_gated_run(a_blueprint(family, params), snapshot_id=TINY_SNAPSHOT)
    return run, run_agent("report", report_input(run_id=run.run_id, gate_results=run.gate_results))


def test_the_reports_figures_are_the_dossiers_and_the_gates(db):
    # given a run judged by the gates, when it is reported
    run, output = gated_report()
    metrics = read_json_artifact(f"dossiers/{run.run_id}/metrics.json")
    summary = read_json_artifact(f"dossiers/{run.run_id}/segments_summary.json")
    gates = run.gate_results

    # then every figure is copied from the dossier and the gate results
    assert validate(report.CONTRACT, output) == []
    assert output["run_id"] == run.run_id and output["verdict"] == gates["verdict"]
    assert output["oos"] == {k: metrics["oos"][k] for k in report.OOS_FIGURES}
    assert output["stress_costs_x2"] == {k: metrics["stress"]["costs_x2"][k] for k in report.STRESS_FIGURES}
    tests = [row for row in summary["segments"] if row["role"] == "test"]
    assert output["test_segments"] == [{k: row[k] for k in report.SEGMENT_FIGURES} for row in tests]
    assert output["positive_share"] == summary["positive_share"]
    assert output["gates"] == [{k: g[k] for k in report.GATE_FIELDS if k in g} for g in gates["gates"]]
    assert output["gate_summary"] == gates["summary"]
    assert output["trials"] == {"n_trials": gates["trials"]["n_trials"], "scope": "snapshot"}
    assert output["pbo"] == {"status": "not_applicable", "value": None,
                             "reason": gates["overfitting"]["pbo"]["reason"]}
    assert output["findings"][0].startswith(f"verdict {gates['verdict']}: {gates['summary']['passed']} of ")


def test_the_holdout_appears_as_its_window_and_the_gates_that_judge_it_only(db):
    run, output = gated_report()
    holdout = read_json_artifact(f"dossiers/{run.run_id}/segments/holdout/metrics.json")

    # the holdout's window and its gate ids
    assert output["holdout"] == {"segment_id": "holdout", "start": holdout["start"], "end": holdout["end"],
                                 "bars": holdout["bars"], "visibility": "metrics_only", "gates": ["holdout_sharpe"]}
    # its figures only inside that gate: no other holdout figure is anywhere in the report
    gate = next(g for g in output["gates"] if g["gate_id"] == "holdout_sharpe")
    assert gate["value"] == holdout["metrics"]["sharpe"]
    without_gate = canonical_json({**output, "gates": [g for g in output["gates"] if g is not gate]}).decode()
    for name in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "ann_volatility"):
        value = holdout["metrics"][name]
        if isinstance(value, float):
            assert json.dumps(value) not in without_gate, name
    # and its input never held a holdout figure either
    inputs = report_input(run_id=run.run_id, gate_results=run.gate_results)
    assert [row for row in inputs["dossier"]["segments"] if row["role"] == "holdout"] == [
        {"segment_id": "holdout", "role": "holdout", "start": holdout["start"], "end": holdout["end"],
         "bars": holdout["bars"]}]


def test_a_failed_gate_is_a_finding_with_its_value_and_threshold(db):
    run, output = gated_report("buy_and_hold")  # buy and hold trades once: min_trades fails
    assert output["verdict"] == "FAIL"
    assert any(f.startswith("gate min_trades failed: oos.trades = ") and f.endswith("needs >= 10")
               for f in output["findings"])


def test_the_same_run_reports_the_same_bytes(db):
    run, output = gated_report("ts_momentum")
    again = run_agent("report", report_input(run_id=run.run_id, gate_results=run.gate_results))
    assert canonical_json(again) == canonical_json(output)
