"""Builders of the research tests: small synthetic CSVs, blueprints, a look at the artifact root."""
from pathlib import Path

from research.demo_data import demo_csv

SMALL_SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
FAMILIES = ("buy_and_hold", "sma_crossover", "ts_momentum", "rsi_mean_reversion", "xs_momentum")


def stored_files(root: Path) -> list[str]:
    """Every file under the artifact root, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def small_csv(snapshot_id: str = "small_snap", *, symbols=SMALL_SYMBOLS, start="2016-01-01", end="2020-01-01") -> bytes:
    """Synthetic long CSV: 5 symbols x 4 years of business days by default."""
    return demo_csv(snapshot_id, symbols=symbols, start=start, end=end)


def make_blueprint(family: str = "sma_crossover", params=None, *, symbols=SMALL_SYMBOLS, **sections) -> dict:
    """A valid blueprint; `sections` (period, costs, evaluation, ...) replace or add top-level members."""
    defaults = {
        "sma_crossover": {"fast": 10, "slow": 50},
        "buy_and_hold": {},
        "ts_momentum": {"lookback": 60},
        "rsi_mean_reversion": {"period": 14, "entry": 30, "exit": 55},
        "xs_momentum": {"lookback": 60, "top_k": 2},
    }
    blueprint = {
        "schema_version": "blueprint_v1",
        "name": "test blueprint",
        "strategy": {"family": family, "params": defaults[family] if params is None else params},
        "universe": {"symbols": list(symbols)},
        "evaluation": {"protocol": "walk_forward", "test_months": 6, "holdout_months": 6},
    }
    blueprint.update(sections)
    return blueprint
