"""report: a run's dossier and gate results -> a structured report of the evidence and the verdict.

It carries the test segments' figures, the stitched out-of-sample and stress figures, and the gate results
(verdict, each gate, trials N and scope, PBO status). Of the holdout it carries its window and the gates
whose evidence it is, as the gates report them; nothing else (see prompts/report/v1.md).
"""
from .base import Prompt, holdout_evidence

AGENT_ID = "report"
VERSION = "1"
CONTRACT = "agent_report_output_v1"

OOS_FIGURES = ("total_return", "cagr", "ann_volatility", "sharpe", "sortino", "max_drawdown",
               "max_drawdown_duration_bars", "calmar", "turnover", "time_in_market", "trades", "win_rate",
               "profit_factor", "psr", "t_stat", "n_bars", "excess_return")
STRESS_FIGURES = ("sharpe", "total_return", "max_drawdown", "cost_multiplier", "fee_bps", "slippage_bps")
SEGMENT_FIGURES = ("segment_id", "start", "end", "bars", "total_return", "cagr", "sharpe", "max_drawdown", "trades",
                   "psr")
GATE_FIELDS = ("gate_id", "metric", "operator", "threshold", "value", "result", "note")


def run(inputs: dict, *, prompt: Prompt) -> dict:
    dossier, gates = inputs["dossier"], inputs["gate_results"]
    oos, stress = dossier["metrics"]["oos"], dossier["metrics"].get("stress", {}).get("costs_x2", {})
    tests = [row for row in dossier["segments"] if row["role"] == "test"]
    holdouts = [row for row in dossier["segments"] if row["role"] == "holdout"]
    holdout_gates = [g["gate_id"] for g in gates["gates"]
                     if holdout_evidence(g, run_id=dossier["run_id"], segments=holdouts)]
    trials = gates.get("trials", {})
    pbo = gates.get("overfitting", {}).get("pbo")
    report = {
        "schema_version": CONTRACT,
        "agent_id": AGENT_ID,
        "prompt_version": prompt.version,
        "run_id": dossier["run_id"],
        "verdict": gates["verdict"],
        "gates": [{k: g[k] for k in GATE_FIELDS if k in g} for g in gates["gates"]],
        "gate_summary": {k: gates["summary"].get(k, 0) for k in ("total", "passed", "failed", "not_applicable")},
        "trials": {"n_trials": trials.get("n_trials"), "scope": trials.get("scope")},
        "pbo": None if pbo is None else {k: pbo.get(k) for k in ("status", "value", "reason")},
        "oos": {k: oos.get(k) for k in OOS_FIGURES},
        "stress_costs_x2": {k: stress.get(k) for k in STRESS_FIGURES},
        "test_segments": [{k: row.get(k) for k in SEGMENT_FIGURES} for row in tests],
        "positive_share": dossier["positive_share"],
        "holdout": None if not holdouts else {
            **{k: holdouts[0].get(k) for k in ("segment_id", "start", "end", "bars")},
            "visibility": "metrics_only",
            "gates": holdout_gates,
        },
    }
    report["findings"] = _findings(report)
    return report


def _findings(report: dict) -> list[str]:
    """Plain sentences a reviewer reads first, each from a figure of the report itself."""
    findings = [f"verdict {report['verdict']}: {report['gate_summary']['passed']} of "
                f"{report['gate_summary']['total']} gates passed"]
    for gate in report["gates"]:
        if gate["result"] == "FAIL":
            findings.append(f"gate {gate['gate_id']} failed: {gate['metric']} = {_figure(gate['value'])}, "
                            f"needs {gate['operator']} {_figure(gate['threshold'])}")
    tests = report["test_segments"]
    positive = sum(1 for row in tests if (row["total_return"] or 0) > 0)
    findings.append(f"{positive} of {len(tests)} test segments had a positive return")
    findings.append(f"out-of-sample Sharpe {_figure(report['oos']['sharpe'])} over {report['oos']['n_bars']} bars, "
                    f"{report['oos']['trades']} trades; at twice the costs {_figure(report['stress_costs_x2']['sharpe'])}")
    if report["trials"]["n_trials"] is not None:
        findings.append(f"judged among {report['trials']['n_trials']} trial(s), scope {report['trials']['scope']}")
    if report["pbo"] is not None:
        findings.append(f"PBO {report['pbo']['status']}" + (f": {_figure(report['pbo']['value'])}"
                                                            if report["pbo"]["value"] is not None else
                                                            f" ({report['pbo']['reason']})" if report["pbo"]["reason"] else ""))
    if report["holdout"] is not None:
        findings.append(f"holdout {report['holdout']['start']} .. {report['holdout']['end']}: metrics only, "
                        f"judged by gate(s) {', '.join(report['holdout']['gates']) or 'none'}")
    return findings


def _figure(value) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return f"{value:.4g}"
