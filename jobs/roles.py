"""The groups people are put in and what each may do to jobs (DESIGN §8), declared as data.

`ensure_roles` creates what is missing and never takes a permission away, so the data migration and
`manage.py setup_roles` can run any number of times. It takes a model registry (`django.apps.apps`, or a
migration's historical `apps`) so that both share this one definition.
"""
from dataclasses import dataclass

from django.db.models import Exists, Q, Value

JOBS_APP = "jobs"
JOBSPEC_MODEL = "jobspec"

# codename -> name, as in JobSpec.Meta.permissions (a migration cannot rely on post_migrate having run).
PERMISSIONS: dict[str, str] = {
    "submit_job": "Can submit jobs",
    "approve_job": "Can approve or reject checkpoints",
    "operate_job": "Can retry or cancel jobs",
    "spawn_job": "Can spawn child jobs",
    "rerun_job": "Can rerun agents of a job",
    "override_approval": "Can open a checkpoint without its approvals (break-glass)",
}

ROLES: dict[str, tuple[str, ...]] = {
    "submitters": ("submit_job", "spawn_job"),
    "reviewers": ("approve_job", "rerun_job"),  # a reviewer who doubts an agent's output asks for it again
    "operators": ("operate_job", "rerun_job"),
}
# override_approval is in no group: break-glass is given to named people (admin: user permissions), on purpose.

# What each API operation requires, as "app_label.codename" for user.has_perm.
SUBMIT = f"{JOBS_APP}.submit_job"
APPROVE = f"{JOBS_APP}.approve_job"
OPERATE = f"{JOBS_APP}.operate_job"
SPAWN = f"{JOBS_APP}.spawn_job"
RERUN = f"{JOBS_APP}.rerun_job"
OVERRIDE = f"{JOBS_APP}.override_approval"


def held_by(user, perm: str):
    """Whether `user` holds `perm` ("app_label.codename"), as Django's ModelBackend (the one authentication
    backend configured) decides it: directly or through a group; an inactive or anonymous user holds nothing, an
    active superuser everything. An expression, so that the query that reads a job answers it too: the API's
    job detail needs no separate permission queries (`user.has_perm` sends two). Tested against has_perm."""
    if not (user and user.is_authenticated and user.is_active):
        return Value(False)
    if user.is_superuser:
        return Value(True)
    from django.contrib.auth.models import Permission

    app_label, codename = perm.split(".", 1)
    granted = Permission.objects.filter(Q(user=user.pk) | Q(group__user=user.pk),
                                        content_type__app_label=app_label, codename=codename)
    return Exists(granted)


def holders(perm: str):
    """The active users who hold `perm` ("app_label.codename") as Django's ModelBackend decides it: directly, through
    a group, or as a superuser; `held_by` answers the same for one user. A queryset, one query however many."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    app_label, codename = perm.split(".", 1)
    granted = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return get_user_model().objects.filter(
        Q(is_superuser=True) | Q(user_permissions__in=granted) | Q(groups__permissions__in=granted), is_active=True,
    ).distinct()


@dataclass(frozen=True)
class RoleChange:
    group: str
    created: bool
    added: tuple[str, ...]


def ensure_roles(apps) -> list[RoleChange]:
    """Create the groups and permissions of ROLES where missing; returns what changed per group."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label=JOBS_APP, model=JOBSPEC_MODEL)
    permissions = {
        codename: Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )[0]
        for codename, name in PERMISSIONS.items()
    }
    changes = []
    for group_name, codenames in ROLES.items():
        group, created = Group.objects.get_or_create(name=group_name)
        present = set(group.permissions.filter(content_type=content_type).values_list("codename", flat=True))
        missing = tuple(c for c in codenames if c not in present)
        if missing:
            group.permissions.add(*(permissions[c] for c in missing))
        changes.append(RoleChange(group=group_name, created=created, added=missing))
    return changes
