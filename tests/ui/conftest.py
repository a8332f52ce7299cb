"""Fixtures of the /ui tests; the builders themselves are in builders.py."""
import pytest

from ..api.builders import People, make_people


@pytest.fixture
def people(db, make_user, django_user_model) -> People:
    return make_people(make_user, django_user_model)
