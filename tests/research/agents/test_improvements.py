"""The improvements agent: real neighbours and siblings, ranked by the test-segment evidence, k from the policy,
and proposals that do not depend on anything of the holdout."""
import copy
import json

import pytest

from contracts import canonical_json, validate
from research.agents import improvements, run_agent
from research.agents.inputs import improvements_input
from research.compiler import compile_blueprint, normalise_strategy, param_errors

from .documents import POLICY, with_k
from ...builders import TINY_SNAPSHOT, a_blueprint, a_gated_run, a_snapshot, a_snapshot_with_other_holdout

GOOD = {"oos": {"sharpe": 0.8, "trades": 40}, "stress": {"costs_x2": {"sharpe": 0.5}}, "positive_share": 0.75,
        "test_segments": [{"segment_id": "seg_001"}] * 4,
        "gates": [{"gate_id": "min_trades", "metric": "oos.trades", "operator": ">=", "threshold": 10, "value": 40,
                   "result": "PASS"}]}


def evidence(**changes) -> dict:
    doc = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = doc
        for key in parents:
            target = target[key]
        target[last] = value
    return doc


def propose(blueprint: dict, found: dict = GOOD, tried=(), policy=POLICY) -> dict:
    return run_agent("improvements", {"blueprint": blueprint, "evidence": found, "tried_params_sha256": list(tried),
                                      "policy": policy})


def test_neighbours_differ_from_the_parent_in_one_parameter_by_one_step():
    parent = a_blueprint("sma_crossover", fast=10, slow=40)
    output = propose(parent, policy=with_k(20))

    strategies = [(p["blueprint"]["strategy"]["family"], p["blueprint"]["strategy"]["params"]) for p in output["proposals"]]
    assert strategies == [
        ("sma_crossover", {"fast": 12, "slow": 40}),   # slower first: the evidence is promising
        ("sma_crossover", {"fast": 10, "slow": 50}),
        ("sma_crossover", {"fast": 8, "slow": 40}),
        ("sma_crossover", {"fast": 10, "slow": 30}),
        ("ts_momentum", {"lookback": 40}),
        ("xs_momentum", {"lookback": 40, "top_k": 1}),
    ]
    assert output["considered"] == 6 and output["already_tried"] == 0


def test_candidates_outside_the_compilers_limits_are_not_proposed():
    # given a parent at the edges: fast 1 cannot step, slow 2 can only grow, entry 0 cannot fall below 0
    output = propose(a_blueprint("sma_crossover", fast=1, slow=2),
                     policy=with_k(20))
    for proposal in output["proposals"]:
        blueprint = proposal["blueprint"]
        assert validate("blueprint_v1", blueprint) == []
        assert param_errors(normalise_strategy(blueprint["strategy"]), blueprint["universe"]["symbols"]) == []
    assert [p["change"] for p in output["proposals"] if p["kind"] != "sibling"] == ["sma_crossover slow 2 -> 3"]

    rsi = propose(a_blueprint("rsi_mean_reversion", {"period": 14, "entry": 2, "exit": 6}),
                  policy=with_k(20))
    levels = [p["blueprint"]["strategy"]["params"] for p in rsi["proposals"] if p["kind"] != "sibling"]
    assert {"period": 14, "entry": 7.0, "exit": 6.0} not in levels  # entry < exit holds
    assert all(0 <= p.get("entry", 0) < p.get("exit", 100) for p in levels)


@pytest.mark.parametrize("changes, diagnosis, first_kind", [
    ({}, "promising", "slower"),
    ({"gates": [{**GOOD["gates"][0], "value": 3, "result": "FAIL"}]}, "few_trades", "faster"),
    ({"oos__sharpe": -0.2}, "no_edge", "sibling"),
    ({"oos__sharpe": None}, "no_edge", "sibling"),
    ({"stress__costs_x2__sharpe": -0.1}, "costly", "slower"),
    ({"positive_share": 0.25}, "unstable", "slower"),
])
def test_the_evidence_decides_which_kind_of_change_ranks_first(changes, diagnosis, first_kind):
    output = propose(a_blueprint("ts_momentum"), evidence(**changes))
    assert output["diagnosis"]["name"] == diagnosis
    assert output["proposals"][0]["kind"] == first_kind
    assert [p["rank"] for p in output["proposals"]] == [1, 2, 3]
    assert output["diagnosis"]["reason"] in output["proposals"][0]["rationale"]


def test_k_comes_from_the_policy_budget_and_is_three_without_one():
    parent = a_blueprint("rsi_mean_reversion")
    two = with_k(2)
    assert len(propose(parent, policy=two)["proposals"]) == 2
    assert propose(parent, policy=with_k(None))["k"] == 3
    assert len(propose(parent, policy=with_k(None))["proposals"]) == 3


def test_strategies_already_tried_are_not_proposed_again():
    parent = a_blueprint("ts_momentum", {"lookback": 60})
    first = propose(parent)["proposals"][0]
    tried = improvements._params_sha256(normalise_strategy(first["blueprint"]["strategy"]))
    again = propose(parent, tried=[tried])
    assert first["proposal_id"] not in [p["proposal_id"] for p in again["proposals"]]
    assert again["already_tried"] == 1


def test_each_proposal_is_named_by_its_blueprints_content_id_and_validates():
    output = propose(a_blueprint("xs_momentum"))
    assert validate(improvements.CONTRACT, output) == []
    from contracts import content_id
    assert [p["proposal_id"] for p in output["proposals"]] == [content_id(p["blueprint"]) for p in output["proposals"]]
    assert len({p["proposal_id"] for p in output["proposals"]}) == 3


def test_a_warm_up_too_short_for_a_child_is_left_out():
    parent = a_blueprint("ts_momentum", {"lookback": 60}, evaluation={"protocol": "walk_forward", "warmup_bars": 61})
    output = propose(parent)
    slower = next(p for p in output["proposals"] if p["change"] == "ts_momentum lookback 60 -> 75")
    assert "warmup_bars" not in slower["blueprint"]["evaluation"]


@pytest.mark.parametrize("family", ["sma_crossover", "ts_momentum", "rsi_mean_reversion", "xs_momentum", "buy_and_hold"])
def test_every_proposal_compiles_on_the_parents_snapshot(db, family):
    a_snapshot(TINY_SNAPSHOT)
    parent = a_blueprint(family, {"lookback": 60, "top_k": 1} if family == "xs_momentum" else None)
    gated = a_gated_run(parent, snapshot_id=TINY_SNAPSHOT)
    inputs = improvements_input(run_id=gated.run_id, blueprint=parent, gate_results=gated.gate_results,
                                policy_bundle_id="default_v2")
    output = run_agent("improvements", inputs)
    assert len(output["proposals"]) == (2 if family == "buy_and_hold" else 3)  # it has no parameter to move
    for proposal in output["proposals"]:
        compile_blueprint(blueprint=proposal["blueprint"], snapshot_id=TINY_SNAPSHOT, policy_bundle_id="default_v2")


def test_proposals_do_not_depend_on_the_holdout(db):
    # given the same blueprint run on two snapshots equal in every bar but those of the holdout
    a_snapshot("holdout_a")
    parent = a_blueprint("sma_crossover", fast=5, slow=20)
    first = a_gated_run(parent, snapshot_id="holdout_a")
    holdout = next(s for s in first.runspec["segments"]["list"] if s["role"] == "holdout")
    a_snapshot_with_other_holdout("holdout_b", like="holdout_a", holdout_from=holdout["start"])
    second = a_gated_run(parent, snapshot_id="holdout_b")

    # the holdout differs: its metrics, and so the holdout gate's value
    def holdout_gate(run):
        return next(g for g in run.gate_results["gates"] if g["metric"] == "holdout.sharpe")["value"]
    assert holdout_gate(first) != holdout_gate(second)
    assert first.run_id != second.run_id

    # when improvements are proposed for each
    inputs = [improvements_input(run_id=run.run_id, blueprint=parent, gate_results=run.gate_results,
                                 policy_bundle_id="default_v2") for run in (first, second)]
    outputs = [run_agent("improvements", doc) for doc in inputs]

    # then the inputs and the proposals are the same bytes, and no holdout figure entered
    assert canonical_json(inputs[0]) == canonical_json(inputs[1])
    assert canonical_json(outputs[0]) == canonical_json(outputs[1])
    assert len(outputs[0]["proposals"]) == 3
    found = inputs[0]["evidence"]
    assert {row["role"] for row in found["test_segments"]} == {"test"}
    assert [g["gate_id"] for g in found["gates"] if g["metric"].startswith("holdout.")] == []
    assert "verdict" not in canonical_json(inputs[0]).decode()


def test_rewritten_holdout_files_and_gate_change_nothing(db, artifact_root):
    # given a gated run, and its improvements input
    a_snapshot(TINY_SNAPSHOT)
    parent = a_blueprint("ts_momentum", {"lookback": 60})
    run = a_gated_run(parent, snapshot_id=TINY_SNAPSHOT)
    before = improvements_input(run_id=run.run_id, blueprint=parent, gate_results=run.gate_results,
                                policy_bundle_id="default_v2")

    # when every holdout figure is rewritten: its metrics file, its row of the summary, its gate and the verdict
    folder = artifact_root / "dossiers" / run.run_id
    metrics = json.loads((folder / "segments/holdout/metrics.json").read_text())
    metrics["metrics"] = {key: -9.5 if isinstance(value, float) else value for key, value in metrics["metrics"].items()}
    (folder / "segments/holdout/metrics.json").write_text(json.dumps(metrics))
    summary = json.loads((folder / "segments_summary.json").read_text())
    for row in summary["segments"]:
        if row["role"] == "holdout":
            row.update(sharpe=-9.5, total_return=-0.9)
    (folder / "segments_summary.json").write_text(json.dumps(summary))
    gates = copy.deepcopy(run.gate_results)
    for gate in gates["gates"]:
        if gate["metric"].startswith("holdout."):
            gate.update(value=-9.5, result="FAIL")
    gates["verdict"] = "FAIL" if gates["verdict"] == "PASS" else "PASS"
    after = improvements_input(run_id=run.run_id, blueprint=parent, gate_results=gates, policy_bundle_id="default_v2")

    # then the input, and so the proposals, are the same bytes
    assert canonical_json(after) == canonical_json(before)
    assert canonical_json(run_agent("improvements", after)) == canonical_json(run_agent("improvements", before))
