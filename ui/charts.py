"""Equity curves as server-rendered SVG: the geometry is computed here, the markup is a template.

No script and no external asset, so a chart is part of the page's HTML (it prints, it works without
JavaScript, and what the page shows is what the dossier holds).
"""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    points: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float | None
    description: str


WIDTH, HEIGHT = 760, 300
# The right margin leaves room for half of the last date label, which is centred on the last bar.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 44, 16, 40
Y_TICKS, X_TICKS = 5, 5


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` into about `count` parts."""
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of `step` exactly (0.25 -> 2, 5 -> 0)."""
    return next((d for d in range(10) if abs(round(step, d) - step) <= step * 1e-9), 10)


def equity_chart(dates: list[str], equity: list[float], *, baseline: float = 1.0) -> LineChart | None:
    """A line chart of `equity` over `dates` (ISO days), with round value ticks and a line at `baseline`.

    None when there is nothing to draw (no finite point).
    """
    points = [(d, v) for d, v in zip(dates, equity) if isinstance(v, (int, float)) and math.isfinite(v)]
    if not points:
        return None
    values = [v for _, v in points] + [baseline]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    step = _nice_step(high - low, Y_TICKS)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    right, bottom = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM
    last = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return MARGIN_LEFT + (right - MARGIN_LEFT) * i / last

    def y(v: float) -> float:
        return bottom - (bottom - MARGIN_TOP) * (v - low) / (high - low)

    decimals = _decimals(step)
    y_ticks = [Tick(round(y(low + k * step), 1), f"{low + k * step:.{decimals}f}")
               for k in range(int(round((high - low) / step)) + 1)]
    indexes = sorted({round(k * (len(points) - 1) / (X_TICKS - 1)) for k in range(X_TICKS)})
    x_ticks = [Tick(round(x(i), 1), points[i][0]) for i in indexes]
    first, final = points[0], points[-1]
    return LineChart(
        width=WIDTH, height=HEIGHT, left=MARGIN_LEFT, top=MARGIN_TOP, right=right, bottom=bottom,
        points=" ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points)),
        x_ticks=x_ticks, y_ticks=y_ticks,
        baseline=round(y(baseline), 1) if low <= baseline <= high else None,
        description=(f"Equity from {first[1]:.3f} on {first[0]} to {final[1]:.3f} on {final[0]}, "
                     f"{len(points)} bars"),
    )
