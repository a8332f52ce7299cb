"""The documents a test submits or validates: blueprints, ideas and job specs, as plain dicts."""
import copy

TINY_SYMBOLS = ("AAA", "BBB")
SMALL_SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
FAMILIES = ("buy_and_hold", "sma_crossover", "ts_momentum", "rsi_mean_reversion", "xs_momentum")
FAMILY_PARAMS = {
    "sma_crossover": {"fast": 10, "slow": 50},
    "buy_and_hold": {},
    "ts_momentum": {"lookback": 60},
    "rsi_mean_reversion": {"period": 14, "entry": 30, "exit": 55},
    "xs_momentum": {"lookback": 60, "top_k": 2},
}

# What surrounds the strategy depends on what the blueprint is for: each kind is data, one builder makes them all.
# Submitted and run through the pipeline on the tiny snapshot: yearly windows, its own costs.
PIPELINE = {
    "name": "test blueprint",
    "universe": {"symbols": list(TINY_SYMBOLS)},
    "costs": {"fee_bps": 5, "slippage_bps": 5},
    "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
}
# Compiled on the research tests' small snapshot: five symbols, half-year windows, the policy bundle's costs.
RESEARCH = {
    "name": "test blueprint",
    "universe": {"symbols": list(SMALL_SYMBOLS)},
    "evaluation": {"protocol": "walk_forward", "test_months": 6, "holdout_months": 6},
}
# Only the members the contract requires.
BARE = {"universe": {"symbols": ["SPY"]}, "evaluation": {"protocol": "walk_forward"}}


def a_blueprint(family: str = "sma_crossover", params: dict | None = None, *, fast: int | None = None,
                slow: int | None = None, symbols=None, base: dict = PIPELINE, **members) -> dict:
    """A valid blueprint: the family's usual params unless `params` (or an SMA's `fast`/`slow`) say otherwise,
    around them the members of `base`. `members` (name, costs, evaluation, period, ...) replace or add
    top-level members; one given as None is left out."""
    params = dict(FAMILY_PARAMS[family] if params is None else params)
    params.update({key: value for key, value in (("fast", fast), ("slow", slow)) if value is not None})
    around = copy.deepcopy(base)
    blueprint = {"schema_version": "blueprint_v1"}
    if "name" in around:
        blueprint["name"] = around.pop("name")
    blueprint["strategy"] = {"family": family, "params": params}
    blueprint.update(around)
    if symbols is not None:
        blueprint["universe"] = {"symbols": list(symbols)}
    blueprint.update(copy.deepcopy(members))  # every call a fresh document, whatever a test then changes
    return {key: value for key, value in blueprint.items() if value is not None}


def an_idea(title: str = "Momentum in large caps", *, symbols=("SPY", "QQQ")) -> dict:
    return {
        "schema_version": "idea_spec_v1",
        "title": title,
        "hypothesis": "Twelve-month winners keep winning for a month.",
        "universe": {"symbols": list(symbols)},
    }


def a_job_spec(blueprint: dict | None = None, *, snapshot_id: str = "demo_snapshot", **members) -> dict:
    """A job spec for `blueprint` (by default a bare one) under the default policy bundle; `members` replace or
    add top-level members."""
    return {
        "schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": snapshot_id,
        "policy_bundle_id": "default_v1", "blueprint": a_blueprint(base=BARE) if blueprint is None else blueprint,
        **members,
    }
