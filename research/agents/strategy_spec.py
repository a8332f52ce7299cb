"""strategy_spec: a blueprint -> the strategy written out in full: its signal in words and symbols, every
parameter with its default resolved, the execution conventions, the risk rules and the data window.

Every default is the compiler's own (research.compiler), never a copy: what this spec says is what will run.
The rules are those of prompts/strategy_spec/v1.md.
"""
from ..backtest import DEFAULT_REBALANCE
from ..compiler import (
    EXECUTION, PORTFOLIO_DEFAULTS, STRESS_COST_MULTIPLIER, normalise_strategy, param_errors, resolve_warmup,
)
from ..strategies import MAX_VOL_SCALE, VOL_WINDOW
from .base import Prompt

AGENT_ID = "strategy_spec"
VERSION = "1"
CONTRACT = "agent_strategy_spec_output_v1"

SIGNALS = {
    "buy_and_hold": {
        "words": "Hold every symbol of the universe at an equal weight from the first bar of the evaluation; "
                 "weights drift with prices and are never reset.",
        "symbols": ["w_i(t) = 1/N"],
    },
    "sma_crossover": {
        "words": "Long 1/N of a symbol while its fast simple moving average of closes is above its slow one; "
                 "long-short also shorts 1/N while it is below; flat while they are equal and until both exist.",
        "symbols": ["SMA_n(t) = (1/n) * sum_{j=0..n-1} P(t-j)",
                    "s(t) = sign(SMA_fast(t) - SMA_slow(t))",
                    "w_i(t) = 1/N if s > 0; -1/N if s < 0 and long_short; else 0"],
    },
    "ts_momentum": {
        "words": "Long 1/N of a symbol while its return over the lookback is positive; long-short also shorts "
                 "1/N while it is negative. With a volatility target the weight is scaled by the target over "
                 f"the realised volatility of the last {VOL_WINDOW} daily returns, at most {MAX_VOL_SCALE:g} times.",
        "symbols": ["r_L(t) = P(t) / P(t-L) - 1",
                    "w_i(t) = 1/N if r_L > 0; -1/N if r_L < 0 and long_short; else 0",
                    f"with vol_target: w_i(t) * min(vol_target / sigma_{VOL_WINDOW}(t), {MAX_VOL_SCALE:g}), "
                    f"sigma_{VOL_WINDOW} = std(daily returns, ddof 1) * sqrt(252)"],
    },
    "rsi_mean_reversion": {
        "words": "Enter long 1/N when Wilder's RSI falls below the entry level and stay long until it rises above "
                 "the exit level; long-short mirrors it (short above 100 - entry until below 100 - exit). With a "
                 "trend filter a long is held only while the close is above its SMA (a short only below).",
        "symbols": ["RSI_p(t) = 100 * G_p(t) / (G_p(t) + L_p(t)), G, L = Wilder averages of gains and losses",
                    "long from RSI < entry until RSI > exit",
                    "short (long_short) from RSI > 100 - entry until RSI < 100 - exit",
                    "trend_filter n: long only while P(t) > SMA_n(t), short only while P(t) < SMA_n(t)"],
    },
    "xs_momentum": {
        "words": "Rank the universe by return over the lookback; hold the top_k at 1/top_k each (long-short: "
                 "also short the bottom top_k, each side 1/(2 top_k)); flat while a return is missing or all are "
                 "equal; ties go to the symbol listed first.",
        "symbols": ["r_L,i(t) = P_i(t) / P_i(t-L) - 1",
                    "w_i(t) = 1/top_k if rank_i(t) <= top_k (long_only)",
                    "w_i(t) = +-1/(2 top_k) for the top and bottom top_k (long_short)"],
    },
}
PARAMETERS = {
    "fast": "bars of the fast moving average",
    "slow": "bars of the slow moving average",
    "lookback": "bars over which the return is measured",
    "vol_target": "annualised volatility target (null: no volatility scaling)",
    "period": "bars of Wilder's RSI",
    "entry": "RSI level that opens the position",
    "exit": "RSI level that closes it",
    "trend_filter": "bars of the trend filter's SMA (null: no filter)",
    "top_k": "symbols held on each side",
}


def run(inputs: dict, *, prompt: Prompt) -> dict:
    blueprint, policy = inputs["blueprint"], inputs["policy"]
    given = blueprint["strategy"]
    strategy = normalise_strategy(given)
    defaults = policy["defaults"]
    evaluation = {**{k: defaults[k] for k in ("test_months", "holdout_months")}, **blueprint["evaluation"]}
    warmup, warmup_errors = resolve_warmup(strategy, evaluation, defaults)
    costs = blueprint.get("costs", {})
    portfolio = blueprint.get("portfolio", {})
    benchmark = blueprint.get("benchmark", {}).get("symbol")
    period = blueprint.get("period", {})
    snapshot = inputs["snapshot"]
    return {
        "schema_version": CONTRACT,
        "agent_id": AGENT_ID,
        "prompt_version": prompt.version,
        "family": strategy["family"],
        "signal": SIGNALS[strategy["family"]],
        "parameters": [
            {"name": name, "value": value, "source": _source(given["params"], name),
             "meaning": PARAMETERS[name]}
            for name, value in strategy["params"].items()
        ],
        "direction": {"value": strategy["direction"], "source": _source(given, "direction")},
        "rebalance": {"value": strategy["rebalance"], "source": _source(given, "rebalance"),
                      "family_default": DEFAULT_REBALANCE[strategy["family"]]},
        "universe": [s for s in snapshot["symbols"] if s in set(blueprint["universe"]["symbols"])],
        "execution": {**EXECUTION, "words": "The signal is computed at the close of bar t and the position is "
                      "held from bar t+1; weights are equal across the universe unless the family says otherwise; "
                      "one continuous simulation runs over the whole evaluation, test segments and holdout being "
                      "slices of it."},
        "costs": {k: {"value": float(costs.get(k, defaults[k])), "source": _source(costs, k, "policy")}
                  for k in ("fee_bps", "slippage_bps")},
        "risk": {
            **{k: {"value": float(portfolio.get(k, v)), "source": _source(portfolio, k, "kernel")}
               for k, v in PORTFOLIO_DEFAULTS.items()},
            "max_vol_scale": MAX_VOL_SCALE,
            "stress_cost_multiplier": STRESS_COST_MULTIPLIER,
            "end_of_evaluation": "liquidate",
            "benchmark": {"kind": "symbol", "symbol": benchmark} if benchmark
            else {"kind": "universe_buy_and_hold", "symbol": None},
        },
        "data_window": {
            "snapshot_id": snapshot["snapshot_id"],
            "snapshot_sha256": snapshot["sha256"],
            "frequency": "1d",
            "start": period.get("start", snapshot["start"]),
            "end": period.get("end", snapshot["end"]),
            "protocol": "walk_forward",
            "test_months": evaluation["test_months"],
            "holdout_months": evaluation["holdout_months"],
            "warmup_bars": warmup["bars"],
            "required_warmup_bars": warmup["required_bars"],
            "holdout_visibility": "metrics_only",
        },
        "policy": {"policy_bundle_id": policy["policy_bundle_id"], "sha256": policy["sha256"]},
        # The compiler's parameter and warm-up rules this blueprint breaks (none for a blueprint that compiles).
        "checks": sorted(param_errors(strategy, blueprint["universe"]["symbols"]) + warmup_errors,
                         key=lambda e: (e["path"], e["message"])),
    }


def _source(given: dict, name: str, default: str = "default") -> str:
    """Whether a value was written in the blueprint or resolved ("default": the family's or the kernel's;
    "policy": the bundle's defaults over the kernel's)."""
    return "blueprint" if name in given else default
