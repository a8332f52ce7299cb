"""Who is told of what: the one place that chooses the people of each kind of notification."""
from django.contrib.auth import get_user_model

from jobs.approvals import eligible_users
from jobs.models import JobEvent, JobSpec, JobState
from jobs.roles import APPROVE, holders

from .kinds import Kind

OPERATORS = "operators"


def _active():
    return get_user_model().objects.filter(is_active=True)


def eligible_reviewers(job: JobSpec, step: str | None) -> list:
    """The people who may decide `step` of `job`: under the checkpoint's approval rule (fixed at submit, see
    jobs.approvals), the eligible reviewers of its groups; without one, holders of the approve permission other
    than its submitter."""
    review = JobState.objects.filter(job_id=job.job_id).values_list("review", flat=True).first() or {}
    rule = (review.get("rules") or {}).get(step)
    if rule is None:
        return list(holders(APPROVE).exclude(username=job.submitted_by).order_by("username"))
    people = {}
    for need in rule["required"]:
        for user in eligible_users(need["group"], submitter=job.submitted_by):
            people.setdefault(user.pk, user)
    return sorted(people.values(), key=lambda user: user.get_username())


def _submitter(job: JobSpec) -> list:
    return list(_active().filter(username=job.submitted_by))


def _members(group: str | None) -> list:
    return list(_active().filter(groups__name=group).order_by("username")) if group else []


def recipients(kind: Kind, event: JobEvent, job: JobSpec) -> list:
    """The users to tell about `event` (of `kind`), each once, in a stable order."""
    if kind == Kind.WAITING:
        people = eligible_reviewers(job, event.step)
    elif kind == Kind.ESCALATED:
        people = _members((event.payload or {}).get("group"))
    elif kind == Kind.ERROR:
        people = _submitter(job) + _members(OPERATORS)
    else:  # decided, finished: the submitter
        people = _submitter(job)
    unique = {user.pk: user for user in people}
    return list(unique.values())
