"""Builders for API tests: people in each role with tokens, jobs in each state, clients and assertions."""
from dataclasses import dataclass

from django.apps import apps
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.events import Actor
from jobs.events import NewEvent
from jobs.models import JobEvent, JobSpec
from jobs.pipelines import EventType as E
from jobs.roles import ensure_roles

from ..jobs.factories import WORKER, append, started  # noqa: F401  (shared job builders)

SNAPSHOT = "api_snap"
TINY_SNAPSHOT = "api_tiny"


def a_blueprint(name: str = "api test", fast: int = 10, slow: int = 50, symbols=("AAA", "BBB")) -> dict:
    return {
        "schema_version": "blueprint_v1",
        "name": name,
        "strategy": {"family": "sma_crossover", "params": {"fast": fast, "slow": slow}},
        "universe": {"symbols": list(symbols)},
        "costs": {"fee_bps": 5, "slippage_bps": 5},
        "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
    }


def an_idea(title: str = "Momentum") -> dict:
    return {
        "schema_version": "idea_spec_v1",
        "title": title,
        "hypothesis": "Twelve-month winners keep winning for a month.",
        "universe": {"symbols": ["AAA", "BBB"]},
    }


def a_job_spec(name: str = "api spec") -> dict:
    return {
        "schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": SNAPSHOT,
        "policy_bundle_id": "default_v1", "blueprint": a_blueprint(name=name),
    }


def counts() -> tuple[int, int]:
    """(JobSpec rows, JobEvent rows): what a refused request must leave unchanged."""
    return JobSpec.objects.count(), JobEvent.objects.count()


# -- jobs in each state, through the services and the one append path ----------------------------------------

def submitted(by, name: str = "job") -> JobSpec:
    job, _ = services.submit_blueprint(blueprint=a_blueprint(name=name), snapshot_id=SNAPSHOT, actor=Actor.user(by))
    return job


def failed(step: str, attempt: int) -> NewEvent:
    return NewEvent(E.STEP_FAILED, WORKER, step=step,
                    payload={"attempt": attempt, "error_class": "Flaky", "message": "try again", "retryable": True})


def compiled(job_id: str, run_id: str = "0123456789ab", sha: str = "a" * 64) -> NewEvent:
    artifact = {"path": f"jobs/{job_id}/outputs/runspec.json", "sha256": sha, "bytes": 10}
    return NewEvent(E.RUNSPEC_COMPILED, WORKER, step="compile",
                    payload={"artifacts": [artifact], "summary": {"run_id": run_id}})


def waiting_job(by, name: str = "waiting", sha: str = "a" * 64) -> JobSpec:
    job = submitted(by, name)
    append(job.job_id, started("compile"), compiled(job.job_id, sha=sha),
           NewEvent(E.WAITING_APPROVAL, WORKER, step="runspec", payload={"artifact_sha256": sha}))
    return job


def error_job(by, name: str = "broken") -> JobSpec:
    job = submitted(by, name)
    append(job.job_id, started("compile"),
           NewEvent(E.ERROR, WORKER, step="compile", payload={"error_class": "CompileError", "message": "no"}))
    return job


def gated(verdict: str) -> NewEvent:
    return NewEvent(E.GATES_COMPLETED, WORKER, step="gates", payload={"artifacts": [], "summary": {"verdict": verdict}})


def done_job(by, name: str = "done", verdict: str = "PASS") -> JobSpec:
    """Approved by someone else, run, gated with `verdict`, registered, DONE."""
    job = waiting_job(by, name)
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user("someone-else"))
    append(job.job_id,
           started("run"), NewEvent(E.RUN_COMPLETED, WORKER, step="run", payload={"artifacts": [], "summary": {}}),
           started("gates"), gated(verdict),
           started("registry"), NewEvent(E.REGISTRY_UPDATED, WORKER, step="registry",
                                         payload={"artifacts": [], "summary": {"verdict": verdict}}),
           NewEvent(E.DONE, WORKER))
    return job


def job_with_events(by, total: int, name: str = "busy") -> JobSpec:
    """A job with exactly `total` events: failed attempts, then compiled and waiting at runspec."""
    job = submitted(by, name)
    cycles = (total - 4) // 2
    events = []
    for attempt in range(1, cycles + 1):
        events += [started("compile", attempt), failed("compile", attempt)]
    events += [started("compile", cycles + 1), compiled(job.job_id)]
    if (total - 4) % 2:
        events.append(NewEvent(E.RERUN_REQUESTED, WORKER, payload={"agent_id": "intent", "rerun_id": "r1"}))
    events.append(NewEvent(E.WAITING_APPROVAL, WORKER, step="runspec", payload={"artifact_sha256": "a" * 64}))
    append(job.job_id, *events)
    assert JobEvent.objects.filter(job_id=job.job_id).count() == total
    return job


# -- people --------------------------------------------------------------------------------------------------

@dataclass
class People:
    submitter: object
    reviewer: object
    operator: object
    superuser: object
    nobody: object


def make_people(make_user, django_user_model) -> People:
    ensure_roles(apps)  # a transactional test's flush removed the groups the migration made
    admin = django_user_model.objects.create_superuser(username="root", password="root-pass-123", email="r@x.org")
    return People(
        submitter=make_user("sam", "submitters"),
        reviewer=make_user("rita", "reviewers"),
        operator=make_user("otto", "operators"),
        superuser=admin,
        nobody=make_user("nina"),
    )


def client_for(user=None) -> APIClient:
    """A client that authenticates with the user's DRF token (or anonymous)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def post_json(client, url: str, body=None, **extra):
    import json

    data = json.dumps(body).encode()
    return client.generic("POST", url, data, content_type="application/json", **extra)


def assert_error(response, status: int, code: str):
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body




# -- a real run: tiny snapshot, compiled runspec, dossier written by the research kernel -----------------------

def ran_job(submitter, reviewer, name: str = "ran") -> tuple[JobSpec, str]:
    """A blueprint job whose runspec was approved and whose run completed: (job, run_id)."""
    from research.artifacts import write_json_artifact
    from research.compiler import compile_blueprint
    from research.demo_data import demo_csv
    from research.dossier import run_dossier
    from research.registry import record_trial
    from research.snapshots import ingest_csv

    data = demo_csv(TINY_SNAPSHOT, symbols=("AAA", "BBB"), start="2019-01-01", end="2023-01-01")
    ingest_csv(snapshot_id=TINY_SNAPSHOT, data=data, source="api tests")
    blueprint = a_blueprint(name=name, fast=5, slow=20)
    job, _ = services.submit_blueprint(blueprint=blueprint, snapshot_id=TINY_SNAPSHOT, actor=Actor.user(submitter))
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id=TINY_SNAPSHOT, policy_bundle_id="default_v1")
    ref = write_json_artifact(f"jobs/{job.job_id}/outputs/runspec.json", runspec).as_dict()
    append(job.job_id, started("compile"),
           NewEvent(E.RUNSPEC_COMPILED, WORKER, step="compile", payload={"artifacts": [ref], "summary": {"run_id": run_id}}),
           NewEvent(E.WAITING_APPROVAL, WORKER, step="runspec", payload={"artifact_sha256": ref["sha256"]}))
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(reviewer), artifact_sha256=ref["sha256"])
    result = run_dossier(runspec)
    append(job.job_id, started("run"),
           NewEvent(E.RUN_COMPLETED, WORKER, step="run",
                    payload={"artifacts": [r.as_dict() for r in result.artifacts], "summary": result.summary}))
    record_trial(job_id=job.job_id, root_job_id=job.root_job_id, run_id=run_id, runspec=runspec, verdict="PASS",
                 metrics=result.summary["oos"])
    return job, run_id
