"""improvements: a run's test-segment evidence and the trials already tried -> k child blueprint proposals,
ranked, each with its content id and its rationale: neighbours in parameter space and sibling families.

Its input never holds anything of the holdout (see `inputs.improvements_input`); the rules are those of
prompts/improvements/v1.md.
"""
from contracts import content_id, validate

from ..compiler import LOOKBACKS, normalise_strategy, param_errors, params_sha256
from ..strategies import LONG_SHORT_FAMILIES, warmup_bars
from .base import Prompt
from .intent import family_params

AGENT_ID = "improvements"
VERSION = "1"
CONTRACT = "agent_improvements_output_v1"
DEFAULT_K = 3  # when the bundle's budget names no max_children_per_job

WINDOWS = ("fast", "slow", "lookback", "period", "trend_filter")  # more bars: slower, fewer trades
WINDOW_STEPS = (0.75, 1.25)
LEVEL_STEP = 5.0  # RSI entry and exit move by 5 points
SIBLINGS = {
    "buy_and_hold": ("ts_momentum", "sma_crossover"),
    "sma_crossover": ("ts_momentum", "xs_momentum"),
    "ts_momentum": ("sma_crossover", "xs_momentum"),
    "xs_momentum": ("ts_momentum", "sma_crossover"),
    "rsi_mean_reversion": ("sma_crossover", "ts_momentum"),
}
# What the test-segment evidence says, checked in this order, and the kinds of change it ranks first.
DIAGNOSES = (
    ("few_trades", ("faster", "other", "sibling", "slower")),
    ("no_edge", ("sibling", "slower", "faster", "other")),
    ("costly", ("slower", "other", "sibling", "faster")),
    ("unstable", ("slower", "sibling", "other", "faster")),
    ("promising", ("slower", "faster", "other", "sibling")),
)
WHY = {
    "few_trades": "too few out-of-sample trades to judge",
    "no_edge": "no out-of-sample edge",
    "costly": "the edge does not survive twice the costs",
    "unstable": "fewer than half of the test segments were positive",
    "promising": "the test-segment evidence holds up",
}
KIND_WORDS = {
    "faster": "a shorter horizon trades more often",
    "slower": "a longer horizon trades less and averages more noise away",
    "other": "a neighbouring setting of the same rule",
    "sibling": "a sibling family tests the same idea with another rule",
}


def run(inputs: dict, *, prompt: Prompt) -> dict:
    parent, evidence = inputs["blueprint"], inputs["evidence"]
    k = inputs["policy"].get("budget", {}).get("max_children_per_job", DEFAULT_K)
    facts = _facts(evidence)
    diagnosis, order = next((name, kinds) for name, kinds in DIAGNOSES if _holds(name, facts))
    parent_strategy = normalise_strategy(parent["strategy"])
    tried = set(inputs["tried_params_sha256"]) | {_params_sha256(parent_strategy)}
    candidates, seen, already_tried = [], set(), 0
    for kind, change, strategy in _neighbours(parent_strategy, parent) + _siblings(parent_strategy, parent):
        blueprint = _child(parent, strategy, change)
        key = _params_sha256(normalise_strategy(strategy))
        if blueprint is None or key in seen:
            continue
        seen.add(key)
        if key in tried:
            already_tried += 1
            continue
        candidates.append((order.index(kind), len(candidates), kind, change, blueprint))
    ranked = sorted(candidates)[:k]
    return {
        "schema_version": CONTRACT,
        "agent_id": AGENT_ID,
        "prompt_version": prompt.version,
        "k": k,
        "diagnosis": {"name": diagnosis, "reason": WHY[diagnosis], "evidence": facts},
        "considered": len(candidates) + already_tried,
        "already_tried": already_tried,
        "proposals": [
            {"proposal_id": content_id(blueprint), "rank": rank, "kind": kind, "change": change,
             "rationale": f"{WHY[diagnosis]} ({_figures(facts)}); {change}: {KIND_WORDS[kind]}",
             "blueprint": blueprint}
            for rank, (_, _, kind, change, blueprint) in enumerate(ranked, start=1)
        ],
    }


def embedded(output: dict) -> list:
    return [(f"/proposals/{i}/blueprint", "blueprint_v1", p["blueprint"]) for i, p in enumerate(output["proposals"])]


def _facts(evidence: dict) -> dict:
    """The few test-segment figures the rules read (stitched out-of-sample, twice the costs, segments)."""
    failed = sorted(g["gate_id"] for g in evidence["gates"] if g["result"] == "FAIL")
    return {
        "oos_sharpe": evidence["oos"].get("sharpe"),
        "oos_trades": evidence["oos"].get("trades"),
        "stress_sharpe": evidence["stress"].get("costs_x2", {}).get("sharpe"),
        "positive_share": evidence["positive_share"],
        "test_segments": len(evidence["test_segments"]),
        "failed_gates": failed,
        "min_trades_failed": any(g["result"] == "FAIL" and g["metric"] == "oos.trades" for g in evidence["gates"]),
    }


def _holds(diagnosis: str, facts: dict) -> bool:
    sharpe, stress, share = facts["oos_sharpe"], facts["stress_sharpe"], facts["positive_share"]
    if diagnosis == "few_trades":
        return facts["min_trades_failed"]
    if diagnosis == "no_edge":
        return sharpe is None or sharpe <= 0
    if diagnosis == "costly":
        return stress is None or stress <= 0
    if diagnosis == "unstable":
        return share is None or share < 0.5
    return True


def _figures(facts: dict) -> str:
    def show(value):
        return "undefined" if value is None else f"{value:.3g}"
    return (f"test segments: Sharpe {show(facts['oos_sharpe'])}, {facts['oos_trades']} trades, "
            f"{show(facts['positive_share'])} of {facts['test_segments']} positive, "
            f"Sharpe at twice the costs {show(facts['stress_sharpe'])}")


def _neighbours(strategy: dict, parent: dict) -> list:
    """One step down and one up in each parameter, the rest unchanged: (kind, change, blueprint strategy)."""
    family, params = strategy["family"], strategy["params"]
    out = []
    for name, value in params.items():
        if value is None:
            continue
        if name in WINDOWS:
            down, up = WINDOW_STEPS  # at least one bar away, so a short window moves too
            steps = [(min(value - 1, round(value * down)), "faster"), (max(value + 1, round(value * up)), "slower")]
        elif name in ("entry", "exit"):
            # A lower entry waits for deeper dips (slower); a higher exit holds longer (slower).
            steps = [(value - LEVEL_STEP, "slower" if name == "entry" else "faster"),
                     (value + LEVEL_STEP, "faster" if name == "entry" else "slower")]
        elif name == "top_k":
            steps = [(value - 1, "other"), (value + 1, "other")]
        else:  # vol_target
            steps = [(round(value * 0.5, 6), "other"), (round(value * 1.5, 6), "other")]
        for new, kind in steps:
            if new != value:
                out.append((kind, f"{family} {name} {_num(value)} -> {_num(new)}",
                            _blueprint_strategy(parent, {**_given(params), name: new})))
    return out


def _siblings(strategy: dict, parent: dict) -> list:
    """The family's siblings with the parent's horizon (its lookback window) and direction where they can."""
    family, params = strategy["family"], strategy["params"]
    # An RSI period is no horizon of the idea, and buy and hold has none.
    horizon = None if family in ("rsi_mean_reversion", "buy_and_hold") else params[LOOKBACKS[family]]
    symbols = parent["universe"]["symbols"]
    out = []
    for sibling in SIBLINGS[family]:
        if sibling == "xs_momentum" and len(symbols) < 2:
            continue
        direction = strategy["direction"] if sibling in LONG_SHORT_FAMILIES else "long_only"
        new = {"family": sibling, "params": family_params(sibling, horizon, len(symbols), direction)}
        if direction == "long_short":
            new["direction"] = direction
        out.append(("sibling", f"{family} -> {sibling} {_describe(new['params'])}".rstrip(), new))
    return out


def _blueprint_strategy(parent: dict, params: dict) -> dict:
    """The parent's strategy with other parameters; its direction and rebalance rule kept as written."""
    return {**parent["strategy"], "params": params}


def _given(params: dict) -> dict:
    return {name: value for name, value in params.items() if value is not None}


def _child(parent: dict, strategy: dict, change: str) -> dict | None:
    """The parent blueprint with `strategy`, if it is one the compiler accepts (schema limits and parameter
    rules); a warm-up written in the parent that is too short for the child is left to the compiler's default."""
    child = {key: value for key, value in parent.items() if key not in ("extensions", "strategy")}
    child["strategy"] = strategy
    child["name"] = f"{parent.get('name', 'blueprint')} / {change}"[:200]
    if validate("blueprint_v1", child):
        return None
    normalised = normalise_strategy(strategy)
    if param_errors(normalised, child["universe"]["symbols"]):
        return None
    evaluation = child["evaluation"]
    if evaluation.get("warmup_bars", 0) < warmup_bars(normalised["family"], normalised["params"]):
        child["evaluation"] = {k: v for k, v in evaluation.items() if k != "warmup_bars"}
    return child


def _params_sha256(strategy: dict) -> str:
    """The registry's params_sha256 of a normalised strategy (the compiler's hash of a runspec's strategy)."""
    return params_sha256({"strategy": strategy})


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(params: dict) -> str:
    return "(" + ", ".join(f"{k} {_num(v)}" for k, v in params.items()) + ")" if params else ""

