"""Every change a person or client can ask for: one function each, validated against the derived state.

The API, the admin, the /ui pages and the management commands call these and nothing else.
"""
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError

from contracts import CONTENT_ID, NAME_ID, canonical_json, content_id, sha256_hex, validate
from research.agents import DEFAULT_PROMPT_VERSIONS, load_prompt
from research.artifacts import read_json_artifact, write_json_artifact
from research.errors import ResearchError, SnapshotNotFound
from research.policies import bundle_requires_four_eyes, policy_bundle_exists
from research.snapshots import get_snapshot

from .events import Actor
from . import approvals, events
from .errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from .events import NewEvent, append_event, now
from .state import state_from_row
from .models import JobEvent, JobSpec, JobState
from .pipelines import TERMINAL_STATUSES, EventType, Kind, Status
from .roles import APPROVE, OPERATE, OVERRIDE, RERUN

# -- ids: every id that reaches a URL or a path is checked against its allowlist before any lookup ------------

def check_job_id(job_id) -> str:
    if not isinstance(job_id, str) or not CONTENT_ID.fullmatch(job_id):
        raise NotFound("no such job: a job id is 12 lowercase hex characters", code="invalid_job_id")
    return job_id


def check_name_id(value, *, what: str, path: str) -> str:
    """Snapshot, policy bundle and agent ids."""
    if not isinstance(value, str) or not NAME_ID.fullmatch(value):
        raise InvalidInput(
            f"invalid {what}", code=f"invalid_{what}",
            errors=[{"path": path, "message": f"must match {NAME_ID.pattern}"}],
        )
    return value


_INPUT_CONTRACTS = {Kind.BLUEPRINT: ("blueprint", "blueprint_v1"), Kind.IDEA: ("idea", "idea_spec_v1")}


def get_job(job_id: str) -> JobSpec:
    check_job_id(job_id)
    try:
        return JobSpec.objects.select_related("state").get(job_id=job_id)
    except JobSpec.DoesNotExist:
        raise NotFound(f"job {job_id} not found", code="job_not_found") from None


def validate_spec(spec) -> Kind:
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
    kind = validate_spec(spec)
    pins = prompt_pins(spec) if kind == Kind.IDEA else None
    if (spec.get("extensions") or {}).get("lineage") is not None and not lineage_allowed:
        raise InvalidInput(
            "extensions.lineage is set by spawning a child job, not by a client", code="lineage_reserved",
            errors=[{"path": "/extensions/lineage", "message": "reserved"}],
        )
    job_id = content_id(spec)
    existing = JobSpec.objects.filter(job_id=job_id).first()
    if existing is not None:
        return existing, False
    rules = approvals.rules_for(kind, spec["policy_bundle_id"])
    approvals.check_rules_can_be_met(rules, policy_bundle_id=spec["policy_bundle_id"], submitter=actor.id)
    lineage = (spec.get("extensions") or {}).get("lineage") or {}
    member = _INPUT_CONTRACTS[kind][0]
    created_at = now()
    job = JobSpec(
        job_id=job_id, kind=kind.value, spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
        snapshot_id=spec["snapshot_id"], policy_bundle_id=spec["policy_bundle_id"],
        root_job_id=lineage.get("root_job_id", job_id), parent_job_id=lineage.get("parent_job_id"),
        generation=lineage.get("generation", 0), created_at=created_at, submitted_by=actor.id,
    )
    # An idea job's prompt pins are fixed now, as an artifact its submit event records: every agent run of the
    # job uses these versions, whatever the defaults are when it runs. Write-once: the same bytes are a no-op.
    pins_ref = write_json_artifact(prompt_pins_path(job_id), pins).as_dict() if pins is not None else None
    submit = events.submitted(kind, actor=actor, inputs_sha256=sha256_hex(canonical_json(spec[member])),
                              prompt_pins=pins_ref, approval_rules=rules)
    try:
        events.create_job(spec=job, submit_event=submit)
    except IntegrityError:
        # Someone submitted the same content at the same moment: theirs is the job.
        existing = JobSpec.objects.filter(job_id=job_id).first()
        if existing is None:
            raise
        return existing, False
    return job, True


PROMPT_PINS_SCHEMA = "prompt_pins_v1"


def prompt_pins_path(job_id: str) -> str:
    return f"jobs/{job_id}/outputs/agents/prompt_pins.json"


def prompt_pins(spec: dict) -> dict:
    """The prompt each agent of an idea job uses: `extensions.prompt_pins` ({agent_id: version}) where given,
    else the current default, each with the sha256 of its file. An unknown agent or version is refused."""
    given = (spec.get("extensions") or {}).get("prompt_pins") or {}
    if not isinstance(given, dict):
        raise InvalidInput("extensions.prompt_pins maps agent ids to prompt versions", code="invalid_prompt_pins",
                           errors=[{"path": "/extensions/prompt_pins", "message": "not an object"}])
    errors = [{"path": f"/extensions/prompt_pins/{agent_id}", "message": "no such agent"}
              for agent_id in sorted(given) if agent_id not in DEFAULT_PROMPT_VERSIONS]
    agents = {}
    for agent_id, default in DEFAULT_PROMPT_VERSIONS.items():
        version = given.get(agent_id, default)
        try:
            prompt = load_prompt(agent_id, version if isinstance(version, str) else "")
        except ResearchError:
            errors.append({"path": f"/extensions/prompt_pins/{agent_id}", "message": "no such prompt version"})
            continue
        agents[agent_id] = {"version": prompt.version, "sha256": prompt.sha256,
                            "source": "extensions" if agent_id in given else "default"}
    if errors:
        raise InvalidInput("extensions.prompt_pins names an unknown agent or prompt version",
                           code="invalid_prompt_pins", errors=errors)
    return {"schema": PROMPT_PINS_SCHEMA, "agents": agents}


def make_job_spec(kind: Kind, member: str, document, snapshot_id, policy_bundle_id, extensions) -> dict:
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
    spec = make_job_spec(Kind.BLUEPRINT, "blueprint", blueprint, snapshot_id, policy_bundle_id, extensions)
    return submit_job_spec(spec=spec, actor=actor, lineage_allowed=lineage_allowed)


def submit_idea(
    *, idea: dict, actor: Actor, snapshot_id: str | None = None, policy_bundle_id: str | None = None,
    extensions: dict | None = None, lineage_allowed: bool = False,
) -> tuple[JobSpec, bool]:
    spec = make_job_spec(Kind.IDEA, "idea", idea, snapshot_id, policy_bundle_id, extensions)
    return submit_job_spec(spec=spec, actor=actor, lineage_allowed=lineage_allowed)


def _command(job_id: str, decide: Callable[[JobSpec, JobState], NewEvent], *, tries: int = 1) -> JobEvent:
    """The skeleton of every command on an existing job: load it with its state, let `decide` check the state
    and build the event (or raise), append it fenced by the seq read. No transaction is needed: if anything
    was appended since the read, the append is refused with `seq_conflict` and nothing is written. With `tries`,
    a refused append is decided again on what was appended meanwhile (reviewers approving at the same moment
    each count, or each learn that the rule was met), up to that many times."""
    for attempt in range(1, tries + 1):
        job = get_job(job_id)
        event = decide(job, job.state)
        try:
            return append_event(job_id=job_id, expected_seq=job.state.last_seq + 1, event=event,
                                state=state_from_row(job.state))
        except Conflict as conflict:
            if conflict.code != "seq_conflict" or attempt == tries:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def four_eyes_applies(policy_bundle_id: str) -> bool:
    """Four eyes (the submitter of a job may not decide its checkpoints) applies when the deployment
    (EAM_FOUR_EYES) or the job's policy bundle asks for it: stricter wins."""
    return settings.EAM_FOUR_EYES or bundle_requires_four_eyes(policy_bundle_id)


def allowed_actions(*, status: str, submitted_by: str, policy_bundle_id: str, user, held: dict | None = None) -> dict:
    """What `user` may do to a job (its status, submitter, policy bundle) now: the same rules the services
    enforce, asked without trying. `held` answers `perm -> bool` where the caller read it already
    (`roles.held_by`); otherwise permissions are looked up, only where the state allows the action at all."""
    signed_in = bool(user and user.is_authenticated)

    def holds(perm: str) -> bool:
        return held[perm] if held is not None else user.has_perm(perm)

    may_decide = (
        signed_in and status == Status.WAITING_APPROVAL and holds(APPROVE)
        and not (four_eyes_applies(policy_bundle_id) and user.get_username() == submitted_by)
    )
    may_operate = signed_in and status not in TERMINAL_STATUSES and holds(OPERATE)
    # An agent rerun is asked for while the job waits or after it ended (jobs/reruns.py).
    may_rerun = signed_in and (status == Status.WAITING_APPROVAL or status in TERMINAL_STATUSES) and holds(RERUN)
    may_override = (signed_in and status == Status.WAITING_APPROVAL and user.get_username() != submitted_by
                    and holds(OVERRIDE))
    return {
        "can_approve": may_decide,
        "can_reject": may_decide,
        "can_retry": may_operate and status == Status.ERROR,
        "can_cancel": may_operate,
        "can_rerun": may_rerun,
        "can_override": may_override,
    }


def _check_decision(job: JobSpec, state: JobState, step: str, actor: Actor) -> None:
    if state.status != Status.WAITING_APPROVAL or state.waiting_step != step:
        where = f"waiting at {state.waiting_step}" if state.waiting_step else state.status
        raise Conflict(f"job {job.job_id} is not waiting at {step} ({where})", code="not_waiting")
    if (four_eyes_applies(job.policy_bundle_id) or _ruled(state)) and actor.id == job.submitted_by:
        raise Forbidden("four eyes: the submitter of a job may not decide its checkpoints", code="four_eyes")


def _ruled(state: JobState):
    """The derived state when the checkpoint the job waits at has an approval rule (jobs.approvals), else None.
    Without rules in its policy bundle a job's row has no `review`: nothing to derive."""
    derived = state_from_row(state) if state.review is not None else None
    return derived if derived is not None and derived.rule is not None else None


def _counts_for(job: JobSpec, state: JobState, actor: Actor) -> tuple[str | None, bool]:
    """Under the open checkpoint's approval rule, the group this approval fills (see jobs.approvals)."""
    derived = _ruled(state)
    if derived is None:
        return None, False
    return approvals.counts_for(derived, actor=actor, submitter=job.submitted_by, user=_user_named(actor))


def _user_named(actor: Actor):
    if actor.kind != "user":
        return None
    return get_user_model().objects.filter(username=actor.id).first()


# Reviewers approving the same checkpoint at once each get a turn: at most one more try per approval a rule can ask.
APPROVAL_TRIES = 25


IMPROVEMENTS = "improvements"  # the checkpoint whose approval may accept a subset of the proposals


def approve(
    *, job_id: str, step: str, actor: Actor, comment: str = "", artifact_sha256: str | None = None,
    accept: list[str] | None = None,
) -> JobEvent:
    """Approve the checkpoint the job waits at; a stale artifact sha256 or a second decision is a Conflict.
    At `improvements`, `accept` names the proposals to spawn (default: all of them); the event records them."""
    if accept is not None and step != IMPROVEMENTS:
        raise InvalidInput("only an approval of improvements accepts proposals", code="accept_not_allowed",
                           errors=[{"path": "/accept", "message": f"not allowed at {step}"}])

    def decide(job, state):
        _check_decision(job, state, step, actor)
        if state.reruns:
            raise Conflict(f"job {job_id} has an agent rerun pending: decide once its output is known",
                           code="rerun_pending")
        if artifact_sha256 is not None and artifact_sha256 != state.review_sha256:
            raise Conflict(
                f"stale review: the {step} artifact under review is {state.review_sha256}, not {artifact_sha256}",
                code="stale_review",
            )
        group, via_escalation = _counts_for(job, state, actor)
        accepted = _accepted_proposals(job, state, accept) if step == IMPROVEMENTS else None
        return events.approved(step=step, actor=actor, comment=comment, artifact_sha256=state.review_sha256,
                               accepted=accepted, counts_for=group, via_escalation=via_escalation)

    return _command(job_id, decide, tries=APPROVAL_TRIES)


def proposals_under_review(job: JobSpec, state: JobState) -> list[dict]:
    """The proposals the job's `improvements` checkpoint reviews: the file its WAITING_APPROVAL named, checked
    against the sha256 under review."""
    waiting = (JobEvent.objects.filter(job_id=job.job_id, event_type=str(EventType.WAITING_APPROVAL))
               .order_by("-seq").values_list("payload", flat=True).first()) or {}
    try:
        output = read_json_artifact(waiting.get("artifact_path") or "", sha256=state.review_sha256)
    except ResearchError as exc:
        raise Conflict(f"the proposals under review cannot be read: {exc}", code="review_unreadable") from exc
    return output["proposals"]


def _accepted_proposals(job: JobSpec, state: JobState, accept: list[str] | None) -> list[str]:
    """The accepted proposal ids in the proposals' own (ranked) order; an id that is not proposed is refused."""
    ids = [proposal["proposal_id"] for proposal in proposals_under_review(job, state)]
    if accept is None:
        return ids
    unknown = [{"path": f"/accept/{i}", "message": "no such proposal under review"}
               for i, proposal_id in enumerate(accept) if proposal_id not in ids]
    if unknown:
        raise InvalidInput("accept names a proposal that is not under review", code="unknown_proposal",
                           errors=unknown)
    return [proposal_id for proposal_id in ids if proposal_id in set(accept)]


def reject(*, job_id: str, step: str, actor: Actor, reason: str = "") -> JobEvent:
    """Reject the checkpoint the job waits at; the job ends. A reason is required."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a rejection needs a reason", code="reason_required",
                           errors=[{"path": "/reason", "message": "required, not blank"}])

    def decide(job, state):
        _check_decision(job, state, step, actor)
        derived = _ruled(state)
        if derived is not None:
            approvals.check_may_reject(derived, user=_user_named(actor))
        return events.rejected(step=step, actor=actor, reason=reason.strip())

    return _command(job_id, decide)


def override(*, job_id: str, step: str, actor: Actor, reason: str = "") -> JobEvent:
    """Break-glass: open the checkpoint the job waits at without the approvals its rule asks for. Its own
    permission (roles.OVERRIDE, checked by the interfaces like every permission), a required reason, its own
    event (APPROVAL_OVERRIDDEN); never by the job's submitter, and not while an agent rerun is pending."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("an override needs a reason", code="reason_required",
                           errors=[{"path": "/reason", "message": "required, not blank"}])

    def decide(job, state):
        _check_decision(job, state, step, actor)
        if actor.id == job.submitted_by:
            raise Forbidden("the submitter of a job may not override its checkpoints", code="four_eyes")
        if state.reruns:
            raise Conflict(f"job {job_id} has an agent rerun pending: decide once its output is known",
                           code="rerun_pending")
        return events.approval_overridden(step=step, actor=actor, reason=reason.strip(),
                                          artifact_sha256=state.review_sha256)

    return _command(job_id, decide)


def cancel(*, job_id: str, actor: Actor, reason: str = "") -> JobEvent:
    """Cancel a job that has not ended; a worker running it cannot write its result afterwards."""
    def decide(job, state):
        if state.status in TERMINAL_STATUSES:
            raise Conflict(f"job {job_id} has already ended ({state.status})", code="job_ended")
        return events.cancelled(actor=actor, reason=reason)

    return _command(job_id, decide)


def retry(*, job_id: str, actor: Actor, reason: str = "") -> JobEvent:
    """Make a job in ERROR runnable again, from the step that failed, with a fresh attempt count."""
    def decide(job, state):
        if state.status != Status.ERROR:
            raise Conflict(f"only a job in error can be retried; job {job_id} is {state.status}", code="not_in_error")
        return events.retry_requested(actor=actor, reason=reason)

    return _command(job_id, decide)


# -- bulk approval (the admin's action) ---------------------------------------------------------------------------

APPROVED = "approved"
NOT_WAITING = "not_waiting"
FOUR_EYES = "four_eyes"
REFUSED = "refused"


@dataclass(frozen=True)
class Outcome:
    """What approving one job's pending checkpoint did: `kind` is one of the names above."""

    job_id: str
    kind: str
    step: str | None
    status: str
    detail: str


def approve_pending(*, jobs: list[JobSpec], actor: Actor, comment: str = "",
                    reviewed: dict[str, str] | None = None) -> list[Outcome]:
    """Approve the checkpoint each job (with its state loaded) waits at; one outcome per job, in the order
    given. `status` and `step` are as read; `approve` decides every case against the state it reads itself,
    so a checkpoint that changed since is refused, never approved unseen. `reviewed` maps a job id to the sha256
    the reviewer was shown: another one under review now (an agent rerun meanwhile) is refused as stale.
    """
    outcomes = []
    for job in jobs:
        state = job.state
        step = state.waiting_step or ""
        try:
            approve(job_id=job.job_id, step=step, actor=actor, comment=comment,
                    artifact_sha256=(reviewed or {}).get(job.job_id) or None)
        except DomainError as failure:
            kind = {"not_waiting": NOT_WAITING, "four_eyes": FOUR_EYES}.get(failure.code, REFUSED)
            outcomes.append(Outcome(job.job_id, kind, step or None, state.status, failure.detail))
        else:
            outcomes.append(Outcome(job.job_id, APPROVED, step, state.status, ""))
    return outcomes
