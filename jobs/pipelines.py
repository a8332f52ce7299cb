"""The plan of each kind of job, declared as data: its steps, their result events and its checkpoints."""
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    BLUEPRINT = "blueprint"
    IDEA = "idea"


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    DONE = "done"
    ERROR = "error"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    STOPPED_BUDGET = "stopped_budget"


TERMINAL_STATUSES = frozenset({Status.DONE, Status.REJECTED, Status.CANCELLED, Status.STOPPED_BUDGET})
# ERROR is terminal until an operator acts (retry or cancel).
RUNNABLE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})


class EventType(StrEnum):
    BLUEPRINT_SUBMITTED = "BLUEPRINT_SUBMITTED"
    IDEA_SUBMITTED = "IDEA_SUBMITTED"
    STEP_STARTED = "STEP_STARTED"
    BLUEPRINT_PROPOSED = "BLUEPRINT_PROPOSED"
    STRATEGY_SPEC_PROPOSED = "STRATEGY_SPEC_PROPOSED"
    RUNSPEC_COMPILED = "RUNSPEC_COMPILED"
    TRACE_PREVIEW_COMPLETED = "TRACE_PREVIEW_COMPLETED"
    RUN_COMPLETED = "RUN_COMPLETED"
    GATES_COMPLETED = "GATES_COMPLETED"
    REGISTRY_UPDATED = "REGISTRY_UPDATED"
    REPORT_COMPLETED = "REPORT_COMPLETED"
    IMPROVEMENTS_PROPOSED = "IMPROVEMENTS_PROPOSED"
    WAITING_APPROVAL = "WAITING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    APPROVAL_OVERRIDDEN = "APPROVAL_OVERRIDDEN"
    CHECKPOINT_ESCALATED = "CHECKPOINT_ESCALATED"
    CHECKPOINT_REMINDED = "CHECKPOINT_REMINDED"
    STEP_FAILED = "STEP_FAILED"
    ERROR = "ERROR"
    RETRY_REQUESTED = "RETRY_REQUESTED"
    CANCELLED = "CANCELLED"
    RERUN_REQUESTED = "RERUN_REQUESTED"
    RERUN_COMPLETED = "RERUN_COMPLETED"
    JOB_SPAWNED = "JOB_SPAWNED"
    STOPPED_BUDGET = "STOPPED_BUDGET"
    DONE = "DONE"


@dataclass(frozen=True)
class Step:
    """An automatic step: a worker runs it and appends `result_event` when it succeeds."""

    name: str
    result_event: EventType
    agent: bool = False  # an agent's step (same name as the agent): its output may be asked for again (a rerun)


@dataclass(frozen=True)
class Checkpoint:
    """A human review: the job waits until a reviewer approves or rejects `name`."""

    name: str


Stage = Step | Checkpoint

BLUEPRINT_PIPELINE: tuple[Stage, ...] = (
    Step("compile", EventType.RUNSPEC_COMPILED),
    Checkpoint("runspec"),
    Step("run", EventType.RUN_COMPLETED),
    Step("gates", EventType.GATES_COMPLETED),
    Step("registry", EventType.REGISTRY_UPDATED),
)

IDEA_PIPELINE: tuple[Stage, ...] = (
    Step("intent", EventType.BLUEPRINT_PROPOSED, agent=True),
    Checkpoint("blueprint"),
    Step("strategy_spec", EventType.STRATEGY_SPEC_PROPOSED, agent=True),
    Checkpoint("strategy_spec"),
    Step("compile", EventType.RUNSPEC_COMPILED),
    Checkpoint("runspec"),
    Step("trace_preview", EventType.TRACE_PREVIEW_COMPLETED),
    Checkpoint("trace_preview"),
    Step("run", EventType.RUN_COMPLETED),
    Step("gates", EventType.GATES_COMPLETED),
    Step("registry", EventType.REGISTRY_UPDATED),
    Step("report", EventType.REPORT_COMPLETED, agent=True),
    Step("improvements", EventType.IMPROVEMENTS_PROPOSED, agent=True),
    Checkpoint("improvements"),
    Step("spawn", EventType.JOB_SPAWNED),
)

PIPELINES: dict[Kind, tuple[Stage, ...]] = {Kind.BLUEPRINT: BLUEPRINT_PIPELINE, Kind.IDEA: IDEA_PIPELINE}
SUBMIT_EVENTS: dict[Kind, EventType] = {
    Kind.BLUEPRINT: EventType.BLUEPRINT_SUBMITTED,
    Kind.IDEA: EventType.IDEA_SUBMITTED,
}
CHECKPOINT_NAMES = frozenset(s.name for p in PIPELINES.values() for s in p if isinstance(s, Checkpoint))
RESULT_EVENTS = frozenset(s.result_event for p in PIPELINES.values() for s in p if isinstance(s, Step))
EVENT_SCHEMA = "job_event_v2"
# The step name of an agent rerun's STEP_STARTED and STEP_FAILED: a lane beside the pipeline (see jobs/state.py).
RERUN_STEP = "rerun"


def agent_steps(kind: Kind | str) -> tuple[str, ...]:
    return tuple(s.name for s in PIPELINES[Kind(kind)] if isinstance(s, Step) and s.agent)


def reviewing_checkpoint(kind: Kind | str, agent_id: str) -> str | None:
    """The checkpoint that reviews the output of agent step `agent_id`: the stage right after it, if a checkpoint."""
    pipeline = PIPELINES[Kind(kind)]
    for here, after in zip(pipeline, pipeline[1:]):
        if isinstance(here, Step) and here.name == agent_id and isinstance(after, Checkpoint):
            return after.name
    return None
