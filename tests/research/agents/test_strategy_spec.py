"""The strategy_spec agent: every parameter and default written out, equal to what the compiler resolves."""
import pytest

from contracts import validate
from research.agents import run_agent, strategy_spec
from research.agents.inputs import strategy_spec_input
from research.compiler import PARAMS, compile_blueprint

from .documents import POLICY, SNAPSHOT
from ...builders import FAMILIES, TINY_SNAPSHOT, a_blueprint, a_snapshot



def spec(blueprint: dict) -> dict:
    return run_agent("strategy_spec", {"blueprint": blueprint, "snapshot": SNAPSHOT, "policy": POLICY})


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_of_the_family_is_listed_with_its_resolved_value(family):
    output = spec(a_blueprint(family))
    assert [p["name"] for p in output["parameters"]] == list(PARAMS[family])
    assert validate(strategy_spec.CONTRACT, output) == []
    assert output["signal"]["words"] and output["signal"]["symbols"]


def test_absent_optional_parameters_are_null_defaults_and_given_ones_come_from_the_blueprint():
    output = spec(a_blueprint("rsi_mean_reversion", {"period": 10, "entry": 25, "exit": 60}))
    assert output["parameters"] == [
        {"name": "period", "value": 10, "source": "blueprint", "meaning": "bars of Wilder's RSI"},
        {"name": "entry", "value": 25.0, "source": "blueprint", "meaning": "RSI level that opens the position"},
        {"name": "exit", "value": 60.0, "source": "blueprint", "meaning": "RSI level that closes it"},
        {"name": "trend_filter", "value": None, "source": "default",
         "meaning": "bars of the trend filter's SMA (null: no filter)"},
    ]
    assert output["direction"] == {"value": "long_only", "source": "default"}
    assert output["rebalance"] == {"value": "never", "source": "default", "family_default": "never"}


def test_costs_come_from_the_blueprint_else_the_policy_and_portfolio_from_the_kernel():
    output = spec(a_blueprint("ts_momentum", costs={"fee_bps": 1}))
    assert output["costs"] == {"fee_bps": {"value": 1.0, "source": "blueprint"},
                               "slippage_bps": {"value": 5.0, "source": "policy"}}
    assert output["risk"]["max_gross_leverage"] == {"value": 2.0, "source": "kernel"}
    assert output["risk"]["benchmark"] == {"kind": "universe_buy_and_hold", "symbol": None}
    assert output["data_window"]["start"] == "2019-01-01" and output["data_window"]["warmup_bars"] == 61


def test_a_broken_rule_is_listed_in_checks():
    output = spec(a_blueprint("sma_crossover", fast=50, slow=20,
                              evaluation={"protocol": "walk_forward", "warmup_bars": 3}))
    assert [c["path"] for c in output["checks"]] == ["/evaluation/warmup_bars", "/strategy/params/fast"]
    assert spec(a_blueprint("sma_crossover"))["checks"] == []


@pytest.mark.parametrize("family", FAMILIES)
def test_the_spec_says_what_the_compiler_resolves(db, family):
    # given a blueprint that leaves every default open, on a real snapshot
    a_snapshot(TINY_SNAPSHOT)
    blueprint = a_blueprint(family, {"lookback": 60, "top_k": 1} if family == "xs_momentum" else None,
                            costs=None, evaluation={"protocol": "walk_forward"})
    inputs = strategy_spec_input(blueprint=blueprint, snapshot_id=TINY_SNAPSHOT, policy_bundle_id="default_v2")

    # when the spec is written and the blueprint compiled
    output = run_agent("strategy_spec", inputs)
    runspec, _ = compile_blueprint(blueprint=blueprint, snapshot_id=TINY_SNAPSHOT, policy_bundle_id="default_v2")

    # then every figure of the spec is the runspec's
    assert {p["name"]: p["value"] for p in output["parameters"]} == runspec["strategy"]["params"]
    assert output["direction"]["value"] == runspec["strategy"]["direction"]
    assert output["rebalance"]["value"] == runspec["strategy"]["rebalance"]
    assert {k: v["value"] for k, v in output["costs"].items()} == runspec["costs"]
    assert output["risk"]["max_gross_leverage"]["value"] == runspec["portfolio"]["max_gross_leverage"]
    assert output["risk"]["cash_rate"]["value"] == runspec["portfolio"]["cash_rate"]
    assert output["risk"]["benchmark"] == runspec["benchmark"]
    assert output["risk"]["stress_cost_multiplier"] == runspec["stress"]["costs_x2"]["cost_multiplier"]
    assert {k: output["execution"][k] for k in runspec["execution"]} == runspec["execution"]
    window = output["data_window"]
    assert (window["start"], window["end"]) == (runspec["data"]["period"]["start"], runspec["data"]["period"]["end"])
    assert window["snapshot_sha256"] == runspec["data"]["snapshot_sha256"]
    assert (window["warmup_bars"], window["required_warmup_bars"]) == (runspec["warmup"]["bars"],
                                                                      runspec["warmup"]["required_bars"])
    assert (window["test_months"], window["holdout_months"]) == (runspec["evaluation"]["test_months"],
                                                                runspec["evaluation"]["holdout_months"])
    assert output["universe"] == runspec["universe"]["symbols"]
    assert output["policy"]["sha256"] == runspec["policy"]["policy_bundle_sha256"]
    assert output["checks"] == []
