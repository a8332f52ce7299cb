"""Blueprint + snapshot + policy bundle -> RunSpec: every choice a run depends on, resolved and written down.

`run_id = content_id(runspec)`: blueprints that differ only in name, description, extensions, symbol order
or number spelling (30 vs 30.0) compile to the same RunSpec and so share one run.
"""
import numpy as np

from contracts import canonical_json, content_id, sha256_hex, validate

from . import KERNEL_VERSION
from .errors import CompileError
from .policies import load_policy_bundle
from .backtest import DEFAULT_REBALANCE
from .segments import layout
from .strategies import LONG_SHORT_FAMILIES, PERIODS_PER_YEAR, warmup_bars
from .snapshots import load_panel

# Used when neither the blueprint nor the policy bundle's `defaults` say otherwise.
KERNEL_DEFAULTS = {"fee_bps": 0.0, "slippage_bps": 0.0, "test_months": 12, "holdout_months": 12}
# Gross exposure sum |w| allowed: a full signal is 1; vol targeting may lever up to MAX_VOL_SCALE = 2.
PORTFOLIO_DEFAULTS = {"max_gross_leverage": 2.0, "cash_rate": 0.0}
STRESS_COST_MULTIPLIER = 2.0
# Parameter types after normalisation; absent optional parameters become None.
PARAMS = {
    "buy_and_hold": {},
    "sma_crossover": {"fast": int, "slow": int},
    "ts_momentum": {"lookback": int, "vol_target": float},
    "rsi_mean_reversion": {"period": int, "entry": float, "exit": float, "trend_filter": int},
    "xs_momentum": {"lookback": int, "top_k": int},
}
# The parameter of each family that is a lookback window (at least 2 bars).
LOOKBACKS = {
    "sma_crossover": "slow",
    "ts_momentum": "lookback",
    "rsi_mean_reversion": "period",
    "xs_momentum": "lookback",
}
EXECUTION = {
    "signal": "close_t",
    "position": "from_bar_t_plus_1",
    "periods_per_year": PERIODS_PER_YEAR,
    "weighting": "equal_weight",
    "evaluation": "continuous",
}


def compile_blueprint(*, blueprint: dict, snapshot_id: str, policy_bundle_id: str) -> tuple[dict, str]:
    """The RunSpec document and its run_id; CompileError with JSON-pointer paths if the blueprint can't run."""
    errors = validate("blueprint_v1", blueprint)
    if errors:
        raise CompileError(errors=errors)
    bundle, bundle_sha256 = load_policy_bundle(policy_bundle_id)
    panel = load_panel(snapshot_id)
    defaults = bundle_defaults(bundle)
    strategy = normalise_strategy(blueprint["strategy"])
    evaluation = {**{k: defaults[k] for k in ("test_months", "holdout_months")}, **blueprint["evaluation"]}

    errors = param_errors(strategy, blueprint["universe"]["symbols"])
    errors += _universe_errors(blueprint["universe"]["symbols"], panel)
    errors += _period_errors(blueprint.get("period", {}), panel)
    errors += _benchmark_errors(blueprint.get("benchmark"), panel)
    warmup, warmup_errors = resolve_warmup(strategy, evaluation, defaults)
    errors += warmup_errors
    min_months = bundle["holdout"].get("min_months", 1)
    if evaluation["holdout_months"] < min_months:
        errors.append(_error(
            "/evaluation/holdout_months",
            f"holdout_months {evaluation['holdout_months']} is below the policy's minimum of {min_months}",
        ))
    if errors:
        raise CompileError(errors=sorted(errors, key=lambda e: (e["path"], e["message"])))

    dates = _period_dates(panel.dates, blueprint.get("period", {}))
    if len(dates) < 2:
        raise CompileError(errors=[_error("/period", f"the period holds {len(dates)} bar(s) of the snapshot")])
    segments = layout(dates, warmup_bars=warmup["bars"], test_months=evaluation["test_months"],
                      holdout_months=evaluation["holdout_months"])
    if not any(s.role == "test" for s in segments):
        raise CompileError(errors=[_error(
            "/evaluation",
            f"not enough bars: {len(dates)} bars from {_iso(dates[0])} to {_iso(dates[-1])} cannot hold "
            f"{warmup['bars']} warm-up bars, one test segment of {evaluation['test_months']} months and a "
            f"holdout of {evaluation['holdout_months']} months",
        )])
    costs = {k: float(blueprint.get("costs", {}).get(k, defaults[k])) for k in ("fee_bps", "slippage_bps")}
    portfolio = {k: float(blueprint.get("portfolio", {}).get(k, v)) for k, v in PORTFOLIO_DEFAULTS.items()}
    benchmark_symbol = blueprint.get("benchmark", {}).get("symbol")
    runspec = {
        "schema_version": "runspec_v1",
        "kernel_version": KERNEL_VERSION,
        "strategy": strategy,
        "universe": {"symbols": [s for s in panel.symbols if s in set(blueprint["universe"]["symbols"])]},
        "data": {
            "snapshot_id": snapshot_id,
            "snapshot_sha256": panel.sha256,
            "frequency": "1d",
            "period": {"start": _iso(dates[0]), "end": _iso(dates[-1]), "bars": len(dates)},
        },
        "costs": costs,
        "portfolio": {**portfolio, "end_of_evaluation": "liquidate"},
        "benchmark": {"kind": "symbol" if benchmark_symbol else "universe_buy_and_hold", "symbol": benchmark_symbol},
        "execution": EXECUTION,
        "evaluation": {
            "protocol": "walk_forward",
            "test_months": evaluation["test_months"],
            "holdout_months": evaluation["holdout_months"],
        },
        "warmup": warmup,
        "segments": {"list": [s.as_doc(dates) for s in segments]},
        "stress": {"costs_x2": {"cost_multiplier": STRESS_COST_MULTIPLIER}},
        "policy": {"policy_bundle_id": policy_bundle_id, "policy_bundle_sha256": bundle_sha256},
    }
    problems = validate("runspec_v1", runspec)
    if problems:  # a bug in this module, not in the blueprint
        raise ValueError(f"compiled runspec does not validate against runspec_v1: {problems}")
    return runspec, content_id(runspec)


def params_sha256(runspec: dict) -> str:
    """sha256 of the normalised family and parameters: the same strategy hashes the same everywhere."""
    return sha256_hex(canonical_json(runspec["strategy"]))


def _error(path: str, message: str) -> dict:
    return {"path": path, "message": message}


def _iso(value) -> str:
    return str(np.datetime_as_string(value, unit="D"))


def bundle_defaults(bundle: dict) -> dict:
    """Costs, test and holdout months (and a warm-up floor) of `bundle`'s `defaults` over KERNEL_DEFAULTS."""
    given = bundle.get("defaults", {})
    return {**KERNEL_DEFAULTS, **given.get("costs", {}), **given.get("evaluation", {})}


def normalise_strategy(strategy: dict) -> dict:
    """A blueprint's (schema-valid) strategy with typed parameters, absent optional ones None, and the
    direction and rebalance rule it runs with."""
    family = strategy["family"]
    params = {}
    for name, kind in PARAMS[family].items():
        value = strategy["params"].get(name)
        params[name] = None if value is None else kind(value)
    return {"family": family, "params": params, "direction": strategy.get("direction", "long_only"),
            "rebalance": strategy.get("rebalance", DEFAULT_REBALANCE[family])}


def param_errors(strategy: dict, universe: list) -> list[dict]:
    """The family's parameter rules a schema cannot say, for a normalised strategy on `universe`."""
    family, p = strategy["family"], strategy["params"]
    errors = []
    lookback = LOOKBACKS.get(family)
    if lookback and p[lookback] < 2:
        errors.append(_error(f"/strategy/params/{lookback}", f"{lookback} must be at least 2, got {p[lookback]}"))
    if family == "sma_crossover" and p["fast"] >= p["slow"]:
        errors.append(_error("/strategy/params/fast", f"fast ({p['fast']}) must be less than slow ({p['slow']})"))
    if family == "rsi_mean_reversion" and p["entry"] >= p["exit"]:
        errors.append(_error("/strategy/params/entry",
                             f"entry ({p['entry']:g}) must be less than exit ({p['exit']:g})"))
    long_short = strategy["direction"] == "long_short"
    if long_short and family not in LONG_SHORT_FAMILIES:
        errors.append(_error("/strategy/direction", f"{family} is long only"))
    if family == "xs_momentum" and p["top_k"] * (2 if long_short else 1) > len(universe):
        errors.append(_error(
            "/strategy/params/top_k",
            f"top_k ({p['top_k']}) must not exceed the number of symbols in the universe ({len(universe)})"
            if not long_short else
            f"2 x top_k ({2 * p['top_k']}: long top_k, short bottom_k) must not exceed the number of symbols in "
            f"the universe ({len(universe)})",
        ))
    return errors


def _benchmark_errors(benchmark: dict | None, panel) -> list[dict]:
    if benchmark is None or benchmark["symbol"] in panel.symbols:
        return []
    return [_error("/benchmark/symbol", f"symbol {benchmark['symbol']!r} is not in snapshot {panel.snapshot_id!r}")]


def _universe_errors(symbols: list, panel) -> list[dict]:
    known = set(panel.symbols)
    return [
        _error(f"/universe/symbols/{i}", f"symbol {symbol!r} is not in snapshot {panel.snapshot_id!r}")
        for i, symbol in enumerate(symbols)
        if symbol not in known
    ]


def _period_errors(period: dict, panel) -> list[dict]:
    first, last = _iso(panel.dates[0]), _iso(panel.dates[-1])
    errors = []
    for name in ("start", "end"):
        value = period.get(name)
        if value is None:
            continue
        if value < first:
            errors.append(_error(f"/period/{name}", f"{name} {value} is before the snapshot's first date {first}"))
        elif value > last:
            errors.append(_error(f"/period/{name}", f"{name} {value} is after the snapshot's last date {last}"))
    if period.get("start") and period.get("end") and period["start"] >= period["end"]:
        errors.append(_error("/period/end", f"end {period['end']} must be after start {period['start']}"))
    return errors


def _period_dates(dates, period: dict):
    lo = np.searchsorted(dates, np.datetime64(period.get("start", _iso(dates[0]))), side="left")
    hi = np.searchsorted(dates, np.datetime64(period.get("end", _iso(dates[-1]))), side="right")
    return dates[lo:hi]


def resolve_warmup(strategy: dict, evaluation: dict, defaults: dict) -> tuple[dict, list[dict]]:
    needed = warmup_bars(strategy["family"], strategy["params"])
    if "warmup_bars" not in evaluation:
        # A policy default can ask for more history than the family needs, never for less.
        return {"bars": max(needed, defaults.get("warmup_bars", 0)), "required_bars": needed}, []
    given = evaluation["warmup_bars"]
    if given < needed:
        return {"bars": needed, "required_bars": needed}, [_error(
            "/evaluation/warmup_bars",
            f"warmup_bars {given} is less than the {needed} bars {strategy['family']} needs with these parameters",
        )]
    return {"bars": given, "required_bars": needed}, []
