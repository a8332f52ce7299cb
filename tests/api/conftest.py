"""Fixtures of the API tests; the builders are in tests/builders/."""
import pytest

from ..builders import MONTH, SNAPSHOT, a_snapshot


@pytest.fixture(autouse=True)
def _snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    a_snapshot(SNAPSHOT, span=MONTH)
