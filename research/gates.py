"""The GateRunner: the policy bundle's gates evaluated against a run's dossier, written as gate_results.json.

Each gate names a metric (`oos.sharpe`, `holdout.sharpe`, ...). A metric is read from the dossier file
that holds it, whose sha256 is first checked against dossier.json, and its evidence is that file and the
JSON pointer of the value. Some metrics are computed here: the snapshot sha256 match (the stored file is
hashed again now), the deflated Sharpe ratio (it depends on the trials counted, known only now) and the
overfitting tests over the trials in scope (research.overfitting; their record is in the gate results
themselves). A metric that is undefined (null) fails its gate; the PBO gate is NOT_APPLICABLE, with its
reason, while it cannot be computed. PASS only if no gate fails.
"""
import json
import math
import operator
from dataclasses import dataclass

import numpy as np

from contracts import content_id, sha256_hex, validate

from .artifacts import ArtifactRef, read_artifact, write_json_artifact
from .errors import ArtifactNotFound, DossierError, PolicyError, ResearchError
from .metrics import deflated_sharpe_ratio
from .models import data_path
from .overfitting import bootstrap_sharpe_interval, min_track_record_length, probability_of_backtest_overfitting
from .policies import load_policy_bundle, trials_policy
from .dossier import dossier_root
from .registry import TrialSet

OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
             "!=": operator.ne}
SNAPSHOT_MATCH = "data.snapshot_sha256_match"
DEFLATED_SHARPE = "oos.deflated_sharpe"
# Metrics computed from the overfitting record of the gate results: (section, key, what undefined means).
OVERFITTING = {
    "trials.pbo": ("pbo", "value"),
    "oos.min_track_record_length": ("min_track_record_length", "bars"),
    "oos.min_track_record_met": ("min_track_record_length", "met"),
    "oos.sharpe_ci_lower": ("sharpe_ci", "lower"),
    "oos.sharpe_ci_upper": ("sharpe_ci", "upper"),
}
NOT_APPLICABLE = "NOT_APPLICABLE"
KEPT_RETURNS = "oos_returns.json"  # the test segments' net returns, kept by the kernel (schema oos_returns_v1)
# Which dossier file holds each family of metrics, and the pointer prefix inside it.
SOURCES = {
    "oos": ("metrics.json", "/oos"),
    "stress": ("metrics.json", "/stress"),
    "segments": ("segments_summary.json", ""),
    "holdout": ("segments/holdout/metrics.json", "/metrics"),
}


@dataclass(frozen=True)
class GateResult:
    artifact: ArtifactRef
    verdict: str
    summary: dict


def evaluate_gates(*, runspec: dict, run_id: str, trials: TrialSet, output_path: str) -> GateResult:
    """Evaluate the runspec's policy bundle's gates on dossier `run_id`; write gate_results.json at output_path.

    trials: the trials run `run_id` is judged among (`registry.trials_in_scope` with the bundle's
    `trials.scope`): N and the variance of their Sharpe ratios deflate the Sharpe ratio, their kept
    out-of-sample returns give the PBO.
    """
    if content_id(runspec) != run_id:
        raise DossierError(f"run_id {run_id} is not the content id of this runspec ({content_id(runspec)})")
    if trials.run_id != run_id or run_id not in trials.run_ids:
        raise ResearchError(f"the trials given are counted for run {trials.run_id}, not for run {run_id}")
    policy = runspec["policy"]
    bundle, bundle_sha256 = load_policy_bundle(policy["policy_bundle_id"])
    if bundle_sha256 != policy["policy_bundle_sha256"]:
        raise PolicyError(f"policy bundle {policy['policy_bundle_id']!r} changed since compile "
                          f"(sha256 {bundle_sha256}, the runspec names {policy['policy_bundle_sha256']})")
    settings = trials_policy(bundle)
    if trials.scope != settings["scope"]:
        raise PolicyError(f"trials counted with scope {trials.scope!r}; the policy bundle asks for {settings['scope']!r}")
    dossier = _Dossier.written(run_id)
    if dossier is None:
        raise DossierError(f"no dossier for run {run_id}: run it before evaluating gates")
    periods = runspec["execution"]["periods_per_year"]
    context = {"runspec": runspec, "trials": trials, "output_path": output_path,
               "overfitting": _overfitting(dossier, trials, settings, periods)}
    gates = [_evaluate(gate, dossier, context) for gate in bundle["gates"]]
    counts = {result: sum(1 for g in gates if g["result"] == result) for result in ("PASS", "FAIL", NOT_APPLICABLE)}
    verdict = "PASS" if counts["FAIL"] == 0 else "FAIL"
    doc = {
        "schema_version": "gate_results_v1",
        "run_id": run_id,
        "snapshot_id": runspec["data"]["snapshot_id"],
        "policy_bundle_id": policy["policy_bundle_id"],
        "policy_bundle_sha256": bundle_sha256,
        "verdict": verdict,
        "trials": trials.record(),
        "overfitting": context["overfitting"],
        "gates": gates,
        "summary": {"total": len(gates), "passed": counts["PASS"], "failed": counts["FAIL"],
                    "not_applicable": counts[NOT_APPLICABLE]},
    }
    problems = validate("gate_results_v1", doc)
    if problems:  # a bug in this module
        raise ValueError(f"gate results do not validate against gate_results_v1: {problems}")
    ref = write_json_artifact(output_path, doc)
    failed = [g["gate_id"] for g in gates if g["result"] == "FAIL"]
    return GateResult(artifact=ref, verdict=verdict, summary={"run_id": run_id, "verdict": verdict,
                                                               **doc["summary"], "failed_gates": failed})


class _Dossier:
    """The dossier's JSON files, each read once and checked against the sha256 in dossier.json."""

    def __init__(self, run_id: str, index: dict):
        self.root = dossier_root(run_id)
        self.sha256 = {f["path"]: f["sha256"] for f in index["files"]}
        self.docs = {}

    @classmethod
    def written(cls, run_id: str) -> "_Dossier | None":
        """The run's dossier, or None if its index (written last) is not there."""
        try:
            return cls(run_id, json.loads(read_artifact(f"{dossier_root(run_id)}/dossier.json")))
        except ArtifactNotFound:
            return None

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def doc(self, name: str) -> dict:
        path = self.path(name)
        if path not in self.docs:
            data = read_artifact(path)
            if sha256_hex(data) != self.sha256.get(path):
                raise DossierError(f"{path} does not match the sha256 recorded in {self.root}/dossier.json")
            self.docs[path] = json.loads(data)
        return self.docs[path]


def _evaluate(gate: dict, dossier: _Dossier, context: dict) -> dict:
    metric = gate["metric"]
    applicable = True
    if metric == SNAPSHOT_MATCH:
        value, artifact, pointer, note = _snapshot_match(context["runspec"])
    elif metric == DEFLATED_SHARPE:
        value, artifact, pointer, note = _deflated_sharpe(dossier, context)
    elif metric in OVERFITTING:
        section, key = OVERFITTING[metric]
        record = context["overfitting"][section]
        value, artifact, pointer = record[key], context["output_path"], f"/overfitting/{section}/{key}"
        note = record.get("reason")
        applicable = not (metric == "trials.pbo" and record["status"] == "not_applicable")
    else:
        value, artifact, pointer, note = _lookup(metric, dossier)
    if applicable:
        result, why = _compare(value, gate["operator"], gate["threshold"])
    else:
        result, why = NOT_APPLICABLE, None
    row = {
        "gate_id": gate["gate_id"], "metric": metric, "operator": gate["operator"], "threshold": gate["threshold"],
        "value": value, "result": result, "evidence": {"artifact": artifact, "pointer": pointer},
    }
    notes = [n for n in (note, why) if n]
    if notes:
        row["note"] = "; ".join(notes)
    return row


def _lookup(metric: str, dossier: _Dossier):
    family, _, rest = metric.partition(".")
    if family not in SOURCES or not rest:
        return None, dossier.path("dossier.json"), "", f"unknown metric {metric!r}: no dossier file holds it"
    name, prefix = SOURCES[family]
    pointer = prefix + "".join("/" + part for part in rest.split("."))
    node = dossier.doc(name)
    for part in pointer.strip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return None, dossier.path(name), pointer, f"metric {metric!r} is not in {dossier.path(name)}"
        node = node[part]
    if isinstance(node, (dict, list, str)):
        return None, dossier.path(name), pointer, f"metric {metric!r} is not a number or a boolean"
    return node, dossier.path(name), pointer, None


def _snapshot_match(runspec: dict):
    data = runspec["data"]
    path = data_path(data["snapshot_id"])
    try:
        actual = sha256_hex(read_artifact(path))
    except ArtifactNotFound:
        return False, path, "", "the snapshot file is missing"
    note = f"sha256 recomputed now: {actual}; runspec: {data['snapshot_sha256']}"
    return actual == data["snapshot_sha256"], path, "", note


def _deflated_sharpe(dossier: _Dossier, context: dict):
    oos = dossier.doc("metrics.json")["oos"]
    artifact, pointer = dossier.path("metrics.json"), "/oos/sharpe"
    periods = context["runspec"]["execution"]["periods_per_year"]
    sharpe, n_bars, skew, kurtosis = oos.get("sharpe"), oos.get("n_bars"), oos.get("skew"), oos.get("kurtosis")
    if sharpe is None or skew is None or kurtosis is None or not n_bars or n_bars < 2:
        return None, artifact, pointer, "undefined: the out-of-sample Sharpe ratio, skew or kurtosis is null"
    trials = context["trials"]
    variance = trials.sharpe_variance
    per_bar_variance = 1.0 / (n_bars - 1) if variance is None else variance / periods
    try:
        value = deflated_sharpe_ratio(sharpe / math.sqrt(periods), n_bars, skew, kurtosis, trials.n_trials,
                                      per_bar_variance)
    except ValueError as exc:
        return None, artifact, pointer, f"undefined: {exc}"
    note = (f"n_trials={trials.n_trials} (scope {trials.scope}), per-bar Sharpe variance across trials="
            f"{per_bar_variance:.6g} ({'of the trials' if variance is not None else 'default 1/(n_bars-1)'}), "
            f"n_bars={n_bars}")
    return _round(value), artifact, pointer, note


def _overfitting(dossier: _Dossier, trials: TrialSet, settings: dict, periods: int) -> dict:
    """The overfitting record of the gate results: PBO over the trials, MinTRL and the Sharpe interval of the
    judged run. Computed whether or not a gate reads them; each says why when it cannot be computed."""
    kept = _kept_returns(dossier)
    return {
        "pbo": _pbo(kept, trials, settings["pbo"]),
        "min_track_record_length": _min_track_record(dossier.doc("metrics.json")["oos"], periods,
                                                     settings["min_track_record"]["confidence"]),
        "sharpe_ci": _sharpe_interval(kept, settings["bootstrap"], periods),
    }


def _pbo(kept, trials: TrialSet, settings: dict) -> dict:
    """PBO over the trials' kept returns on the dates they all share (the judged run's `kept` among them)."""
    minimum, partitions = settings["min_trials"], settings["partitions"]
    record = {"value": None, "status": "not_applicable", "min_trials": minimum, "partitions": partitions,
              "n_trials": trials.n_trials}
    if trials.n_trials < minimum:
        return {**record, "reason": f"{trials.n_trials} trial(s) in scope, fewer than the minimum of {minimum}"}
    series = {}
    for run_id in trials.run_ids:
        if run_id == trials.run_id:
            returns = kept
        else:
            other = _Dossier.written(run_id)
            returns = None if other is None else _kept_returns(other)
        if returns is None:
            return {**record, "reason": f"trial {run_id} keeps no out-of-sample returns "
                                        f"({dossier_root(run_id)}/{KEPT_RETURNS})"}
        series[run_id] = returns
    common = sorted(set.intersection(*(set(dates) for dates, _ in series.values())))
    if len(common) < 2 * partitions:
        return {**record, "reason": f"the trials share {len(common)} out-of-sample dates; CSCV with "
                                    f"{partitions} partitions needs at least {2 * partitions}"}
    columns = []
    for dates, returns in series.values():
        position = {date: i for i, date in enumerate(dates)}
        columns.append([returns[position[date]] for date in common])
    result = probability_of_backtest_overfitting(np.array(columns).T, partitions)
    first = common[len(common) - result.bars]
    return {**record, "value": _round(result.pbo), "status": "computed", "combinations": result.combinations,
            "overfit_combinations": sum(1 for x in result.logits if x <= 0), "bars": result.bars,
            "start": first, "end": common[-1]}


def _min_track_record(oos: dict, periods: int, confidence: float) -> dict:
    record = {"bars": None, "years": None, "met": None, "confidence": confidence, "sr_benchmark": 0.0,
              "n_bars": oos.get("n_bars")}
    sharpe, skew, kurtosis = oos.get("sharpe"), oos.get("skew"), oos.get("kurtosis")
    if sharpe is None or skew is None or kurtosis is None or oos.get("n_bars") is None:
        return {**record, "reason": "undefined: the out-of-sample Sharpe ratio, skew, kurtosis or bars is null"}
    try:
        bars = min_track_record_length(sharpe / math.sqrt(periods), 0.0, skew, kurtosis, confidence)
    except ValueError as exc:
        return {**record, "reason": f"undefined: {exc}"}
    return {**record, "bars": _round(bars), "years": _round(bars / periods), "met": oos["n_bars"] >= bars}


def _sharpe_interval(kept, settings: dict, periods: int) -> dict:
    record = {"lower": None, "upper": None, "status": "not_applicable", **settings}
    if kept is None:
        return {**record, "reason": f"the run keeps no out-of-sample returns ({KEPT_RETURNS})"}
    try:
        interval = bootstrap_sharpe_interval(kept[1], samples=settings["samples"], confidence=settings["confidence"],
                                             seed=settings["seed"], block_bars=settings["block_bars"],
                                             periods_per_year=periods)
    except ValueError as exc:
        return {**record, "reason": f"undefined: {exc}"}
    return {**record, "lower": _round(interval.lower), "upper": _round(interval.upper), "status": "computed",
            "sharpe": _round(interval.sharpe), "resamples_used": interval.samples}


def _kept_returns(dossier: _Dossier):
    """(dates, net returns) of the run's test segments from its oos_returns.json, or None if the run keeps none.

    The file counts only if dossier.json lists it (and its bytes match). Every date must lie in a test segment
    of segments_summary.json: a kept series that reaches the holdout, or any bar outside the test segments,
    is refused (DossierError), so no holdout bar can reach the PBO or the bootstrap.
    """
    path = dossier.path(KEPT_RETURNS)
    if path not in dossier.sha256:
        return None
    doc = dossier.doc(KEPT_RETURNS)
    dates, returns = doc.get("dates"), doc.get("net_returns")
    if (doc.get("schema") != "oos_returns_v1" or not isinstance(dates, list) or not isinstance(returns, list)
            or len(dates) != len(returns) or not all(isinstance(d, str) for d in dates)
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) for r in returns)
            or any(a >= b for a, b in zip(dates, dates[1:]))):
        raise DossierError(f"{path} breaks the oos_returns_v1 contract (dates in order, one return each)")
    tests = [(s["start"], s["end"]) for s in dossier.doc("segments_summary.json")["segments"] if s["role"] == "test"]
    outside = next((d for d in dates if not any(start <= d <= end for start, end in tests)), None)
    if outside is not None:
        raise DossierError(f"{path} holds {outside}, a date outside the run's test segments")
    return dates, [float(r) for r in returns]


def _round(value: float) -> float:
    return float("%.12g" % value)


def _compare(value, op: str, threshold):
    if value is None:
        return "FAIL", "undefined metric value (null) fails the gate"
    if isinstance(threshold, bool) != isinstance(value, bool):
        return "FAIL", f"cannot compare {type(value).__name__} with a {type(threshold).__name__} threshold"
    return ("PASS" if OPERATORS[op](value, threshold) else "FAIL"), None
