"""Builders for jobs and their events in the real database, written through the one append path."""
from django.db import connection

from contracts import canonical_json, content_id, sha256_hex
from jobs.events import Actor
from jobs.events import NewEvent, append_events, create_job, now
from jobs.models import JobEvent, JobSpec, JobState
from jobs.pipelines import EventType as E

SHA_A = "a" * 64
SHA_B = "b" * 64
WORKER = Actor.worker("worker-1")


def a_blueprint(fast: int = 10, slow: int = 50, symbols=("SPY",)) -> dict:
    return {
        "schema_version": "blueprint_v1",
        "strategy": {"family": "sma_crossover", "params": {"fast": fast, "slow": slow}},
        "universe": {"symbols": list(symbols)},
        "evaluation": {"protocol": "walk_forward"},
    }


def an_idea(title: str = "Momentum in large caps") -> dict:
    return {
        "schema_version": "idea_spec_v1",
        "title": title,
        "hypothesis": "Twelve-month winners keep winning for a month.",
        "universe": {"symbols": ["SPY", "QQQ"]},
    }


def new_blueprint_job(*, submitter: str = "alice", fast: int = 10) -> JobSpec:
    """A blueprint job with its submit event, created by `jobs.events.create_job` (no policy lookup)."""
    spec = {
        "schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": "demo_snapshot",
        "policy_bundle_id": "default_v1", "blueprint": a_blueprint(fast=fast),
    }
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


def given_snapshot(snapshot_id: str = "demo_snapshot") -> str:
    """Ingest a small synthetic data snapshot: a submission must name one that exists. Returns its id."""
    from research.demo_data import demo_csv
    from research.snapshots import ingest_csv

    data = demo_csv(snapshot_id, symbols=("AAA", "BBB"), start="2023-01-02", end="2023-02-01")
    ingest_csv(snapshot_id=snapshot_id, data=data, source="tests")
    return snapshot_id


def append(job_id: str, *events: NewEvent) -> list[JobEvent]:
    """Append `events` after the job's last event, as one batch."""
    last = JobState.objects.values_list("last_seq", flat=True).get(job_id=job_id)
    rows, _ = append_events(job_id=job_id, expected_seq=last + 1, events=list(events))
    return rows


def started(step: str, attempt: int = 1) -> NewEvent:
    return NewEvent(
        E.STEP_STARTED, WORKER, step=step,
        payload={"attempt": attempt, "worker": WORKER.id, "lease_expires_at": "2030-01-01T00:00:00.000000Z"},
    )


def completed(etype: E, step: str) -> NewEvent:
    return NewEvent(etype, WORKER, step=step, payload={"artifacts": [], "summary": {}})


def waiting(checkpoint: str, sha: str = SHA_A) -> NewEvent:
    return NewEvent(E.WAITING_APPROVAL, WORKER, step=checkpoint, payload={"artifact_sha256": sha})


def rerun(proc: str, i: int) -> NewEvent:
    return NewEvent(E.RERUN_REQUESTED, WORKER, payload={"agent_id": "intent", "rerun_id": f"{proc}-{i}"})


def to_runspec_review(job_id: str, sha: str = SHA_A) -> None:
    """compile runs and succeeds; the runspec checkpoint opens with `sha` under review."""
    append(job_id, started("compile"), completed(E.RUNSPEC_COMPILED, "compile"), waiting("runspec", sha))


def to_error(job_id: str) -> None:
    append(
        job_id, started("compile"),
        NewEvent(E.ERROR, WORKER, step="compile", payload={"error_class": "CompileError", "message": "bad params"}),
    )


def to_done(job_id: str, reviewer: str = "bob") -> None:
    """The whole blueprint pipeline, then DONE."""
    to_runspec_review(job_id)
    append(
        job_id,
        NewEvent(E.APPROVED, Actor.user(reviewer), step="runspec", payload={"comment": "", "artifact_sha256": SHA_A}),
        started("run"), completed(E.RUN_COMPLETED, "run"),
        started("gates"), completed(E.GATES_COMPLETED, "gates"),
        started("registry"), completed(E.REGISTRY_UPDATED, "registry"),
        NewEvent(E.DONE, WORKER),
    )


def table_rows(table: str) -> list[tuple]:
    """Every row of `table` as raw tuples, in primary key order: what the database really holds."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
        return [tuple(row) for row in cursor.fetchall()]


def store_snapshot() -> dict:
    """The whole event store, to compare before and after something that must write nothing."""
    return {t: table_rows(t) for t in ("jobs_jobspec", "jobs_jobevent", "jobs_jobstate")}
