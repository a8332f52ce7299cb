"""The intent agent: which families the words pick, and a proposal resolved against snapshot and policy."""
import pytest

from contracts import canonical_json, validate
from research.agents import InvalidInput, intent, run_agent
from research.agents.inputs import intent_input
from research.compiler import compile_blueprint

from .documents import POLICY, SNAPSHOT
from ...builders import TINY_SNAPSHOT, a_snapshot, an_idea



def idea(hypothesis: str, title: str = "An idea", symbols=("AAA", "BBB", "CCC"), **members) -> dict:
    return {**an_idea(title, symbols=symbols), "hypothesis": hypothesis, **members}


def propose(doc: dict, snapshot=SNAPSHOT, policy=POLICY) -> dict:
    return run_agent("intent", {"idea": doc, "snapshot": snapshot, "policy": policy})


@pytest.mark.parametrize("hypothesis, families", [
    ("Cross-sectional momentum: last year's winners beat its losers.", ["xs_momentum", "ts_momentum"]),
    ("Prices trend; a moving average crossover follows them.", ["sma_crossover"]),
    ("Short-term reversal: oversold stocks revert to the mean.", ["rsi_mean_reversion"]),
    ("Mean reversion after momentum crashes.", ["rsi_mean_reversion", "ts_momentum"]),
    ("Time-series momentum in each asset.", ["ts_momentum"]),
    ("A passive portfolio is hard to beat.", ["buy_and_hold"]),
    ("Nothing in these words names a family.", ["buy_and_hold"]),
])
def test_the_words_of_the_hypothesis_pick_the_families_in_the_order_they_appear(hypothesis, families):
    # given an idea without preferred families, when intent reads it
    output = propose(idea(hypothesis))

    # then the families are those its words name, the first one proposed
    assert [f["family"] for f in output["families"]] == families
    assert output["blueprint"]["strategy"]["family"] == families[0]


def test_preferred_families_win_over_the_words():
    output = propose(idea("Cross-sectional momentum.", preferred_families=["rsi_mean_reversion", "sma_crossover"]))
    assert [f["family"] for f in output["families"]] == ["rsi_mean_reversion", "sma_crossover"]
    assert {f["reason"] for f in output["families"]} == {"preferred_families"}
    assert output["blueprint"]["strategy"] == {"family": "rsi_mean_reversion",
                                               "params": {"period": 14, "entry": 30.0, "exit": 50.0}}


def test_a_word_inside_another_word_does_not_count():
    # "trendy" is not "trend", "ranked" is not "rank"
    assert propose(idea("Trendy stocks ranked by colour."))["families"] == [{"family": "buy_and_hold", "reason": "fallback"}]


def test_a_horizon_in_words_sets_the_lookback_window():
    assert propose(idea("Twelve-month momentum persists."))["blueprint"]["strategy"]["params"] == {"lookback": 252}
    output = propose(idea("A 3 month trend."))
    assert output["horizon_bars"] == 63
    assert output["blueprint"]["strategy"]["params"] == {"fast": 15, "slow": 63}
    assert propose(idea("A 40-year trend."))["blueprint"]["strategy"]["params"] == {"fast": 250, "slow": 1000}


def test_cross_sectional_momentum_holds_a_third_of_the_universe_and_long_short_when_asked():
    six = {**SNAPSHOT, "symbols": ["A1", "A2", "A3", "A4", "A5", "A6"]}
    output = propose(idea("Long-short cross-sectional momentum over six months.", symbols=six["symbols"]), snapshot=six)
    assert output["blueprint"]["strategy"] == {"family": "xs_momentum", "params": {"lookback": 126, "top_k": 2},
                                               "direction": "long_short"}


def test_a_long_only_family_stays_long_only_with_a_note():
    output = propose(idea("Short nothing: buy-and-hold."))
    assert "direction" not in output["blueprint"]["strategy"]
    assert any("long only" in note for note in output["notes"])


def test_xs_momentum_is_left_out_for_a_single_symbol():
    output = propose(idea("Cross-sectional momentum.", symbols=["AAA"]))
    assert [f["family"] for f in output["families"]] == ["ts_momentum"]


def test_universe_period_costs_and_evaluation_are_resolved_against_snapshot_and_policy():
    # given an idea with a symbol the snapshot lacks, a period past its end, no costs and a short holdout
    doc = idea("Momentum.", symbols=["CCC", "ZZZ", "AAA"], period={"start": "2018-01-01", "end": "2021-06-30"},
               evaluation={"protocol": "walk_forward", "holdout_months": 3, "warmup_bars": 5})

    blueprint = propose(doc)["blueprint"]

    # then the universe is the known symbols in snapshot order, the period clamped, costs and months from policy
    assert blueprint["universe"] == {"symbols": ["AAA", "CCC"]}
    assert blueprint["period"] == {"start": "2019-01-01", "end": "2021-06-30"}
    assert blueprint["costs"] == {"fee_bps": 5.0, "slippage_bps": 5.0}
    assert blueprint["evaluation"] == {"protocol": "walk_forward", "test_months": 12, "holdout_months": 6,
                                       "warmup_bars": 253}
    notes = " | ".join(propose(doc)["notes"])
    assert "ZZZ" in notes and "clamped" in notes and "raised from 3" in notes and "raised from 5" in notes


def test_the_idea_costs_and_months_win_over_the_policy_defaults():
    doc = idea("Momentum.", costs={"fee_bps": 1, "slippage_bps": 2},
               evaluation={"protocol": "walk_forward", "test_months": 6, "holdout_months": 9})
    blueprint = propose(doc)["blueprint"]
    assert blueprint["costs"] == {"fee_bps": 1.0, "slippage_bps": 2.0}
    assert blueprint["evaluation"] == {"protocol": "walk_forward", "test_months": 6, "holdout_months": 9}
    assert blueprint["period"] == {"start": "2019-01-01", "end": "2022-12-30"}


def test_no_known_symbol_is_invalid_input():
    with pytest.raises(InvalidInput) as caught:
        propose(idea("Momentum.", symbols=["ZZZ"]))
    assert caught.value.code == "invalid_input"
    assert caught.value.errors[0]["path"] == "/idea/universe/symbols"


def test_the_output_is_the_same_bytes_whatever_the_order_of_the_input_members():
    doc = idea("Cross-sectional momentum over twelve months.")
    shuffled = dict(reversed(list(doc.items())))
    assert canonical_json(propose(doc)) == canonical_json(propose(shuffled))


@pytest.mark.parametrize("hypothesis, family", [
    ("Cross-sectional momentum: twelve-month winners keep winning.", "xs_momentum"),
    ("Trend following with a 6-month moving average.", "sma_crossover"),
    ("Short-term reversal of oversold names.", "rsi_mean_reversion"),
    ("Long-short time-series momentum, one year.", "ts_momentum"),
    ("Passive.", "buy_and_hold"),
])
def test_every_proposal_validates_and_compiles_on_a_real_snapshot(db, hypothesis, family):
    # given a real snapshot and the default policy bundle
    a_snapshot(TINY_SNAPSHOT)
    inputs = intent_input(idea=idea(hypothesis, symbols=["AAA", "BBB"]), snapshot_id=TINY_SNAPSHOT,
                          policy_bundle_id="default_v1")

    # when intent proposes a blueprint
    output = run_agent("intent", inputs)

    # then it validates against its contract, and the blueprint compiles
    assert validate(intent.CONTRACT, output) == []
    assert output["blueprint"]["strategy"]["family"] == family
    runspec, _ = compile_blueprint(blueprint=output["blueprint"], snapshot_id=TINY_SNAPSHOT,
                                   policy_bundle_id="default_v1")
    assert runspec["strategy"]["family"] == family
