"""Builders for admin tests: staff people in each role, jobs in every status, messages of a response."""
from django.contrib.messages import get_messages
from django.test import Client

from jobs import services
from jobs.events import Actor
from jobs.events import NewEvent
from jobs.models import JobEvent
from jobs.pipelines import EventType as E
from jobs.pipelines import Status

from ..api.builders import (  # noqa: F401  (shared job builders)
    WORKER, append, compiled, done_job, error_job, gated, job_with_events, make_people, started, submitted,
    waiting_job,
)

ADMIN = "/admin/jobs/jobspec/"


def make_staff_people(make_user, django_user_model):
    """The API tests' people, all of them staff (a role alone does not open the admin)."""
    people = make_people(make_user, django_user_model)
    for user in (people.submitter, people.reviewer, people.operator, people.nobody):
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return people


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def job_page(job) -> str:
    return f"{ADMIN}{job.job_id}/change/"


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def event_count() -> int:
    return JobEvent.objects.count()


# -- a job in every status, through the services and the one append path -----------------------------------

def running_job(by, name: str = "running"):
    job = submitted(by, name)
    append(job.job_id, started("compile"))
    return job


def rejected_job(by, name: str = "rejected"):
    job = waiting_job(by, name)
    services.reject(job_id=job.job_id, step="runspec", actor=Actor.user("someone-else"), reason="not convinced")
    return job


def cancelled_job(by, name: str = "cancelled"):
    job = submitted(by, name)
    services.cancel(job_id=job.job_id, actor=Actor.user("someone-else"), reason="no longer needed")
    return job


def stopped_job(by, name: str = "stopped"):
    job = submitted(by, name)
    append(job.job_id, started("compile"),
           NewEvent(E.STOPPED_BUDGET, WORKER, step="compile",
                    payload={"reason": "max_jobs_per_root", "limit": {"max": 1}, "counters": {"jobs": 1}}))
    return job


def idea_waiting(by, name: str = "idea"):
    from ..api.builders import SNAPSHOT, an_idea

    job, _ = services.submit_idea(idea=an_idea(title=name), snapshot_id=SNAPSHOT, actor=Actor.user(by))
    append(job.job_id, started("intent"),
           NewEvent(E.BLUEPRINT_PROPOSED, WORKER, step="intent", payload={"artifacts": [], "summary": {}}),
           NewEvent(E.WAITING_APPROVAL, WORKER, step="blueprint", payload={"artifact_sha256": None}))
    return job


BY_STATUS = {
    Status.QUEUED: submitted,
    Status.RUNNING: running_job,
    Status.WAITING_APPROVAL: waiting_job,
    Status.DONE: done_job,
    Status.ERROR: error_job,
    Status.REJECTED: rejected_job,
    Status.CANCELLED: cancelled_job,
    Status.STOPPED_BUDGET: stopped_job,
}


def jobs_in_every_status(by) -> dict:
    """One job per status of jobs.pipelines.Status (every status must have a builder), plus an idea job."""
    assert set(BY_STATUS) == set(Status)
    jobs = {str(status): build(by, f"every-{status}") for status, build in BY_STATUS.items()}
    jobs["idea"] = idea_waiting(by, "every-idea")
    for status, job in jobs.items():
        job.refresh_from_db()
        assert status == "idea" or job.state.status == status
    return jobs
