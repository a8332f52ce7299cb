"""Fixtures of the API tests; the builders themselves are in builders.py."""
import pytest

from ..jobs.factories import given_snapshot
from .builders import SNAPSHOT, People, make_people


@pytest.fixture(autouse=True)
def _snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    given_snapshot(SNAPSHOT)


@pytest.fixture
def people(db, make_user, django_user_model) -> People:
    return make_people(make_user, django_user_model)
