"""The groups submitters, reviewers, operators: made by a data migration and by `manage.py setup_roles`."""
from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from jobs.roles import ROLES

pytestmark = pytest.mark.django_db


def granted() -> dict[str, set[str]]:
    return {
        group.name: set(group.permissions.values_list("codename", flat=True))
        for group in Group.objects.filter(name__in=ROLES)
    }


def test_the_data_migration_is_applied():
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("jobs", "0004_roles") in applied


def test_setup_roles_creates_groups_and_is_idempotent():
    # given no groups (as after a flush) and a permission taken away by hand
    Group.objects.filter(name__in=ROLES).delete()

    # when setup_roles runs twice
    first, second = StringIO(), StringIO()
    call_command("setup_roles", stdout=first)
    call_command("setup_roles", stdout=second)

    # then each group has exactly its permissions, and the second run changed nothing
    assert granted() == {"submitters": {"submit_job", "spawn_job"}, "reviewers": {"approve_job", "rerun_job"},
                         "operators": {"operate_job", "rerun_job"}}
    assert "submitters: created" in first.getvalue()
    assert second.getvalue().count("up to date") == 3
    assert Permission.objects.filter(codename="approve_job").count() == 1

    Group.objects.get(name="reviewers").permissions.clear()
    third = StringIO()
    call_command("setup_roles", stdout=third)
    assert "reviewers: updated (added approve_job, rerun_job)" in third.getvalue()
    assert granted()["reviewers"] == {"approve_job", "rerun_job"}


def test_setup_roles_keeps_what_an_admin_added():
    call_command("setup_roles", stdout=StringIO())
    extra = Permission.objects.get(codename="view_jobspec")
    Group.objects.get(name="operators").permissions.add(extra)
    call_command("setup_roles", stdout=StringIO())
    assert "view_jobspec" in granted()["operators"]


def test_held_by_answers_as_has_perm_for_every_person_and_permission(people):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser
    from django.db.models import Value

    from jobs.roles import JOBS_APP, PERMISSIONS, held_by

    direct = get_user_model().objects.create_user("dora", password="dora-pass-123")
    direct.user_permissions.add(Permission.objects.get(codename="operate_job"))
    inactive = get_user_model().objects.create_user("ivan", password="ivan-pass-123", is_active=False)
    inactive.groups.add(Group.objects.get(name="reviewers"))
    users = [people.submitter, people.reviewer, people.operator, people.superuser, people.nobody, direct, inactive]
    for user in users:
        fresh = get_user_model().objects.get(pk=user.pk)  # no permission cache of an earlier has_perm
        for codename in PERMISSIONS:
            perm = f"{JOBS_APP}.{codename}"
            answer = get_user_model().objects.filter(pk=user.pk).annotate(held=held_by(fresh, perm))
            assert answer.values_list("held", flat=True).get() == fresh.has_perm(perm), (user.username, perm)
    assert isinstance(held_by(AnonymousUser(), f"{JOBS_APP}.approve_job"), Value)
