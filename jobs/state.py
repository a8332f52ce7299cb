"""State derivation: a job's state is a pure fold over its events, with every illegal sequence refused.

`apply_event(state, event)` is the one transition function; `derive_state(events)` folds it from the
start. The append path uses the same function on the stored projection, so what the database holds is
always what the events say.
"""
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Mapping

from .pipelines import (
    PIPELINES,
    RERUN_STEP,
    RESULT_EVENTS,
    RUNNABLE_STATUSES,
    SUBMIT_EVENTS,
    TERMINAL_STATUSES,
    Checkpoint,
    EventType,
    Kind,
    Status,
    Step,
)

ZERO_HASH = "0" * 64


class IllegalTransition(Exception):
    """An event that cannot follow the job's current state."""


@dataclass(frozen=True)
class DerivedState:
    """What a job's events say about it now."""

    kind: Kind
    status: Status
    stage: int = 0
    next_step: str | None = None
    waiting_step: str | None = None
    review_sha256: str | None = None
    attempt: int = 0
    error: dict | None = None
    last_seq: int = 0
    last_event_type: str | None = None
    last_hash: str = ZERO_HASH
    available_at: str | None = None
    verdict: str | None = None  # PASS or FAIL of the latest gates step, None before one completed
    # Agent reruns asked for and not finished, oldest first: {agent_id, rerun_id, attempt, running}. They run in a
    # lane beside the pipeline, one at a time, while the job waits at a checkpoint or after it ended.
    reruns: tuple = ()
    # The approval rules the submit event fixed ({checkpoint: rule}; a checkpoint without one opens on one approval
    # by any reviewer), the open checkpoint's approvals so far ({actor, group}) and the group it was escalated to.
    rules: dict | None = None
    approvals: tuple = ()
    escalated_to: str | None = None

    @property
    def pipeline(self):
        return PIPELINES[self.kind]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def rule(self) -> dict | None:
        """The open checkpoint's approval rule, or None."""
        if self.status != Status.WAITING_APPROVAL or not self.rules:
            return None
        return self.rules.get(self.waiting_step)

    @property
    def running_step(self) -> str | None:
        """The step a worker holds now: the rerun at the head of the lane, or the pipeline's step."""
        if self.reruns and self.reruns[0]["running"]:
            return RERUN_STEP
        return self.next_step if self.status == Status.RUNNING else None


def initial_state(kind: Kind | str) -> DerivedState:
    """The state before the first event; only the kind's submit event may follow."""
    return DerivedState(kind=Kind(kind), status=Status.QUEUED)


def _at_stage(state: DerivedState, stage: int, **changes) -> DerivedState:
    """Move to `stage`: a step is due, a checkpoint is about to open, or the pipeline is complete."""
    pipeline = state.pipeline
    next_step = pipeline[stage].name if stage < len(pipeline) and isinstance(pipeline[stage], Step) else None
    return replace(
        state, stage=stage, status=Status.QUEUED, next_step=next_step, waiting_step=None, review_sha256=None,
        attempt=0, error=None, available_at=None, approvals=(), escalated_to=None, **changes,
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise IllegalTransition(message)


def _current_stage(state: DerivedState):
    return state.pipeline[state.stage] if state.stage < len(state.pipeline) else None


def apply_event(state: DerivedState, event: Mapping) -> DerivedState:
    """The state after `event` (a mapping with event_type, step, payload and seq), or IllegalTransition."""
    etype = EventType(event["event_type"])
    step = event.get("step")
    payload = event.get("payload") or {}
    seq = event.get("seq", state.last_seq + 1)
    _require(seq == state.last_seq + 1, f"seq {seq} does not follow {state.last_seq}")
    new = _next_state(state, etype, step, payload, event.get("actor") or {})
    return replace(new, last_seq=seq, last_event_type=etype.value, last_hash=event.get("hash") or state.last_hash)


def _next_state(state: DerivedState, etype: EventType, step: str | None, payload: Mapping,
                actor: Mapping) -> DerivedState:
    if state.last_seq == 0:
        _require(etype == SUBMIT_EVENTS[state.kind], f"a {state.kind} job starts with {SUBMIT_EVENTS[state.kind]}")
        return _at_stage(state, 0, rules=payload.get("approval_rules") or None)
    _require(etype not in SUBMIT_EVENTS.values(), f"{etype} may only be the first event")
    # The one event legal after the end: a manual spawn (POST /jobs/{id}/spawn) the budget refused, recorded
    # on its parent, which ended done or stopped_budget; evidence only, the state does not move.
    if etype == EventType.STOPPED_BUDGET and payload.get("manual") is True:
        _require(state.status in (Status.DONE, Status.STOPPED_BUDGET) and step is None,
                 "a manual STOPPED_BUDGET is recorded only on a job that ended done or stopped_budget")
        return state

    if etype in RERUN_EVENTS or (step == RERUN_STEP and etype in (EventType.STEP_STARTED, EventType.STEP_FAILED)):
        return _rerun_lane(state, etype, payload)

    _require(not state.is_terminal, f"{etype} after the job ended ({state.status})")
    current = _current_stage(state)

    if etype == EventType.STEP_STARTED:
        _require(not state.reruns, "a pipeline step cannot start while an agent rerun is pending")
        _require(state.status in RUNNABLE_STATUSES, f"cannot start a step while {state.status}")
        _require(state.next_step is not None and step == state.next_step, f"step {step!r} is not due")
        if state.status == Status.RUNNING:
            _require(bool(payload.get("recovered_from")), "a running step may only be taken over with recovered_from")
        _require(payload.get("attempt") == state.attempt + 1, f"attempt must be {state.attempt + 1}")
        return replace(state, status=Status.RUNNING, attempt=payload["attempt"], available_at=None)

    if etype in RESULT_EVENTS:
        _require(state.status == Status.RUNNING and step == state.next_step, f"{etype} for a step that is not running")
        _require(current.result_event == etype, f"step {step} completes with {current.result_event}, not {etype}")
        if etype == EventType.GATES_COMPLETED:
            return _at_stage(state, state.stage + 1, verdict=(payload.get("summary") or {}).get("verdict"))
        return _at_stage(state, state.stage + 1)

    if etype == EventType.WAITING_APPROVAL:
        _require(isinstance(current, Checkpoint) and current.name == step, f"no checkpoint {step!r} is due")
        # Announced again only right after a rerun of the agent it reviews, with that rerun's output.
        reannounced = (state.status == Status.WAITING_APPROVAL and state.waiting_step == step
                       and state.last_event_type == EventType.RERUN_COMPLETED)
        _require(state.status == Status.QUEUED or reannounced, f"checkpoint {step} is already open")
        # Announced again, the document is a new one: approvals of the old one no longer count.
        return replace(
            state, status=Status.WAITING_APPROVAL, waiting_step=step, review_sha256=payload.get("artifact_sha256"),
            approvals=(), escalated_to=None,
        )

    if etype in CHECKPOINT_EVENTS:
        _require(
            state.status == Status.WAITING_APPROVAL and state.waiting_step == step,
            f"{etype} for step {step!r}, but the job is not waiting at it",
        )
        return _at_checkpoint(state, etype, payload, actor)

    if etype == EventType.STEP_FAILED:
        _require(state.status == Status.RUNNING and step == state.next_step, f"STEP_FAILED for {step!r}, not running")
        return replace(
            state, status=Status.QUEUED, available_at=payload.get("retry_at"),
            error={"step": step, "error_class": payload.get("error_class"), "message": payload.get("message")},
        )

    if etype == EventType.ERROR:
        _require(
            state.status in RUNNABLE_STATUSES and step == state.next_step,
            f"ERROR for step {step!r}, which is not due",
        )
        return replace(
            state, status=Status.ERROR, available_at=None,
            error={"step": step, "error_class": payload.get("error_class"), "message": payload.get("message")},
        )

    if etype == EventType.RETRY_REQUESTED:
        _require(state.status == Status.ERROR, f"retry is only possible from error, not {state.status}")
        return replace(state, status=Status.QUEUED, attempt=0, error=None, available_at=None)

    if etype == EventType.CANCELLED:
        return replace(state, status=Status.CANCELLED, next_step=None, waiting_step=None, available_at=None)

    if etype == EventType.STOPPED_BUDGET:
        # Either during the spawn step, or right after its JOB_SPAWNED (the children that fitted), instead of DONE.
        after_spawn = (state.status == Status.QUEUED and state.stage == len(state.pipeline)
                       and state.last_event_type == EventType.JOB_SPAWNED)
        _require((state.status == Status.RUNNING and step == state.next_step) or after_spawn,
                 "STOPPED_BUDGET outside a running step")
        return replace(state, status=Status.STOPPED_BUDGET, next_step=None, available_at=None)

    if etype == EventType.DONE:
        _require(state.stage == len(state.pipeline) and state.status == Status.QUEUED, "DONE before the last step")
        return replace(state, status=Status.DONE)

    raise IllegalTransition(f"unhandled event type {etype}")  # pragma: no cover - every type is handled above


CHECKPOINT_EVENTS = (EventType.APPROVED, EventType.REJECTED, EventType.APPROVAL_OVERRIDDEN,
                     EventType.CHECKPOINT_ESCALATED, EventType.CHECKPOINT_REMINDED)


def _at_checkpoint(state: DerivedState, etype: EventType, payload: Mapping, actor: Mapping) -> DerivedState:
    """A decision or a deadline's action at the open checkpoint. Any rejection is final. Under a rule each approval
    counts for one group of it (`counts_for`), once per reviewer, and the checkpoint opens when every group has its
    count; an override (break-glass) opens it at once. Escalation happens once per announcement."""
    step = state.waiting_step
    if etype == EventType.REJECTED:
        return replace(state, status=Status.REJECTED, waiting_step=None, next_step=None)
    if etype == EventType.CHECKPOINT_ESCALATED:
        _require((state.rule or {}).get("on_timeout") == "escalate", f"{step} has no deadline that escalates")
        _require(state.escalated_to is None, f"{step} was escalated already")
        return replace(state, escalated_to=payload.get("group"))
    if etype == EventType.CHECKPOINT_REMINDED:
        _require((state.rule or {}).get("on_timeout") == "remind", f"{step} has no deadline that reminds")
        return state
    _require(not state.reruns, f"{step} cannot be approved while an agent rerun is pending")
    if etype == EventType.APPROVAL_OVERRIDDEN or state.rule is None:
        return _at_stage(state, state.stage + 1)
    _require(actor.get("kind") == "user", "only a person's approval counts")
    _require(all(a["actor"] != actor.get("id") for a in state.approvals), f"{actor.get('id')} approved {step} already")
    group = payload.get("counts_for")
    _require(group in missing_approvals(state), f"no approval from {group!r} is missing at {step}")
    approvals = (*state.approvals, {"actor": actor.get("id"), "group": group})
    counted = replace(state, approvals=approvals)
    return _at_stage(state, state.stage + 1) if not missing_approvals(counted) else counted


def missing_approvals(state: DerivedState) -> dict[str, int]:
    """{group: approvals still needed} of the open checkpoint's rule; empty when it is met (or has no rule)."""
    missing = {}
    for need in (state.rule or {}).get("required", ()):
        have = sum(1 for a in state.approvals if a["group"] == need["group"])
        if have < need["count"]:
            missing[need["group"]] = need["count"] - have
    return missing


RERUN_EVENTS = (EventType.RERUN_REQUESTED, EventType.RERUN_COMPLETED)


def _rerun_lane(state: DerivedState, etype: EventType, payload: Mapping) -> DerivedState:
    """An agent rerun: asked for while the job waits at a checkpoint or after it ended (never while a pipeline step
    is due or running), claimed by a worker like a step (STEP_STARTED `rerun`), and finished by RERUN_COMPLETED or
    by a STEP_FAILED that may not be retried. It never moves the pipeline; a WAITING_APPROVAL may follow its
    completion (the checkpoint announced again with the rerun's output)."""
    head = state.reruns[0] if state.reruns else None
    if etype == EventType.RERUN_REQUESTED:
        _require(state.status == Status.WAITING_APPROVAL or state.is_terminal,
                 f"an agent rerun is asked for while the job waits or after it ended, not while {state.status}")
        agent_id = payload.get("agent_id")
        _require(all(r["agent_id"] != agent_id for r in state.reruns), f"a rerun of {agent_id} is already pending")
        entry = {"agent_id": agent_id, "rerun_id": payload.get("rerun_id"), "attempt": 0, "running": False}
        return replace(state, reruns=(*state.reruns, entry))
    _require(head is not None, f"{etype} with no agent rerun pending")
    if etype == EventType.STEP_STARTED:
        _require(payload.get("rerun_id") == head["rerun_id"], f"the rerun due is {head['rerun_id']}")
        if head["running"]:
            _require(bool(payload.get("recovered_from")), "a running rerun may only be taken over with recovered_from")
        _require(payload.get("attempt") == head["attempt"] + 1, f"attempt must be {head['attempt'] + 1}")
        started = {**head, "attempt": payload["attempt"], "running": True}
        return replace(state, reruns=(started, *state.reruns[1:]), available_at=None)
    _require(head["running"], f"{etype} for a rerun that is not running")
    if etype == EventType.STEP_FAILED and payload.get("retryable"):
        waiting = {**head, "running": False}
        return replace(state, reruns=(waiting, *state.reruns[1:]), available_at=payload.get("retry_at"))
    if etype == EventType.RERUN_COMPLETED:
        _require(payload.get("rerun_id") == head["rerun_id"], f"the rerun running is {head['rerun_id']}")
    return replace(state, reruns=state.reruns[1:], available_at=None)  # completed, or failed for good


def derive_state(events, kind: Kind | str | None = None) -> DerivedState:
    """Fold `events` (ordered by seq) from the initial state; the kind comes from the first event if not given."""
    events = list(events)
    if kind is None:
        _require(bool(events), "a job without events has no kind")
        first = EventType(events[0]["event_type"])
        kinds = {v: k for k, v in SUBMIT_EVENTS.items()}
        _require(first in kinds, f"a job starts with a submit event, not {first}")
        kind = kinds[first]
    state = initial_state(kind)
    for event in events:
        state = apply_event(state, event)
    return state


# -- times, and the projection row ----------------------------------------------------------------------------
# A state holds times as text (`available_at`, a STEP_FAILED's `retry_at`) in the form hashed documents hold them;
# the projection row (jobs.models.JobState) holds the same facts as columns.

def format_time(moment: datetime) -> str:
    """The one text form of a timestamp inside hashed documents (UTC, microseconds)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def state_from_row(row) -> DerivedState:
    """The state a projection row (jobs.models.JobState) holds."""
    return DerivedState(
        kind=row.kind, status=row.status, stage=row.stage, next_step=row.next_step, waiting_step=row.waiting_step,
        review_sha256=row.review_sha256, attempt=row.attempt, error=row.error, last_seq=row.last_seq,
        last_event_type=row.last_event_type, last_hash=row.last_hash,
        available_at=format_time(row.available_at) if row.available_at else None, verdict=row.verdict,
        reruns=tuple(row.reruns or ()), **review_fields(row.review),
    )


def review_fields(column: dict | None) -> dict:
    """DerivedState's approval fields from the projection's `review` column."""
    column = column or {}
    return {"rules": column.get("rules"), "approvals": tuple(column.get("approvals") or ()),
            "escalated_to": column.get("escalated_to")}


def projection_fields(state: DerivedState) -> dict:
    """The JobState columns that the events determine (lease columns are not among them)."""
    return {
        "kind": str(state.kind), "status": str(state.status), "stage": state.stage, "next_step": state.next_step,
        "waiting_step": state.waiting_step, "review_sha256": state.review_sha256, "attempt": state.attempt,
        "error": state.error, "last_seq": state.last_seq, "last_event_type": state.last_event_type,
        "last_hash": state.last_hash, "available_at": parse_time(state.available_at), "verdict": state.verdict,
        "reruns": list(state.reruns) or None,
        "review": ({"rules": state.rules, "approvals": list(state.approvals), "escalated_to": state.escalated_to}
                   if state.rules else None),
    }
