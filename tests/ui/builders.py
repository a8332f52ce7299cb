"""Builders for the /ui tests: a job in every status the pipelines define, and a DONE job with a real run."""
from django.test import Client

from jobs import services
from jobs.events import Actor
from jobs.events import NewEvent
from jobs.models import JobEvent, JobSpec, JobState
from jobs.pipelines import EventType as E
from jobs.pipelines import Status
from research.demo_data import demo_csv
from research.snapshots import ingest_csv
from workflow.orchestrator import WorkerConfig, run_pass

from ..api.builders import a_blueprint, an_idea, error_job, submitted, waiting_job
from ..jobs.factories import WORKER, append, completed, started, waiting

UI_SNAPSHOT = "ui_tiny"


def events_written() -> int:
    return JobEvent.objects.count()


def client_for(user=None) -> Client:
    """A client signed in by session (CSRF is not checked here; test_decisions checks it on its own)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def done_job_with_run(submitter, reviewer, name: str = "ui run") -> JobSpec:
    """A blueprint job taken to DONE by the engine: compiled, approved, run, gated, registered."""
    data = demo_csv(UI_SNAPSHOT, symbols=("AAA", "BBB"), start="2019-01-01", end="2023-01-01")
    ingest_csv(snapshot_id=UI_SNAPSHOT, data=data, source="ui tests")
    job, _ = services.submit_blueprint(blueprint=a_blueprint(name=name, fast=5, slow=20), snapshot_id=UI_SNAPSHOT,
                                       actor=Actor.user(submitter))
    worker = WorkerConfig(worker_id="ui-worker", lease_seconds=600, max_attempts=1, retry_backoff_seconds=0)
    run_pass(worker, job_ids=[job.job_id])
    state = JobState.objects.get(job_id=job.job_id)
    services.approve(job_id=job.job_id, step=state.waiting_step, actor=Actor.user(reviewer), comment="fine")
    run_pass(worker, job_ids=[job.job_id])
    state.refresh_from_db()
    assert state.status == Status.DONE, state.error
    return job


def run_id_of(job: JobSpec) -> str:
    compiled = JobEvent.objects.get(job_id=job.job_id, event_type=E.RUNSPEC_COMPILED)
    return compiled.payload["summary"]["run_id"]


def jobs_in_every_status(people) -> dict[str, JobSpec]:
    """One job per status of jobs.pipelines.Status (the DONE one with a real run), plus an idea at a checkpoint."""
    by = people.submitter
    jobs = {
        Status.QUEUED: submitted(by, "queued"),
        Status.WAITING_APPROVAL: waiting_job(by, "waiting"),
        Status.ERROR: error_job(by, "error"),
        Status.DONE: done_job_with_run(by, people.reviewer),
    }
    jobs[Status.RUNNING] = submitted(by, "running")
    append(jobs[Status.RUNNING].job_id, started("compile"))
    jobs[Status.REJECTED] = waiting_job(by, "rejected")
    services.reject(job_id=jobs[Status.REJECTED].job_id, step="runspec", actor=Actor.user(people.reviewer),
                    reason="not this one")
    jobs[Status.CANCELLED] = submitted(by, "cancelled")
    services.cancel(job_id=jobs[Status.CANCELLED].job_id, actor=Actor.user(people.operator), reason="no longer needed")
    jobs[Status.STOPPED_BUDGET] = submitted(by, "budget")
    append(jobs[Status.STOPPED_BUDGET].job_id, started("compile"),
           NewEvent(E.STOPPED_BUDGET, WORKER, step="compile",
                    payload={"reason": "max_jobs_per_root", "limit": {"max": 1}, "counters": {"jobs": 1}}))
    idea, _ = services.submit_idea(idea=an_idea("ui idea"), snapshot_id=UI_SNAPSHOT, actor=Actor.user(by))
    append(idea.job_id, started("intent"), completed(E.BLUEPRINT_PROPOSED, "intent"), waiting("blueprint"))
    jobs["idea_waiting"] = idea
    for status in Status:
        assert JobState.objects.get(job_id=jobs[status].job_id).status == status, status
    return jobs
