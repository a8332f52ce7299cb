"""Run charts as server-rendered SVG: the geometry is computed here, the markup is a template.

No script and no external asset, so a chart is part of the page's HTML (it prints, it works without
JavaScript, and what the page shows is what the dossier holds).
"""
import math
from dataclasses import dataclass

from .templatetags import ui_format

WIDTH, HEIGHT = 760, 300
# The right margin leaves room for half of the last date label, which is centred on the last bar.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 44, 16, 40
RIGHT, BOTTOM = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM  # the plot's right and bottom edges


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Line:
    name: str
    kind: str  # the CSS class: curve, benchmark, drawdown, other
    points: str


@dataclass(frozen=True)
class Frame:
    """What every chart shares: the SVG's size and the plot's edges inside it."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    top: int = MARGIN_TOP
    right: int = RIGHT
    bottom: int = BOTTOM


@dataclass(frozen=True, kw_only=True)
class LineChart(Frame):
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float | None
    description: str

    @property
    def points(self) -> str:
        return self.lines[0].points


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as the page writes it
    x: float
    y: float
    width: float
    height: float
    center: float
    text_y: float  # where the value is written: above a gain, below a loss
    kind: str  # positive, negative, holdout


@dataclass(frozen=True, kw_only=True)
class BarChart(Frame):
    bars: list[Bar]
    y_ticks: list[Tick]
    zero: float
    description: str


Y_TICKS, X_TICKS = 5, 5


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` into about `count` parts."""
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of `step` exactly (0.25 -> 2, 5 -> 0)."""
    return next((d for d in range(10) if abs(round(step, d) - step) <= step * 1e-9), 10)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _scale(values: list[float], bottom: float, *, percent: bool):
    """Round bounds around `values`, the y of a value, and the ticks (in percent when `percent`)."""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - (0.005 if percent else 0.5), high + (0.005 if percent else 0.5)
    step = _nice_step(high - low, Y_TICKS)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step

    def y(v: float) -> float:
        return bottom - (bottom - MARGIN_TOP) * (v - low) / (high - low)

    decimals = max(_decimals(step) - 2, 0) if percent else _decimals(step)
    ticks = []
    for k in range(int(round((high - low) / step)) + 1):
        value = low + k * step
        ticks.append(Tick(round(y(value), 1), f"{100 * value:.{decimals}f}%" if percent else f"{value:.{decimals}f}"))
    return low, high, y, ticks


def line_chart(dates: list[str], series: list[tuple[str, str, list]], *, baseline: float | None = 1.0,
               percent: bool = False, what: str = "Equity") -> LineChart | None:
    """Lines over `dates` (ISO days, in order): `series` is (name, kind, values) each, a value per date (None
    where a series has none: its line skips the day); round value ticks (percent when `percent`), five dates,
    a line at `baseline`.

    None when there is nothing to draw.
    """
    def has(values: list, i: int) -> bool:
        return i < len(values) and _finite(values[i])

    days = [i for i in range(len(dates)) if any(has(values, i) for _, _, values in series)]
    if not days:
        return None
    values = [values[i] for _, _, values in series for i in days if has(values, i)]
    right, bottom = RIGHT, BOTTOM
    low, high, y, y_ticks = _scale(values + ([baseline] if baseline is not None else []), bottom, percent=percent)
    last = max(len(days) - 1, 1)

    def x(k: int) -> float:
        return MARGIN_LEFT + (right - MARGIN_LEFT) * k / last

    shown = ui_format.percent if percent else ui_format.ratio
    lines, described = [], []
    for name, kind, values in series:
        drawn = [(k, i) for k, i in enumerate(days) if has(values, i)]
        if not drawn:
            continue
        lines.append(Line(name, kind, " ".join(f"{x(k):.1f},{y(values[i]):.1f}" for k, i in drawn)))
        (_, first), (_, final) = drawn[0], drawn[-1]
        described.append(f"{name} from {shown(values[first])} on {dates[first]} to {shown(values[final])} "
                         f"on {dates[final]}")
    indexes = sorted({round(k * (len(days) - 1) / (X_TICKS - 1)) for k in range(X_TICKS)})
    return LineChart(
        lines=lines,
        x_ticks=[Tick(round(x(k), 1), dates[days[k]]) for k in indexes], y_ticks=y_ticks,
        baseline=round(y(baseline), 1) if baseline is not None and low <= baseline <= high else None,
        description=f"{what}: {'; '.join(described)}; {len(days)} bars",
    )


def equity_chart(dates: list[str], equity: list[float], *, baseline: float = 1.0) -> LineChart | None:
    """One equity curve over `dates`, with a line at `baseline`."""
    return line_chart(dates, [("Strategy", "curve", equity)], baseline=baseline)


def bar_chart(bars: list[tuple[str, float | None, str]]) -> BarChart | None:
    """Vertical bars of fractions (label, value, kind), written in percent, from a zero line; a bar without
    a number is left out. None when no bar has one."""
    bars = [(label, value, kind) for label, value, kind in bars if _finite(value)]
    if not bars:
        return None
    right, bottom = RIGHT, BOTTOM
    _, _, y, y_ticks = _scale([v for _, v, _ in bars] + [0.0], bottom, percent=True)
    slot = (right - MARGIN_LEFT) / len(bars)
    width = slot * 0.7
    zero = y(0.0)
    drawn = []
    for k, (label, value, kind) in enumerate(bars):
        top, base = sorted((y(value), zero))
        left = MARGIN_LEFT + slot * k + (slot - width) / 2
        drawn.append(Bar(label=label, value=value, shown=ui_format.percent(value), kind=kind,
                         x=round(left, 1), y=round(top, 1), width=round(width, 1),
                         height=round(max(base - top, 0.5), 1), center=round(left + width / 2, 1),
                         text_y=round(top - 4 if value >= 0 else base + 12, 1)))
    return BarChart(
        bars=drawn,
        y_ticks=y_ticks, zero=round(zero, 1),
        description="; ".join(f"{bar.label}{' (holdout)' if bar.kind == 'holdout' else ''} {bar.shown}"
                              for bar in drawn),
    )


def _column(table: dict | None, name: str) -> list | None:
    if not table or name not in table["columns"]:
        return None
    at = table["columns"].index(name)
    return [row[at] for row in table["rows"]]


def run_charts(segments: list[dict], curve: dict | None) -> dict:
    """A run's overview: the stitched out-of-sample equity with the benchmark beside it, its drawdown, and the
    segments' total returns as bars (the holdout's is a metric: a bar marked holdout, never a curve point);
    `ends` are the numbers behind the lines at the end of each test segment, for the table under them."""
    dates, equity = _column(curve, "date"), _column(curve, "equity")
    benchmark, drawdown = _column(curve, "benchmark_equity"), _column(curve, "drawdown")
    charts = {"equity": None, "drawdown": None, "ends": []}
    if dates and equity:
        series = [("Strategy", "curve", equity)]
        if benchmark and any(_finite(v) for v in benchmark):
            series.append(("Benchmark", "benchmark", benchmark))
        charts["equity"] = line_chart(dates, series)
        if drawdown:
            charts["drawdown"] = line_chart(dates, [("Drawdown", "drawdown", drawdown)], baseline=0.0,
                                            percent=True, what="Drawdown of the strategy")
        at = {day: i for i, day in enumerate(dates)}
        charts["ends"] = [
            {"segment_id": s["segment_id"], "date": s["end"], "equity": equity[at[s["end"]]],
             "benchmark": benchmark[at[s["end"]]] if benchmark else None,
             "drawdown": drawdown[at[s["end"]]] if drawdown else None}
            for s in segments if s.get("role") == "test" and s.get("end") in at
        ]
    charts["returns"] = bar_chart([
        (s["segment_id"], s.get("total_return"),
         "holdout" if s.get("role") == "holdout" else "positive" if (s.get("total_return") or 0) >= 0 else "negative")
        for s in segments
    ])
    return charts


def comparison_chart(curves: list[tuple[str, dict | None]]) -> LineChart | None:
    """Stitched equity curves of several runs, (name, oos_curve table) each, on the union of their days."""
    columns = [(name, _column(curve, "date") or [], _column(curve, "equity") or []) for name, curve in curves]
    dates = sorted({day for _, days, _ in columns for day in days})
    series = []
    for name, days, equity in columns:
        value = dict(zip(days, equity))
        series.append((name, f"run-{len(series) + 1}", [value.get(day) for day in dates]))
    return line_chart(dates, series, what="Out-of-sample equity")
