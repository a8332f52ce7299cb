"""How the pages write numbers, metrics, times and JSON: the one rule for a metric's format (`metric`), used by
every page that shows one (run, comparison, registry, gate results, the gates of a runspec under review) and by
the charts' descriptions and bar values (ui/charts.py)."""
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


# Ratios (and the probabilities of the statistics: PSR, deflated Sharpe, PBO), written with a fixed number of
# decimals so that a column of them lines up.
RATIO_METRICS = frozenset({"sharpe", "sortino", "calmar", "beta", "information_ratio", "profit_factor", "skew",
                           "kurtosis", "psr", "deflated_sharpe", "pbo", "t_stat"})
RATIO_DECIMALS = 2


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@register.filter
def percent(value) -> str:
    """A fraction in percent with two decimals: 0.1234 -> 12.34%; anything else as `num` writes it."""
    return f"{100 * value:.2f}%" if _is_number(value) else num(value)


@register.filter
def ratio(value) -> str:
    """A ratio with RATIO_DECIMALS decimals: 1.23456 -> 1.23; anything else as `num` writes it."""
    return f"{value:.{RATIO_DECIMALS}f}" if _is_number(value) else num(value)


def metric_key(name: str) -> str:
    """The metric a name or a gate's metric path is about: `oos.max_drawdown` and `stress.costs_x2.sharpe` are a
    max drawdown and a Sharpe ratio, written as such."""
    return str(name).rsplit(".", 1)[-1]


@register.filter
def metric(value, key: str) -> str:
    """A metric as the pages write it: returns and drawdowns (every fraction) in percent, ratios with a fixed
    number of decimals, the rest as `num`; `key` is the metric's name or a dotted path to it (a gate's metric)."""
    key = metric_key(key)
    if key in PERCENT_METRICS:
        return percent(value)
    if key in RATIO_METRICS:
        return ratio(value)
    return num(value)


@register.filter
def metric_difference(value, key: str) -> str:
    """A difference of two values of a metric, signed: fractions in percentage points (+1.20 pp)."""
    if not _is_number(value):
        return num(value)
    key = metric_key(key)
    if key in PERCENT_METRICS:
        return f"{100 * value:+.2f} pp"
    if key in RATIO_METRICS:
        return f"{value:+.{RATIO_DECIMALS}f}"
    return f"{value:+,}" if isinstance(value, int) else f"{value:+.4g}"


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
