"""Fixtures of the admin tests; the builders are in tests/builders/."""
import pytest

from ..builders import MONTH, SNAPSHOT, People, a_snapshot, make_people


@pytest.fixture(autouse=True)
def _snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    a_snapshot(SNAPSHOT, span=MONTH)


@pytest.fixture
def people(db) -> People:
    """The shared people, all of them staff: a role alone does not open the admin."""
    return make_people(staff=True)
