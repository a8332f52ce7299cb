"""What people are told about, declared as data: the kinds of notification and the events that make each.

Event types are named by their strings, not by jobs.pipelines.EventType members: a type that this table names
but the event log does not know yet (while it is being added) simply never occurs.
"""
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    WAITING = "waiting"        # a checkpoint waits for a reviewer
    DECIDED = "decided"        # a checkpoint was approved, rejected or overridden
    ESCALATED = "escalated"    # a checkpoint past its deadline was handed to a group
    ERROR = "error"            # the job stopped on an error until an operator acts
    FINISHED = "finished"      # the job ended: done, stopped by its budget, or cancelled


KIND_LABELS = {
    Kind.WAITING: "A job waits for my review",
    Kind.DECIDED: "A checkpoint of my job was decided",
    Kind.ESCALATED: "A checkpoint was escalated to my group",
    Kind.ERROR: "A job stopped on an error",
    Kind.FINISHED: "My job finished",
}


@dataclass(frozen=True)
class Notable:
    """An event type worth a notification: its kind, and what happened in words ({step}, {group} filled in)."""

    kind: Kind
    what: str


NOTABLE_EVENTS: dict[str, Notable] = {
    "WAITING_APPROVAL": Notable(Kind.WAITING, "waits for review at {step}"),
    "CHECKPOINT_REMINDED": Notable(Kind.WAITING, "still waits for review at {step}"),
    "APPROVED": Notable(Kind.DECIDED, "was approved at {step}"),
    "REJECTED": Notable(Kind.DECIDED, "was rejected at {step}"),
    "APPROVAL_OVERRIDDEN": Notable(Kind.DECIDED, "had its approval at {step} overridden"),
    "CHECKPOINT_ESCALATED": Notable(Kind.ESCALATED, "was escalated to {group} at {step}"),
    "ERROR": Notable(Kind.ERROR, "stopped on an error at {step}"),
    "DONE": Notable(Kind.FINISHED, "is done"),
    "STOPPED_BUDGET": Notable(Kind.FINISHED, "was stopped by its budget"),
    "CANCELLED": Notable(Kind.FINISHED, "was cancelled"),
}


def notable(event_type: str, payload: dict | None) -> Notable | None:
    """What an event is worth telling, or None. A manual spawn refused by the budget is recorded as STOPPED_BUDGET
    with `manual` on a job that had already ended: nothing new happened to the job."""
    if event_type == "STOPPED_BUDGET" and (payload or {}).get("manual"):
        return None
    return NOTABLE_EVENTS.get(event_type)


# An approval under an approval rule fills one group's count; the checkpoint may still wait for others.
COUNTED_APPROVAL = "got an approval at {step} (counts for {group})"


def what_happened(event_type: str, step: str | None, payload: dict) -> str:
    """`event_type`'s sentence for this event, e.g. "waits for review at runspec"."""
    payload = payload or {}
    if event_type == "APPROVED" and payload.get("counts_for"):
        return COUNTED_APPROVAL.format(step=step or "-", group=payload["counts_for"])
    return NOTABLE_EVENTS[event_type].what.format(step=step or "-", group=payload.get("group") or "-")
