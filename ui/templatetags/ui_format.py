"""How the pages write numbers, metrics, times and JSON."""
import json
from datetime import datetime

from django import template

register = template.Library()

METRIC_LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "ann_volatility": "Annualised volatility",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration_bars": "Max drawdown duration (bars)",
    "calmar": "Calmar ratio",
    "turnover": "Turnover (per year)",
    "exposure": "Exposure",  # dossiers of kernel eam-research-1
    "gross_exposure": "Gross exposure",
    "time_in_market": "Time in market",
    "alpha": "Alpha (annualised)",
    "beta": "Beta",
    "information_ratio": "Information ratio",
    "tracking_error": "Tracking error",
    "excess_return": "Excess return",
    "trades": "Trades",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "skew": "Skew",
    "kurtosis": "Kurtosis",
    "psr": "Probabilistic Sharpe ratio",
    "t_stat": "t-statistic",
    "n_bars": "Bars",
    "positive_share": "Share of positive segments",
}
# Fractions a person reads as percentages.
PERCENT_METRICS = frozenset({"total_return", "cagr", "ann_volatility", "max_drawdown", "exposure", "win_rate",
                             "positive_share", "gross_exposure", "time_in_market", "alpha", "tracking_error",
                             "excess_return"})


@register.filter
def num(value) -> str:
    """A number as a person reads it: four significant digits, thousands grouped; None is a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)


@register.filter
def metric(value, key: str) -> str:
    if key in PERCENT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{100 * value:.2f}%"
    return num(value)


@register.filter
def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """(label, formatted value) for every number in a metrics document: the known metrics first, in the
    order of METRIC_LABELS (the document itself is in canonical, alphabetical order), then the rest."""
    rank = {key: i for i, key in enumerate(METRIC_LABELS)}
    numbers = [(key, value) for key, value in (metrics or {}).items()
               if value is None or isinstance(value, (int, float))]
    numbers.sort(key=lambda item: (rank.get(item[0], len(rank)), item[0]))
    return [(METRIC_LABELS.get(key, key.replace("_", " ")), metric(value, key)) for key, value in numbers]


@register.filter
def when(value) -> str:
    """An ISO time (or a datetime) as `YYYY-MM-DD HH:MM:SS UTC`."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def pretty_json(doc) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def label(value) -> str:
    """A status or step name in words: waiting_approval -> waiting approval."""
    return str(value).replace("_", " ") if value else ""
