"""The long OHLCV CSV (`date,symbol,open,high,low,close,volume`): strict parsing into a panel, canonical writing.

Parsing is vectorised; a failed check reports the first offending line (the header is line 1). Checks run
in a fixed order: header, field counts, dates, symbols, numbers, prices, order of dates, duplicates, and
finally the shape of the panel, which must be rectangular (every symbol has a bar on every date).
"""
import csv
import re
from dataclasses import dataclass

import numpy as np

from .errors import SnapshotError

COLUMNS = ("date", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class Panel:
    """A rectangular panel of daily bars: dates (T,) datetime64[D], symbols (N,) and one read-only (T, N)
    float64 array per field; once loaded from a snapshot, also the snapshot's id and the file's sha256."""

    dates: np.ndarray
    symbols: tuple
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    snapshot_id: str = ""
    sha256: str = ""


def _line(index) -> int:
    # index of a data row (0-based) -> line number in the file (header is line 1)
    return int(index) + 2


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SnapshotError(f"not UTF-8 text (byte {exc.start})", line=line) from exc


def _header(row: list[str]) -> list[int]:
    names = [name.strip() for name in row]
    for name in COLUMNS:
        if name not in names:
            raise SnapshotError(f"missing column {name!r} (expected {','.join(COLUMNS)})", line=1)
    extra = [name for name in names if name not in COLUMNS]
    if extra:
        raise SnapshotError(f"unexpected column {extra[0]!r} (expected {','.join(COLUMNS)})", line=1)
    if len(set(names)) != len(names):
        raise SnapshotError("a column appears twice in the header", line=1)
    return [names.index(name) for name in COLUMNS]


def _dates(values: list[str]) -> np.ndarray:
    raw = np.array(values, dtype=str)
    try:
        dates = raw.astype("datetime64[D]")
    except ValueError:
        dates = None
    if dates is not None:
        # numpy also accepts '2020-01' or '2020-01-02T00'; only YYYY-MM-DD written back identically is valid.
        bad = np.flatnonzero(np.datetime_as_string(dates, unit="D") != raw)
    else:
        bad = [i for i, value in enumerate(values) if not _is_date(value)]
    if len(bad):
        i = bad[0]
        raise SnapshotError(f"unparsable date {values[i]!r} (expected YYYY-MM-DD)", line=_line(i))
    return dates


def _is_date(value: str) -> bool:
    try:
        return np.datetime_as_string(np.datetime64(value, "D"), unit="D") == value
    except ValueError:
        return False


def _numbers(name: str, values: list[str]) -> np.ndarray:
    try:
        numbers = np.array(values, dtype=np.float64)
    except ValueError:
        numbers = np.empty(len(values), dtype=np.float64)
        for i, value in enumerate(values):  # only on failure: find the line to name
            try:
                numbers[i] = float(value)
            except ValueError:
                raise SnapshotError(f"unparsable number {value!r} in column {name!r}", line=_line(i)) from None
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        i = bad[0]
        raise SnapshotError(f"unparsable number {values[i]!r} in column {name!r} (not finite)", line=_line(i))
    return numbers


def _first(mask: np.ndarray):
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def parse_ohlcv_csv(data: bytes) -> Panel:
    """Parse and check a long OHLCV CSV; SnapshotError naming the line and the problem if anything is off."""
    lines = _decode(data).splitlines()
    if not lines:
        raise SnapshotError(f"empty file (expected the header {','.join(COLUMNS)})", line=1)
    rows = list(csv.reader(lines))
    order = _header(rows[0])
    body = rows[1:]
    if not body:
        raise SnapshotError("no data lines after the header", line=2)
    counts = np.fromiter((len(row) for row in body), dtype=np.int64, count=len(body))
    wrong = _first(counts != len(COLUMNS))
    if wrong is not None:
        raise SnapshotError(f"expected {len(COLUMNS)} fields, got {counts[wrong]}", line=_line(wrong))
    columns = {name: [row[k].strip() for row in body] for name, k in zip(COLUMNS, order)}

    dates = _dates(columns["date"])
    symbols = np.array(columns["symbol"], dtype=str)
    names, codes = np.unique(symbols, return_inverse=True)
    for code, name in enumerate(names):
        if not SYMBOL.fullmatch(str(name)):
            i = _first(codes == code)
            raise SnapshotError(f"invalid symbol {str(name)!r} (allowed: {SYMBOL.pattern})", line=_line(i))
    fields = {name: _numbers(name, columns[name]) for name in PRICE_COLUMNS + ("volume",)}
    _check_values(fields, columns)

    unsorted = _first(dates[1:] < dates[:-1])
    if unsorted is not None:
        raise SnapshotError(
            f"date {dates[unsorted + 1]} is earlier than {dates[unsorted]} on line {_line(unsorted)} "
            "(lines must be sorted by date)",
            line=_line(unsorted + 1),
        )
    key = np.lexsort((np.arange(len(body)), codes, dates))
    same = (dates[key][1:] == dates[key][:-1]) & (codes[key][1:] == codes[key][:-1])
    dup = _first(same)
    if dup is not None:
        first, again = int(key[dup]), int(key[dup + 1])
        raise SnapshotError(
            f"duplicate bar for {dates[again]} {symbols[again]} (first on line {_line(first)})", line=_line(again)
        )
    return _pivot(dates, names, codes, fields)


def _check_values(fields: dict, text: dict) -> None:
    """Value rules; messages quote the numbers as the file wrote them."""
    for name in PRICE_COLUMNS:
        bad = _first(fields[name] <= 0)
        if bad is not None:
            raise SnapshotError(f"non-positive price {text[name][bad]} in column {name!r}", line=_line(bad))
    bad = _first(fields["volume"] < 0)
    if bad is not None:
        raise SnapshotError(f"negative volume {text['volume'][bad]}", line=_line(bad))
    high, low = fields["high"], fields["low"]
    bad = _first(high < low)
    if bad is not None:
        raise SnapshotError(f"high {text['high'][bad]} < low {text['low'][bad]}", line=_line(bad))
    for name in ("open", "close"):
        bad = _first((fields[name] > high) | (fields[name] < low))
        if bad is not None:
            raise SnapshotError(
                f"{name} {text[name][bad]} outside the bar's range [low {text['low'][bad]}, high {text['high'][bad]}]",
                line=_line(bad),
            )


def _pivot(dates, names, codes, fields) -> Panel:
    unique_dates, date_index = np.unique(dates, return_inverse=True)
    T, N = len(unique_dates), len(names)
    per_date = np.bincount(date_index, minlength=T)
    ragged = _first(per_date != N)
    if ragged is not None:
        present = set(codes[date_index == ragged].tolist())
        missing = [str(names[c]) for c in range(N) if c not in present]
        raise SnapshotError(
            f"ragged data: {unique_dates[ragged]} has no bar for {', '.join(missing)}; every symbol needs a bar "
            f"on every date ({N} symbols, {T} dates)",
            line=_line(_first(date_index == ragged)),
        )
    arrays = {}
    for name, values in fields.items():
        panel = np.empty((T, N), dtype=np.float64)
        panel[date_index, codes] = values + 0.0  # + 0.0 turns -0.0 into 0.0
        panel.setflags(write=False)
        arrays[name] = panel
    unique_dates.setflags(write=False)
    return Panel(dates=unique_dates, symbols=tuple(str(s) for s in names), **arrays)


def _number(value: float) -> str:
    # repr() is the shortest string that reads back to the same double: exact and the same on every platform.
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def canonical_csv(panel: Panel) -> bytes:
    """The one byte form of a panel: header, rows by date then symbol, `\\n` line ends, shortest exact numbers."""
    T, N = panel.close.shape
    dates = np.repeat(np.datetime_as_string(panel.dates, unit="D"), N).tolist()
    symbols = list(panel.symbols) * T
    values = [[_number(v) for v in getattr(panel, name).ravel().tolist()] for name in PRICE_COLUMNS + ("volume",)]
    lines = [",".join(COLUMNS)]
    lines += [",".join(fields) for fields in zip(dates, symbols, *values)]
    return ("\n".join(lines) + "\n").encode()
