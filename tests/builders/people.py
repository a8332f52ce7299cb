"""Who acts in the tests: users in each role (all with the password `<username>-pass-123`), and actors."""
from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from jobs.events import Actor
from jobs.roles import ensure_roles

# The engine tests' people, who need no user row.
SUBMITTER, REVIEWER = Actor("user", "sam-submitter"), Actor("user", "rita-reviewer")


def a_user(username: str, *groups: str, staff: bool = False):
    user = get_user_model().objects.create_user(username=username, password=f"{username}-pass-123", is_staff=staff)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@dataclass
class People:
    submitter: object
    reviewer: object
    operator: object
    superuser: object
    nobody: object


def make_people(*, staff: bool = False) -> People:
    """One user per role, a superuser and one without a role; `staff` opens the admin to all of them (a role
    alone does not)."""
    ensure_roles(apps)  # a transactional test's flush removed the groups the migration made
    root = get_user_model().objects.create_superuser(username="root", password="root-pass-123", email="r@x.org")
    return People(
        submitter=a_user("sam", "submitters", staff=staff),
        reviewer=a_user("rita", "reviewers", staff=staff),
        operator=a_user("otto", "operators", staff=staff),
        superuser=root,
        nobody=a_user("nina", staff=staff),
    )


def as_actor(by) -> Actor:
    """`by` as an actor: an Actor already, or a user or username."""
    return by if isinstance(by, Actor) else Actor.user(by)
