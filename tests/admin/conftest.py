"""Fixtures of the admin tests; the builders are in builders.py."""
import pytest

from .builders import make_staff_people


@pytest.fixture
def people(db, make_user, django_user_model):
    return make_staff_people(make_user, django_user_model)
