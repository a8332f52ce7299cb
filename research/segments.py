"""Walk-forward layout: warm-up, full test windows of N months, then a final holdout of M months.

The holdout is every bar after (last bar - M months). Test windows are laid backwards from the holdout's
first bar, each exactly N calendar months, as many as fit after the warm-up bars; bars left over at the
start only lengthen the warm-up. So every test window has the same calendar length.
"""
import calendar
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

HOLDOUT_ID = "holdout"


@dataclass(frozen=True)
class Segment:
    segment_id: str
    role: str  # "test" | "holdout"
    start: int  # index of the first bar
    end: int  # index after the last bar

    def as_doc(self, dates: np.ndarray) -> dict:
        return {
            "segment_id": self.segment_id,
            "role": self.role,
            "start": iso(dates[self.start]),
            "end": iso(dates[self.end - 1]),
            "bars": self.end - self.start,
        }


def iso(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value, unit="D"))


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, clamped to the end of a shorter month (Mar 31 - 1 -> Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _index(dates: np.ndarray, day: date) -> int:
    return int(np.searchsorted(dates, np.datetime64(day.isoformat(), "D"), side="left"))


def layout(dates: np.ndarray, *, warmup_bars: int, test_months: int, holdout_months: int) -> list[Segment]:
    """Test segments `seg_001`... then `holdout`; no test segment at all if the bars are too few."""
    last = date.fromisoformat(iso(dates[-1]))
    holdout_start = _index(dates, add_months(last, -holdout_months) + timedelta(days=1))
    boundaries = [holdout_start]
    anchor = date.fromisoformat(iso(dates[holdout_start])) if holdout_start < len(dates) else last
    k = 1
    while True:
        start = _index(dates, add_months(anchor, -k * test_months))
        if start < warmup_bars or start >= boundaries[-1]:
            break
        boundaries.append(start)
        k += 1
    boundaries.reverse()
    segments = [
        Segment(f"seg_{i:03d}", "test", start, end) for i, (start, end) in enumerate(zip(boundaries, boundaries[1:]), 1)
    ]
    if holdout_start < len(dates):
        segments.append(Segment(HOLDOUT_ID, "holdout", holdout_start, len(dates)))
    return segments
