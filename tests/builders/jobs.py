"""Jobs in each state, built through the services and the one append path as the engine would leave them."""
from contracts import canonical_json, content_id, sha256_hex
from jobs import events, services
from jobs.events import Actor, NewEvent, create_job, now
from jobs.models import JobEvent, JobSpec, JobState
from jobs.pipelines import EventType as E
from jobs.pipelines import Kind, Status
from research.artifacts import write_json_artifact
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.registry import record_trial
from workflow.orchestrator import WorkerConfig, run_pass

from .snapshots import SNAPSHOT, TINY_SNAPSHOT, a_snapshot
from .documents import BARE, PIPELINE, TINY_SYMBOLS, a_blueprint, a_job_spec, an_idea
from .events import SHA_A, WORKER, append, compiled, completed, failed, gated, rerun, started, waiting
from .people import REVIEWER, as_actor

SOMEONE_ELSE = Actor.user("someone-else")  # who decides for a builder: never the submitter (four eyes)
# What the engine tests submit (`submitted(SUBMITTER, **TINY_RUN)`): buy and hold, quick to run, on the tiny snapshot.
TINY_RUN = {"family": "buy_and_hold", "snapshot_id": TINY_SNAPSHOT}


def new_blueprint_job(*, submitter: str = "alice", fast: int = 10) -> JobSpec:
    """A blueprint job with its submit event, created by `jobs.events.create_job` (no policy or snapshot lookup)."""
    spec = a_job_spec(a_blueprint(fast=fast, base=BARE))
    job_id = content_id(spec)
    job = JobSpec(
        job_id=job_id, kind="blueprint", spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
        snapshot_id=spec["snapshot_id"], policy_bundle_id=spec["policy_bundle_id"], root_job_id=job_id,
        created_at=now(), submitted_by=submitter,
    )
    create_job(
        spec=job,
        submit_event=NewEvent(
            E.BLUEPRINT_SUBMITTED, Actor.user(submitter),
            payload={"submitter": submitter, "inputs_sha256": sha256_hex(canonical_json(spec["blueprint"]))},
        ),
    )
    return job


def submitted(by, name: str = PIPELINE["name"], *, blueprint: dict | None = None, snapshot_id: str = SNAPSHOT,
              policy_bundle_id: str | None = None, **members) -> JobSpec:
    """A blueprint job submitted by `by` (a user, username or actor): `blueprint`, or else one named `name`
    with `members` (see a_blueprint)."""
    if blueprint is None:
        blueprint = a_blueprint(name=name, **members)
    job, _ = services.submit_blueprint(blueprint=blueprint, snapshot_id=snapshot_id,
                                       policy_bundle_id=policy_bundle_id, actor=as_actor(by))
    return job


# -- the events that take a job from one state to the next -----------------------------------------------------

def to_runspec_review(job_id: str, sha: str = SHA_A) -> None:
    """compile runs and succeeds; the runspec checkpoint opens with `sha` under review."""
    append(job_id, started("compile"), compiled(job_id, sha=sha), waiting("runspec", sha))


def to_error(job_id: str) -> None:
    append(job_id, started("compile"),
           NewEvent(E.ERROR, WORKER, step="compile", payload={"error_class": "CompileError", "message": "bad params"}))


def to_done(job_id: str, verdict: str = "PASS") -> None:
    """The whole blueprint pipeline: approved by someone else, run, gated with `verdict`, registered, DONE."""
    to_runspec_review(job_id)
    services.approve(job_id=job_id, step="runspec", actor=SOMEONE_ELSE)
    append(job_id, started("run"), completed(E.RUN_COMPLETED, "run"), started("gates"), gated(verdict),
           started("registry"), completed(E.REGISTRY_UPDATED, "registry", verdict=verdict), NewEvent(E.DONE, WORKER))


# -- a job in every status ---------------------------------------------------------------------------------------

def waiting_job(by, name: str = "waiting", *, sha: str = SHA_A, **submission) -> JobSpec:
    """Compiled and waiting at the runspec checkpoint with `sha` under review."""
    job = submitted(by, name, **submission)
    to_runspec_review(job.job_id, sha)
    return job


def running_job(by, name: str = "running") -> JobSpec:
    job = submitted(by, name)
    append(job.job_id, started("compile"))
    return job


def error_job(by, name: str = "error") -> JobSpec:
    job = submitted(by, name)
    to_error(job.job_id)
    return job


def done_job(by, name: str = "done", verdict: str = "PASS") -> JobSpec:
    """DONE with the gates' `verdict`, every step's result written directly (no files)."""
    job = submitted(by, name)
    to_done(job.job_id, verdict)
    return job


def rejected_job(by, name: str = "rejected") -> JobSpec:
    job = waiting_job(by, name)
    services.reject(job_id=job.job_id, step="runspec", actor=SOMEONE_ELSE, reason="not convinced")
    return job


def cancelled_job(by, name: str = "cancelled") -> JobSpec:
    job = submitted(by, name)
    services.cancel(job_id=job.job_id, actor=SOMEONE_ELSE, reason="no longer needed")
    return job


def stopped_job(by, name: str = "stopped") -> JobSpec:
    job = submitted(by, name)
    append(job.job_id, started("compile"),
           NewEvent(E.STOPPED_BUDGET, WORKER, step="compile",
                    payload={"reason": "max_jobs_per_root", "limit": {"max": 1}, "counters": {"jobs": 1}}))
    return job


def idea_waiting(by, name: str = "idea", *, snapshot_id: str = SNAPSHOT) -> JobSpec:
    """An idea job that waits at the blueprint checkpoint, stored through the append path itself (its events
    only: no prompt pins and no agent artifacts; tests/builders/ideas.py walks real idea jobs)."""
    actor = as_actor(by)
    idea = an_idea(name, symbols=TINY_SYMBOLS)
    spec = {"schema_version": "job_spec_v1", "kind": "idea", "snapshot_id": snapshot_id,
            "policy_bundle_id": "default_v1", "idea": idea}
    job_id = content_id(spec)
    job = JobSpec(job_id=job_id, kind="idea", spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
                  snapshot_id=snapshot_id, policy_bundle_id="default_v1", root_job_id=job_id, created_at=now(),
                  submitted_by=actor.id)
    create_job(spec=job, submit_event=events.submitted(Kind.IDEA, actor=actor,
                                                               inputs_sha256=sha256_hex(canonical_json(idea))))
    append(job.job_id, started("intent"), completed(E.BLUEPRINT_PROPOSED, "intent"), waiting("blueprint"))
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


def jobs_in_every_status(people, names: dict[str, str], *, real_run: bool = False,
                         idea_snapshot: str = SNAPSHOT) -> dict[str, JobSpec]:
    """One job per status of jobs.pipelines.Status (every status must have a builder) plus an idea waiting at its
    checkpoint ("idea_waiting"), all submitted by people.submitter; `names` names each. With `real_run`, the
    DONE job is one the engine took there, with a real dossier and gate results."""
    assert set(BY_STATUS) == set(Status) and set(names) == {*Status, "idea_waiting"}
    build = {**BY_STATUS, Status.DONE: done_job_with_run} if real_run else BY_STATUS
    by = people.submitter
    jobs = {str(status): build[status](by, names[status]) for status in Status}
    jobs["idea_waiting"] = idea_waiting(by, names["idea_waiting"], snapshot_id=idea_snapshot)
    for status in Status:
        assert JobState.objects.get(job_id=jobs[status].job_id).status == status, status
    return jobs


def job_with_events(by, total: int, name: str = "busy") -> JobSpec:
    """A job with exactly `total` events: failed attempts, then compiled and waiting at runspec."""
    job = submitted(by, name)
    cycles = (total - 4) // 2
    events = []
    for attempt in range(1, cycles + 1):
        events += [started("compile", attempt), failed("compile", attempt)]
    events += [started("compile", cycles + 1), compiled(job.job_id), waiting("runspec")]
    if (total - 4) % 2:
        events.append(rerun("r", 1))
    append(job.job_id, *events)
    assert JobEvent.objects.filter(job_id=job.job_id).count() == total
    return job


def approve_waiting(job_ids, by=REVIEWER) -> None:
    """Approve every one of `job_ids` that waits at a checkpoint."""
    for state in JobState.objects.filter(job_id__in=job_ids, status=Status.WAITING_APPROVAL):
        services.approve(job_id=state.job_id, step=state.waiting_step, actor=as_actor(by))


# -- real runs: a tiny snapshot, a compiled runspec, a dossier written by the research kernel --------------------

def ran_job(submitter, reviewer, name: str = "ran", *, snapshot_id: str = "api_tiny") -> tuple[JobSpec, str]:
    """A blueprint job whose runspec `reviewer` approved and whose run completed, its trial recorded as PASS;
    every step done here by hand, so it stops after RUN_COMPLETED: (job, run_id)."""
    a_snapshot(snapshot_id)
    blueprint = a_blueprint(name=name, fast=5, slow=20)
    job = submitted(submitter, blueprint=blueprint, snapshot_id=snapshot_id)
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id=snapshot_id, policy_bundle_id="default_v1")
    ref = write_json_artifact(f"jobs/{job.job_id}/outputs/runspec.json", runspec).as_dict()
    append(job.job_id, started("compile"),
           NewEvent(E.RUNSPEC_COMPILED, WORKER, step="compile",
                    payload={"artifacts": [ref], "summary": {"run_id": run_id}}),
           waiting("runspec", ref["sha256"]))
    services.approve(job_id=job.job_id, step="runspec", actor=as_actor(reviewer), artifact_sha256=ref["sha256"])
    result = run_dossier(runspec)
    append(job.job_id, started("run"),
           NewEvent(E.RUN_COMPLETED, WORKER, step="run",
                    payload={"artifacts": [r.as_dict() for r in result.artifacts], "summary": result.summary}))
    record_trial(job_id=job.job_id, root_job_id=job.root_job_id, run_id=run_id, runspec=runspec, verdict="PASS",
                 metrics=result.summary["oos"])
    return job, run_id


def done_job_with_run(by, name: str = "ui run", *, snapshot_id: str = "ui_tiny") -> JobSpec:
    """A blueprint job the engine took to DONE: compiled, approved by someone else, run, gated, registered."""
    a_snapshot(snapshot_id)
    job = submitted(by, name, fast=5, slow=20, snapshot_id=snapshot_id)
    worker = WorkerConfig(worker_id="ui-worker", lease_seconds=600, max_attempts=1, retry_backoff_seconds=0)
    run_pass(worker, job_ids=[job.job_id])
    state = JobState.objects.get(job_id=job.job_id)
    services.approve(job_id=job.job_id, step=state.waiting_step, actor=SOMEONE_ELSE, comment="fine")
    run_pass(worker, job_ids=[job.job_id])
    state.refresh_from_db()
    assert state.status == Status.DONE, state.error
    return job


def run_id_of(job: JobSpec) -> str:
    return JobEvent.objects.get(job_id=job.job_id, event_type=E.RUNSPEC_COMPILED).payload["summary"]["run_id"]
