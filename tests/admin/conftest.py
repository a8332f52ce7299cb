"""Fixtures of the admin tests; the builders are in builders.py."""
import pytest

from ..api.builders import SNAPSHOT
from ..jobs.factories import given_snapshot
from .builders import make_staff_people


@pytest.fixture(autouse=True)
def _snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    given_snapshot(SNAPSHOT)


@pytest.fixture
def people(db, make_user, django_user_model):
    return make_staff_people(make_user, django_user_model)
