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
    Step("intent", EventType.BLUEPRINT_PROPOSED),
    Checkpoint("blueprint"),
    Step("strategy_spec", EventType.STRATEGY_SPEC_PROPOSED),
    Checkpoint("strategy_spec"),
    Step("compile", EventType.RUNSPEC_COMPILED),
    Checkpoint("runspec"),
    Step("trace_preview", EventType.TRACE_PREVIEW_COMPLETED),
    Checkpoint("trace_preview"),
    Step("run", EventType.RUN_COMPLETED),
    Step("gates", EventType.GATES_COMPLETED),
    Step("registry", EventType.REGISTRY_UPDATED),
    Step("report", EventType.REPORT_COMPLETED),
    Step("improvements", EventType.IMPROVEMENTS_PROPOSED),
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
