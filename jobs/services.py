"""Every change a person or client can ask for: one function each, validated against the derived state.

The API, the admin, the /ui pages and the management commands call these and nothing else.
"""
from django.conf import settings
from django.db import IntegrityError, transaction

from contracts import canonical_json, content_id, sha256_hex, validate
from research.errors import SnapshotNotFound
from research.policies import four_eyes_required, policy_bundle_exists
from research.snapshots import get_snapshot

from .actors import Actor
from .errors import Conflict, Forbidden, InvalidInput, NotFound
from .ids import check_job_id, check_name_id
from .events import NewEvent, append_event, create_job, now, state_from_row
from .models import JobEvent, JobSpec, JobState
from .pipelines import SUBMIT_EVENTS, EventType, Kind, Status

_INPUT_CONTRACTS = {Kind.BLUEPRINT: ("blueprint", "blueprint_v1"), Kind.IDEA: ("idea", "idea_spec_v1")}


def get_job(job_id: str) -> JobSpec:
    check_job_id(job_id)
    try:
        return JobSpec.objects.select_related("state").get(job_id=job_id)
    except JobSpec.DoesNotExist:
        raise NotFound(f"job {job_id} not found", code="job_not_found") from None


def _validate_spec(spec) -> Kind:
    if not isinstance(spec, dict):
        raise InvalidInput("a job spec is a JSON object", code="invalid_job_spec", errors=[{"path": "", "message": "not an object"}])
    errors = validate("job_spec_v1", spec)
    if not errors:
        member, contract = _INPUT_CONTRACTS[Kind(spec["kind"])]
        errors = [{"path": f"/{member}{e['path']}", "message": e["message"]} for e in validate(contract, spec[member])]
    if errors:
        raise InvalidInput("the job spec breaks its contract", code="invalid_job_spec", errors=errors)
    if not policy_bundle_exists(spec["policy_bundle_id"]):
        raise InvalidInput(
            f"unknown policy bundle {spec['policy_bundle_id']}", code="unknown_policy_bundle",
            errors=[{"path": "/policy_bundle_id", "message": "no such policy bundle"}],
        )
    try:
        get_snapshot(spec["snapshot_id"])  # refused here rather than as an ERROR at compile
    except SnapshotNotFound:
        raise InvalidInput(
            f"unknown snapshot {spec['snapshot_id']}", code="unknown_snapshot",
            errors=[{"path": "/snapshot_id", "message": "no such data snapshot (see GET /snapshots)"}],
        ) from None
    return Kind(spec["kind"])


def submit_job_spec(*, spec: dict, actor: Actor, lineage_allowed: bool = False) -> tuple[JobSpec, bool]:
    """Submit a full job spec; the same content returns the existing job (created False) and writes nothing.

    `extensions.lineage` places a job under another job's root (budgets, trial counts for the deflated
    Sharpe ratio): only spawning sets it (`lineage_allowed`), never a client.
    """
    kind = _validate_spec(spec)
    if (spec.get("extensions") or {}).get("lineage") is not None and not lineage_allowed:
        raise InvalidInput(
            "extensions.lineage is set by spawning a child job, not by a client", code="lineage_reserved",
            errors=[{"path": "/extensions/lineage", "message": "reserved"}],
        )
    job_id = content_id(spec)
    existing = JobSpec.objects.filter(job_id=job_id).first()
    if existing is not None:
        return existing, False
    lineage = (spec.get("extensions") or {}).get("lineage") or {}
    member = _INPUT_CONTRACTS[kind][0]
    created_at = now()
    job = JobSpec(
        job_id=job_id, kind=kind.value, spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
        snapshot_id=spec["snapshot_id"], policy_bundle_id=spec["policy_bundle_id"],
        root_job_id=lineage.get("root_job_id", job_id), parent_job_id=lineage.get("parent_job_id"),
        generation=lineage.get("generation", 0), created_at=created_at, submitted_by=actor.id,
    )
    submit = NewEvent(
        SUBMIT_EVENTS[kind], actor,
        payload={"submitter": actor.id, "inputs_sha256": sha256_hex(canonical_json(spec[member]))},
    )
    try:
        with transaction.atomic():
            create_job(spec=job, submit_event=submit)
    except IntegrityError:
        # Someone submitted the same content at the same moment: theirs is the job.
        existing = JobSpec.objects.filter(job_id=job_id).first()
        if existing is None:
            raise
        return existing, False
    return job, True


def _job_spec(kind: Kind, member: str, document, snapshot_id, policy_bundle_id, extensions) -> dict:
    snapshot_id = snapshot_id or settings.EAM_DEFAULT_SNAPSHOT_ID
    if not snapshot_id:
        raise InvalidInput(
            "snapshot_id is required (no EAM_DEFAULT_SNAPSHOT_ID is set)", code="snapshot_id_required",
            errors=[{"path": "/snapshot_id", "message": "required"}],
        )
    spec = {
        "schema_version": "job_spec_v1",
        "kind": kind.value,
        "snapshot_id": check_name_id(snapshot_id, what="snapshot_id", path="/snapshot_id"),
        "policy_bundle_id": check_name_id(
            policy_bundle_id or settings.EAM_DEFAULT_POLICY_BUNDLE_ID, what="policy_bundle_id", path="/policy_bundle_id"
        ),
        member: document,
    }
    if extensions:
        spec["extensions"] = extensions
    return spec


def submit_blueprint(
    *, blueprint: dict, actor: Actor, snapshot_id: str | None = None, policy_bundle_id: str | None = None,
    extensions: dict | None = None, lineage_allowed: bool = False,
) -> tuple[JobSpec, bool]:
    spec = _job_spec(Kind.BLUEPRINT, "blueprint", blueprint, snapshot_id, policy_bundle_id, extensions)
    return submit_job_spec(spec=spec, actor=actor, lineage_allowed=lineage_allowed)


def submit_idea(
    *, idea: dict, actor: Actor, snapshot_id: str | None = None, policy_bundle_id: str | None = None,
    extensions: dict | None = None, lineage_allowed: bool = False,
) -> tuple[JobSpec, bool]:
    spec = _job_spec(Kind.IDEA, "idea", idea, snapshot_id, policy_bundle_id, extensions)
    return submit_job_spec(spec=spec, actor=actor, lineage_allowed=lineage_allowed)


def _decision_checks(job: JobSpec, state: JobState, step: str, actor: Actor) -> None:
    if state.status != Status.WAITING_APPROVAL or state.waiting_step != step:
        where = f"waiting at {state.waiting_step}" if state.waiting_step else state.status
        raise Conflict(f"job {job.job_id} is not waiting at {step} ({where})", code="not_waiting")
    if four_eyes_required(job.policy_bundle_id) and actor.id == job.submitted_by:
        raise Forbidden("four eyes: the submitter of a job may not decide its checkpoints", code="four_eyes")


def approve(
    *, job_id: str, step: str, actor: Actor, comment: str = "", artifact_sha256: str | None = None
) -> JobEvent:
    """Approve the checkpoint the job waits at; a stale artifact sha256 or a second decision is a Conflict."""
    with transaction.atomic():
        job = get_job(job_id)
        state = job.state
        _decision_checks(job, state, step, actor)
        if artifact_sha256 is not None and artifact_sha256 != state.review_sha256:
            raise Conflict(
                f"stale review: the {step} artifact under review is {state.review_sha256}, not {artifact_sha256}",
                code="stale_review",
            )
        event = NewEvent(
            EventType.APPROVED, actor, step=step,
            payload={"comment": comment or "", "artifact_sha256": state.review_sha256},
        )
        return append_event(job_id=job_id, expected_seq=state.last_seq + 1, event=event, state=state_from_row(state))


def reject(*, job_id: str, step: str, actor: Actor, reason: str) -> JobEvent:
    """Reject the checkpoint the job waits at; the job ends. A reason is required."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a rejection needs a reason", code="reason_required",
                           errors=[{"path": "/reason", "message": "required, not blank"}])
    with transaction.atomic():
        job = get_job(job_id)
        state = job.state
        _decision_checks(job, state, step, actor)
        event = NewEvent(EventType.REJECTED, actor, step=step, payload={"reason": reason.strip()})
        return append_event(job_id=job_id, expected_seq=state.last_seq + 1, event=event, state=state_from_row(state))


def cancel(*, job_id: str, actor: Actor, reason: str = "") -> JobEvent:
    """Cancel a job that has not ended; a worker running it cannot write its result afterwards."""
    with transaction.atomic():
        job = get_job(job_id)
        state = job.state
        if state.status in (Status.DONE, Status.REJECTED, Status.CANCELLED, Status.STOPPED_BUDGET):
            raise Conflict(f"job {job_id} has already ended ({state.status})", code="job_ended")
        event = NewEvent(EventType.CANCELLED, actor, payload={"reason": reason or "", "operator": actor.id})
        return append_event(job_id=job_id, expected_seq=state.last_seq + 1, event=event, state=state_from_row(state))


def retry(*, job_id: str, actor: Actor, reason: str = "") -> JobEvent:
    """Make a job in ERROR runnable again, from the step that failed, with a fresh attempt count."""
    with transaction.atomic():
        job = get_job(job_id)
        state = job.state
        if state.status != Status.ERROR:
            raise Conflict(f"only a job in error can be retried; job {job_id} is {state.status}", code="not_in_error")
        event = NewEvent(EventType.RETRY_REQUESTED, actor, payload={"reason": reason or "", "operator": actor.id})
        return append_event(job_id=job_id, expected_seq=state.last_seq + 1, event=event, state=state_from_row(state))
