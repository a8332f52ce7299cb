"""The compiler: blueprint + snapshot + policy bundle -> a valid, normalised RunSpec, or errors with pointers."""
import copy
from datetime import date, timedelta

import pytest

from contracts import content_id, validate
from research import KERNEL_VERSION
from research.compiler import compile_blueprint
from research.errors import CompileError, PolicyError, SnapshotNotFound
from research.models import DataSnapshot
from research.policies import load_policy_bundle
from research.segments import add_months

from ..builders import FAMILIES, RESEARCH, a_blueprint, stored_files

pytestmark = pytest.mark.django_db


def compile_(blueprint, snapshot_id="small_snap", policy_bundle_id="default_v1"):
    return compile_blueprint(blueprint=blueprint, snapshot_id=snapshot_id, policy_bundle_id=policy_bundle_id)


def test_a_blueprint_compiles_to_a_valid_runspec(small_snapshot):
    runspec, run_id = compile_(a_blueprint("sma_crossover", {"fast": 10, "slow": 50}, base=RESEARCH))

    assert validate("runspec_v1", runspec) == []
    assert run_id == content_id(runspec) and len(run_id) == 12
    assert runspec["kernel_version"] == KERNEL_VERSION
    assert runspec["strategy"] == {"family": "sma_crossover", "params": {"fast": 10, "slow": 50},
                                   "direction": "long_only", "rebalance": "never"}
    assert runspec["data"] == {
        "snapshot_id": "small_snap", "snapshot_sha256": small_snapshot.sha256, "frequency": "1d",
        "period": {"start": "2016-01-01", "end": "2019-12-31", "bars": 1043},
    }
    assert runspec["policy"] == {"policy_bundle_id": "default_v1",
                                 "policy_bundle_sha256": load_policy_bundle("default_v1")[1]}
    assert runspec["costs"] == {"fee_bps": 5.0, "slippage_bps": 5.0}  # the bundle's defaults
    assert runspec["execution"] == {"signal": "close_t", "position": "from_bar_t_plus_1", "periods_per_year": 252,
                                    "weighting": "equal_weight", "evaluation": "continuous"}
    assert runspec["portfolio"] == {"max_gross_leverage": 2.0, "cash_rate": 0.0, "end_of_evaluation": "liquidate"}
    assert runspec["benchmark"] == {"kind": "universe_buy_and_hold", "symbol": None}
    assert runspec["warmup"] == {"bars": 50, "required_bars": 50}  # the slow SMA's length
    assert runspec["stress"] == {"costs_x2": {"cost_multiplier": 2.0}}


def test_segments_walk_forward_after_the_warmup_and_end_with_the_holdout(small_snapshot):
    evaluation = {"protocol": "walk_forward", "test_months": 6, "holdout_months": 12}
    runspec, _ = compile_(a_blueprint(evaluation=evaluation, base=RESEARCH))

    segments = runspec["segments"]["list"]
    ids = [s["segment_id"] for s in segments]
    assert ids == ["seg_001", "seg_002", "seg_003", "seg_004", "seg_005", "holdout"]
    assert [s["role"] for s in segments] == ["test"] * 5 + ["holdout"]
    holdout = segments[-1]
    assert holdout == {"segment_id": "holdout", "role": "holdout", "start": "2019-01-01", "end": "2019-12-31",
                       "bars": 261}
    # Laid backwards from the holdout: window i starts on the first bar on or after holdout - (K - i) * 6 months
    # (weekends shift a start by a day or two).
    anchor, tests = date.fromisoformat(holdout["start"]), segments[:-1]
    for i, segment in enumerate(tests):
        boundary = add_months(anchor, -(len(tests) - i) * 6)
        assert timedelta(0) <= date.fromisoformat(segment["start"]) - boundary < timedelta(days=3)
    for previous, following in zip(segments, segments[1:]):
        assert previous["end"] < following["start"]
    # Bars before the first test window: at least the warm-up.
    assert date.fromisoformat(segments[0]["start"]) >= date(2016, 1, 1)
    assert sum(s["bars"] for s in segments) + 50 <= 1043


def test_defaults_and_overrides(small_snapshot):
    runspec, _ = compile_(a_blueprint("ts_momentum", {"lookback": 60}, base=RESEARCH,
                                      costs={"fee_bps": 1, "slippage_bps": 2.5},
                                      evaluation={"protocol": "walk_forward", "warmup_bars": 100}))

    assert runspec["strategy"]["params"] == {"lookback": 60, "vol_target": None}
    assert runspec["costs"] == {"fee_bps": 1.0, "slippage_bps": 2.5}
    assert runspec["evaluation"] == {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12}
    assert runspec["warmup"] == {"bars": 100, "required_bars": 61}


def test_cosmetic_differences_compile_to_the_same_run(small_snapshot):
    blueprint = a_blueprint("rsi_mean_reversion", {"period": 14, "entry": 30, "exit": 55}, base=RESEARCH)
    variant = copy.deepcopy(blueprint)
    variant["name"] = "another name"
    variant["description"] = "same strategy"
    variant["extensions"] = {"note": "metadata only"}
    variant["universe"]["symbols"].reverse()
    variant["strategy"]["params"] = {"period": 14, "entry": 30.0, "exit": 55.0, "trend_filter": None}

    assert compile_(blueprint) == compile_(variant)
    assert compile_(blueprint)[0]["universe"]["symbols"] == ["AAA", "BBB", "CCC", "DDD", "EEE"]


def test_the_blueprint_is_validated_against_its_contract_first(small_snapshot):
    blueprint = a_blueprint("sma_crossover", {"fast": "10", "slow": 50}, base=RESEARCH)
    del blueprint["evaluation"]

    with pytest.raises(CompileError) as caught:
        compile_(blueprint)

    paths = [e["path"] for e in caught.value.errors]
    assert paths == ["/evaluation", "/strategy/params/fast"]
    assert "'10' is not of type 'integer'" in caught.value.errors[1]["message"]


RULES = {
    "sma fast not below slow": (
        a_blueprint("sma_crossover", {"fast": 50, "slow": 20}, base=RESEARCH),
        "/strategy/params/fast", "fast (50) must be less than slow (20)"),
    "sma slow lookback below 2": (
        a_blueprint("sma_crossover", {"fast": 1, "slow": 1}, base=RESEARCH),
        "/strategy/params/slow", "slow must be at least 2, got 1"),
    "ts lookback below 2": (
        a_blueprint("ts_momentum", {"lookback": 1}, base=RESEARCH),
        "/strategy/params/lookback", "lookback must be at least 2, got 1"),
    "xs lookback below 2": (
        a_blueprint("xs_momentum", {"lookback": 1, "top_k": 2}, base=RESEARCH),
        "/strategy/params/lookback", "lookback must be at least 2, got 1"),
    "rsi period below 2": (
        a_blueprint("rsi_mean_reversion", {"period": 1, "entry": 30, "exit": 70}, base=RESEARCH),
        "/strategy/params/period", "period must be at least 2, got 1"),
    "rsi entry not below exit": (
        a_blueprint("rsi_mean_reversion", {"period": 14, "entry": 60, "exit": 40}, base=RESEARCH),
        "/strategy/params/entry", "entry (60) must be less than exit (40)"),
    "top_k above the universe": (
        a_blueprint("xs_momentum", {"lookback": 20, "top_k": 3}, symbols=["AAA", "BBB"], base=RESEARCH),
        "/strategy/params/top_k", "top_k (3) must not exceed the number of symbols in the universe (2)"),
    "symbol not in the snapshot": (
        a_blueprint(symbols=["AAA", "ZZZ"], base=RESEARCH),
        "/universe/symbols/1", "symbol 'ZZZ' is not in snapshot 'small_snap'"),
    "period starts before the snapshot": (
        a_blueprint(period={"start": "2010-01-01"}, base=RESEARCH),
        "/period/start", "start 2010-01-01 is before the snapshot's first date 2016-01-01"),
    "period starts after the snapshot": (
        a_blueprint(period={"start": "2021-01-01"}, base=RESEARCH),
        "/period/start", "start 2021-01-01 is after the snapshot's last date 2019-12-31"),
    "period ends after the snapshot": (
        a_blueprint(period={"end": "2030-06-30"}, base=RESEARCH),
        "/period/end", "end 2030-06-30 is after the snapshot's last date 2019-12-31"),
    "period ends before the snapshot": (
        a_blueprint(period={"end": "2015-06-30"}, base=RESEARCH),
        "/period/end", "end 2015-06-30 is before the snapshot's first date 2016-01-01"),
    "period end before start": (
        a_blueprint(period={"start": "2018-01-01", "end": "2017-01-01"}, base=RESEARCH),
        "/period/end", "end 2017-01-01 must be after start 2018-01-01"),
    "too few bars for warm-up, a test segment and the holdout": (
        a_blueprint(period={"start": "2019-01-01", "end": "2019-12-31"}, base=RESEARCH),
        "/evaluation", "not enough bars: 261 bars from 2019-01-01 to 2019-12-31 cannot hold 50 warm-up bars, "
                       "one test segment of 6 months and a holdout of 6 months"),
    "period without bars": (
        a_blueprint(period={"start": "2019-01-05", "end": "2019-01-06"}, base=RESEARCH),  # a weekend
        "/period", "the period holds 0 bar(s) of the snapshot"),
    "warm-up shorter than the family needs": (
        a_blueprint(evaluation={"protocol": "walk_forward", "warmup_bars": 10}, base=RESEARCH),
        "/evaluation/warmup_bars", "warmup_bars 10 is less than the 50 bars sma_crossover needs with these parameters"),
    "holdout shorter than the policy allows": (
        a_blueprint(evaluation={"protocol": "walk_forward", "holdout_months": 3}, base=RESEARCH),
        "/evaluation/holdout_months", "holdout_months 3 is below the policy's minimum of 6"),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_reports_its_pointer_and_creates_nothing(rule, small_snapshot, artifact_root):
    blueprint, path, message = RULES[rule]
    before = stored_files(artifact_root)

    with pytest.raises(CompileError) as caught:
        compile_(blueprint)

    assert {"path": path, "message": message} in caught.value.errors
    assert f"{path}: {message}" in str(caught.value)
    assert stored_files(artifact_root) == before == ["snapshots/small_snap/ohlcv.csv"]
    assert DataSnapshot.objects.count() == 1


def test_all_rule_errors_are_reported_together(small_snapshot):
    with pytest.raises(CompileError) as caught:
        compile_(a_blueprint("xs_momentum", {"lookback": 1, "top_k": 9}, symbols=["AAA", "QQQ"], base=RESEARCH))

    assert [e["path"] for e in caught.value.errors] == [
        "/strategy/params/lookback", "/strategy/params/top_k", "/universe/symbols/1"]


def test_unknown_snapshot_and_bundle(small_snapshot):
    with pytest.raises(SnapshotNotFound):
        compile_(a_blueprint(base=RESEARCH), snapshot_id="missing")
    with pytest.raises(PolicyError, match="unknown policy bundle 'missing'"):
        compile_(a_blueprint(base=RESEARCH), policy_bundle_id="missing")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_compiles(family, small_snapshot):
    runspec, _ = compile_(a_blueprint(family, base=RESEARCH))

    assert validate("runspec_v1", runspec) == []
    assert runspec["segments"]["list"][-1]["segment_id"] == "holdout"


def test_direction_rebalance_portfolio_and_benchmark_compile_into_the_runspec(small_snapshot):
    blueprint = a_blueprint("xs_momentum", {"lookback": 20, "top_k": 2}, base=RESEARCH,
                            portfolio={"max_gross_leverage": 1.5, "cash_rate": 0.02}, benchmark={"symbol": "AAA"})
    blueprint["strategy"].update(direction="long_short", rebalance="weekly")

    runspec, _ = compile_(blueprint)

    assert runspec["strategy"]["direction"] == "long_short" and runspec["strategy"]["rebalance"] == "weekly"
    assert runspec["portfolio"] == {"max_gross_leverage": 1.5, "cash_rate": 0.02, "end_of_evaluation": "liquidate"}
    assert runspec["benchmark"] == {"kind": "symbol", "symbol": "AAA"}


@pytest.mark.parametrize("family, params, default", [
    ("buy_and_hold", {}, "never"), ("sma_crossover", {"fast": 5, "slow": 20}, "never"),
    ("ts_momentum", {"lookback": 20}, "never"), ("xs_momentum", {"lookback": 20, "top_k": 2}, "monthly"),
    ("rsi_mean_reversion", {"period": 14, "entry": 30, "exit": 60}, "never"),
])
def test_each_family_has_its_documented_rebalance_default(small_snapshot, family, params, default):
    runspec, _ = compile_(a_blueprint(family, params, base=RESEARCH))
    assert runspec["strategy"]["rebalance"] == default


def test_long_short_rules_are_checked(small_snapshot, artifact_root):
    hold = a_blueprint("buy_and_hold", {}, base=RESEARCH, benchmark={"symbol": "NOPE"})
    hold["strategy"]["direction"] = "long_short"
    xs = a_blueprint("xs_momentum", {"lookback": 20, "top_k": 3}, base=RESEARCH)
    xs["strategy"]["direction"] = "long_short"

    with pytest.raises(CompileError) as held:
        compile_(hold)
    with pytest.raises(CompileError) as ranked:
        compile_(xs)

    assert [e["path"] for e in held.value.errors] == ["/benchmark/symbol", "/strategy/direction"]
    assert [e["path"] for e in ranked.value.errors] == ["/strategy/params/top_k"]
    assert "2 x top_k (6" in ranked.value.errors[0]["message"]
    assert not (artifact_root / "jobs").exists() and not (artifact_root / "dossiers").exists()
