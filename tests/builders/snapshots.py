"""Market data for the tests: synthetic snapshots, ingested through the real code."""
from research.demo_data import demo_csv
from research.models import DataSnapshot
from research.snapshots import ingest_csv

from .documents import SMALL_SYMBOLS, TINY_SYMBOLS

SNAPSHOT = "api_snap"  # what the API, /ui and admin tests submit against
TINY_SNAPSHOT = "tiny_snap"  # what the engine tests run on
MONTH = ("2023-01-02", "2023-02-01")  # enough for a submission to name the snapshot
FOUR_YEARS = ("2019-01-01", "2023-01-01")  # a warm-up, two walk-forward test years and a holdout year: enough to run


def a_snapshot(snapshot_id: str, *, span: tuple[str, str] = FOUR_YEARS, symbols=TINY_SYMBOLS) -> DataSnapshot:
    """A random-walk snapshot of `symbols` over `span`, ingested as real data is."""
    start, end = span
    data = demo_csv(snapshot_id, symbols=symbols, start=start, end=end)
    return ingest_csv(snapshot_id=snapshot_id, data=data, source="tests").snapshot


def small_csv(snapshot_id: str = "small_snap", *, symbols=SMALL_SYMBOLS, start="2016-01-01", end="2020-01-01") -> bytes:
    """The research tests' long CSV: 5 symbols x 4 years of business days by default."""
    return demo_csv(snapshot_id, symbols=symbols, start=start, end=end)
