"""The GateRunner: the policy bundle's gates evaluated against a run's dossier, written as gate_results.json.

Each gate names a metric (`oos.sharpe`, `holdout.sharpe`, ...). A metric is read from the dossier file
that holds it, whose sha256 is first checked against dossier.json, and its evidence is that file and the
JSON pointer of the value. Two metrics are computed here: the snapshot sha256 match (the stored file is
hashed again now) and the deflated Sharpe ratio (it depends on the number of trials, known only now).
A metric that is undefined (null) fails its gate. PASS only if every gate passes.
"""
import json
import math
import operator
from dataclasses import dataclass

from contracts import content_id, sha256_hex, validate

from .artifacts import ArtifactRef, read_artifact, write_json_artifact
from .errors import ArtifactNotFound, DossierError, PolicyError, ResearchError
from .metrics import deflated_sharpe_ratio
from .models import data_path
from .policies import load_policy_bundle
from .dossier import dossier_root

OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
             "!=": operator.ne}
SNAPSHOT_MATCH = "data.snapshot_sha256_match"
DEFLATED_SHARPE = "oos.deflated_sharpe"
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


def evaluate_gates(*, runspec: dict, run_id: str, n_trials: int, output_path: str,
                   sharpe_variance: float | None = None) -> GateResult:
    """Evaluate the runspec's policy bundle's gates on dossier `run_id`; write gate_results.json at output_path.

    n_trials: trials counted in the registry for the lineage (>= 1), for the deflated Sharpe ratio.
    sharpe_variance: variance of those trials' annualised out-of-sample Sharpe ratios; None means the
    variance of the Sharpe estimator itself under the null, 1/(n_bars - 1) per bar.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ResearchError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if content_id(runspec) != run_id:
        raise DossierError(f"run_id {run_id} is not the content id of this runspec ({content_id(runspec)})")
    policy = runspec["policy"]
    bundle, bundle_sha256 = load_policy_bundle(policy["policy_bundle_id"])
    if bundle_sha256 != policy["policy_bundle_sha256"]:
        raise PolicyError(f"policy bundle {policy['policy_bundle_id']!r} changed since compile "
                          f"(sha256 {bundle_sha256}, the runspec names {policy['policy_bundle_sha256']})")
    dossier = _Dossier(run_id)
    context = {"runspec": runspec, "n_trials": n_trials, "sharpe_variance": sharpe_variance}
    gates = [_evaluate(gate, dossier, context) for gate in bundle["gates"]]
    passed = sum(1 for g in gates if g["result"] == "PASS")
    verdict = "PASS" if passed == len(gates) else "FAIL"
    doc = {
        "schema_version": "gate_results_v1",
        "run_id": run_id,
        "snapshot_id": runspec["data"]["snapshot_id"],
        "policy_bundle_id": policy["policy_bundle_id"],
        "policy_bundle_sha256": bundle_sha256,
        "verdict": verdict,
        "trials": {"n_trials": n_trials, "sharpe_variance": sharpe_variance},
        "gates": gates,
        "summary": {"total": len(gates), "passed": passed, "failed": len(gates) - passed},
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

    def __init__(self, run_id: str):
        self.root = dossier_root(run_id)
        try:
            index = json.loads(read_artifact(f"{self.root}/dossier.json"))
        except ArtifactNotFound as exc:
            raise DossierError(f"no dossier for run {run_id}: run it before evaluating gates") from exc
        self.sha256 = {f["path"]: f["sha256"] for f in index["files"]}
        self.docs = {}

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
    if metric == SNAPSHOT_MATCH:
        value, artifact, pointer, note = _snapshot_match(context["runspec"])
    elif metric == DEFLATED_SHARPE:
        value, artifact, pointer, note = _deflated_sharpe(dossier, context)
    else:
        value, artifact, pointer, note = _lookup(metric, dossier)
    result, why = _compare(value, gate["operator"], gate["threshold"])
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
    variance = context["sharpe_variance"]
    per_bar_variance = 1.0 / (n_bars - 1) if variance is None else variance / periods
    n_trials = context["n_trials"]
    try:
        value = deflated_sharpe_ratio(sharpe / math.sqrt(periods), n_bars, skew, kurtosis, n_trials, per_bar_variance)
    except ValueError as exc:
        return None, artifact, pointer, f"undefined: {exc}"
    note = (f"n_trials={n_trials}, per-bar Sharpe variance across trials={per_bar_variance:.6g} "
            f"({'given' if variance is not None else 'default 1/(n_bars-1)'}), n_bars={n_bars}")
    return float("%.12g" % value), artifact, pointer, note


def _compare(value, op: str, threshold):
    if value is None:
        return "FAIL", "undefined metric value (null) fails the gate"
    if isinstance(threshold, bool) != isinstance(value, bool):
        return "FAIL", f"cannot compare {type(value).__name__} with a {type(threshold).__name__} threshold"
    return ("PASS" if OPERATORS[op](value, threshold) else "FAIL"), None
