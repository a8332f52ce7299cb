"""intent: an idea in words -> one blueprint proposal, resolved against the snapshot and the policy bundle.

The rules are those of prompts/intent/v1.md; this module is their rule-based implementation.
"""
import re

from ..compiler import KERNEL_DEFAULTS, normalise_strategy
from ..strategies import LONG_SHORT_FAMILIES, warmup_bars
from .base import InvalidInput, Prompt

AGENT_ID = "intent"
VERSION = "1"
CONTRACT = "agent_intent_output_v1"

# Words of the title and hypothesis -> the family they point to. A family's place in the answer is where its
# first word appears in the text, so "cross-sectional momentum" is xs_momentum first, ts_momentum second.
FAMILY_WORDS = (
    ("xs_momentum", ("cross-section", "cross-sectional", "cross section", "cross sectional", "relative strength",
                     "winners", "losers", "ranking", "rank")),
    ("rsi_mean_reversion", ("mean reversion", "mean-reversion", "mean reverting", "mean-reverting", "reversal",
                            "reversals", "revert", "reverts", "oversold", "overbought", "rsi")),
    ("sma_crossover", ("trend", "trends", "trend-following", "trend following", "moving average",
                       "moving averages", "crossover", "sma")),
    ("ts_momentum", ("momentum", "time-series momentum", "time series momentum", "persistence")),
    ("buy_and_hold", ("buy and hold", "buy-and-hold", "passive", "hold the market")),
)
FALLBACK_FAMILY = "buy_and_hold"  # words that name no family: the honest baseline, not a guess
LONG_SHORT_WORDS = ("long-short", "long/short", "long short", "market neutral", "market-neutral", "short")
NUMBER_WORDS = {w: i for i, w in enumerate(
    "one two three four five six seven eight nine ten eleven twelve".split(), start=1)}
BARS_PER = {"day": 1, "week": 5, "month": 21, "year": 252}
HORIZON = re.compile(r"\b(\d{1,4}|" + "|".join(NUMBER_WORDS) + r")[- ](day|week|month|year)s?\b")
# Each family's parameters when the words give no horizon; a horizon sets the lookback window instead.
BASE_PARAMS = {
    "buy_and_hold": {},
    "sma_crossover": {"fast": 50, "slow": 200},
    "ts_momentum": {"lookback": 252},
    "rsi_mean_reversion": {"period": 14, "entry": 30.0, "exit": 50.0},
    "xs_momentum": {"lookback": 126, "top_k": 1},
}
MIN_WINDOW, MAX_WINDOW = 2, 1000  # horizons outside are clamped: the compiler's lower bound, the smaller schema max


def run(inputs: dict, *, prompt: Prompt) -> dict:
    idea, snapshot, policy = inputs["idea"], inputs["snapshot"], inputs["policy"]
    text = f"{idea['title']}\n{idea['hypothesis']}".lower()
    notes = []
    symbols = _universe(idea, snapshot, notes)
    families = _families(idea, text, len(symbols), notes)
    horizon = _horizon(text)
    direction = "long_short" if _any_word(text, LONG_SHORT_WORDS) else "long_only"
    family = families[0]["family"]
    if direction == "long_short" and family not in LONG_SHORT_FAMILIES:
        notes.append(f"{family} is long only: the words ask for long-short, the proposal is long only")
        direction = "long_only"
    strategy = {"family": family, "params": family_params(family, horizon, len(symbols), direction)}
    if direction == "long_short":
        strategy["direction"] = direction
    blueprint = {
        "schema_version": "blueprint_v1",
        "name": idea["title"],
        "description": idea["hypothesis"],
        "strategy": strategy,
        "universe": {"symbols": symbols},
        "period": _period(idea, snapshot, notes),
        "costs": _costs(idea, policy),
        "evaluation": _evaluation(idea, policy, normalise_strategy(strategy), notes),
    }
    return {
        "schema_version": CONTRACT,
        "agent_id": AGENT_ID,
        "prompt_version": prompt.version,
        "blueprint": blueprint,
        "families": families,
        "horizon_bars": horizon,
        "notes": notes,
    }


def embedded(output: dict) -> list:
    """The documents inside the output that have a contract of their own."""
    return [("/blueprint", "blueprint_v1", output["blueprint"])]


def family_params(family: str, horizon: int | None, n_symbols: int, direction: str) -> dict:
    """The family's base parameters with the lookback window set from `horizon` (in bars), if any."""
    params = dict(BASE_PARAMS[family])
    if horizon is not None:
        window = min(max(horizon, MIN_WINDOW), MAX_WINDOW)
        if family in ("ts_momentum", "xs_momentum"):
            params["lookback"] = window
        elif family == "sma_crossover":
            params.update(slow=window, fast=max(1, window // 4))
    if family == "xs_momentum":
        # A third of the universe on each side, at least one symbol; never more than the compiler allows.
        per_side = n_symbols // (2 if direction == "long_short" else 1)
        params["top_k"] = max(1, min(per_side, n_symbols // 3 or 1))
    return params


def _any_word(text: str, words) -> bool:
    return any(_position(text, word) is not None for word in words)


def _position(text: str, word: str) -> int | None:
    match = re.search(r"(?<![a-z0-9])" + re.escape(word) + r"(?![a-z0-9])", text)
    return match.start() if match else None


def _universe(idea: dict, snapshot: dict, notes: list) -> list:
    known = snapshot["symbols"]
    wanted = set(idea["universe"]["symbols"])
    missing = sorted(wanted - set(known))
    if missing:
        notes.append(f"not in snapshot {snapshot['snapshot_id']}, left out: {', '.join(missing)}")
    symbols = [s for s in known if s in wanted]  # the snapshot's column order, as the compiler sorts them
    if not symbols:
        raise InvalidInput(f"no symbol of the idea is in snapshot {snapshot['snapshot_id']}",
                           errors=[{"path": "/idea/universe/symbols", "message": "none of these is in the snapshot"}])
    return symbols


def _families(idea: dict, text: str, n_symbols: int, notes: list) -> list[dict]:
    """The families to consider, the proposal's first: the idea's preferred ones in its order, else those its
    words name in the order they appear; families the universe cannot hold are left out."""
    if idea.get("preferred_families"):
        found = [{"family": f, "reason": "preferred_families"} for f in idea["preferred_families"]]
    else:
        hits = []
        for order, (family, words) in enumerate(FAMILY_WORDS):
            matched = sorted((_position(text, w), w) for w in words if _position(text, w) is not None)
            if matched:
                hits.append((matched[0][0], order, family, matched[0][1]))
        found = [{"family": family, "reason": f"word {word!r}"} for _, _, family, word in sorted(hits)]
    usable = []
    for item in found:
        if item["family"] == "xs_momentum" and n_symbols < 2:
            notes.append("xs_momentum left out: it ranks symbols and the universe has one")
            continue
        usable.append(item)
    if not usable:
        notes.append(f"no family named or usable: {FALLBACK_FAMILY}, the baseline")
        usable = [{"family": FALLBACK_FAMILY, "reason": "fallback"}]
    return usable


def _horizon(text: str) -> int | None:
    match = HORIZON.search(text)
    if not match:
        return None
    count = match.group(1)
    count = int(count) if count.isdigit() else NUMBER_WORDS[count]
    return count * BARS_PER[match.group(2)]


def _period(idea: dict, snapshot: dict, notes: list) -> dict:
    """The idea's period inside the snapshot's dates (clamped), the whole snapshot where it says nothing."""
    given = idea.get("period", {})
    start = max(given.get("start", snapshot["start"]), snapshot["start"])
    end = min(given.get("end", snapshot["end"]), snapshot["end"])
    if given.get("start", start) != start or given.get("end", end) != end:
        notes.append(f"period clamped to the snapshot's dates: {start} .. {end}")
    if start >= end:
        raise InvalidInput(f"the idea's period does not overlap snapshot {snapshot['snapshot_id']}",
                           errors=[{"path": "/idea/period", "message": f"outside {snapshot['start']} .. {snapshot['end']}"}])
    return {"start": start, "end": end}


def _costs(idea: dict, policy: dict) -> dict:
    defaults = policy["defaults"]
    given = idea.get("costs", {})
    return {k: float(given.get(k, defaults[k])) for k in ("fee_bps", "slippage_bps")}


def _evaluation(idea: dict, policy: dict, strategy: dict, notes: list) -> dict:
    defaults = policy["defaults"]
    given = idea.get("evaluation", {})
    evaluation = {"protocol": "walk_forward",
                  **{k: given.get(k, defaults.get(k, KERNEL_DEFAULTS[k])) for k in ("test_months", "holdout_months")}}
    floor = policy["holdout_min_months"]
    if evaluation["holdout_months"] < floor:
        notes.append(f"holdout_months raised from {evaluation['holdout_months']} to the policy's minimum {floor}")
        evaluation["holdout_months"] = floor
    if "warmup_bars" in given:
        needed = warmup_bars(strategy["family"], strategy["params"])
        evaluation["warmup_bars"] = max(given["warmup_bars"], needed)
        if given["warmup_bars"] < needed:
            notes.append(f"warmup_bars raised from {given['warmup_bars']} to the {needed} bars the family needs")
    return evaluation

