"""Checkpoint deadlines: when a checkpoint's rule says `respond_within`, a worker's pass acts once it has passed.

`on_timeout` is `reject` (the job ends rejected; a decision arriving later finds it not waiting), `escalate` (once,
to the rule's `escalate_to` group, whose reviewers may then decide) or `remind` (every `remind_every`). Everything
is read from the events: the clock starts at the checkpoint's latest WAITING_APPROVAL (an agent rerun that
announces a new document starts it again), escalation is in the derived state, the last reminder's `due_at` is in
its event. Each action is an event appended fenced by the seq read, so passes that overlap, or a reviewer deciding
at the same moment, cannot make one happen twice: the loser's append is refused and it acts on nothing.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import Conflict
from . import events
from .events import NewEvent, append_event
from .state import format_time, parse_time, state_from_row
from .models import JobEvent, JobState
from .pipelines import EventType, Status


@dataclass(frozen=True)
class DeadlineAction:
    job_id: str
    step: str
    action: str  # reject | escalate | remind
    outcome: str  # appended | raced (another pass, or a decision, came first)


def sweep(*, now: datetime | None = None, job_ids=None) -> list[DeadlineAction]:
    """Act on every checkpoint (of `job_ids`, if given) whose deadline has passed; two queries, and one append
    per action due."""
    now = now or events.now()
    waiting = JobState.objects.filter(status=Status.WAITING_APPROVAL, review__isnull=False)
    if job_ids is not None:
        waiting = waiting.filter(job_id__in=list(job_ids))
    states = {row.job_id: state for row in waiting
              if ((state := state_from_row(row)).rule or {}).get("respond_within_seconds")}
    if not states:
        return []
    announced, last_reminder = {}, {}
    marks = (JobEvent.objects.filter(job_id__in=states, event_type__in=(EventType.WAITING_APPROVAL,
                                                                       EventType.CHECKPOINT_REMINDED))
             .order_by("job_id", "seq").values_list("job_id", "event_type", "recorded_at", "payload"))
    for job_id, event_type, recorded_at, payload in marks:
        if event_type == EventType.WAITING_APPROVAL:
            announced[job_id], last_reminder[job_id] = recorded_at, None
        else:
            last_reminder[job_id] = payload
    done = []
    for job_id, state in states.items():
        due = announced[job_id] + timedelta(seconds=state.rule["respond_within_seconds"])
        event = _action_due(state, due, last_reminder.get(job_id), now)
        if event is None:
            continue
        try:
            append_event(job_id=job_id, expected_seq=state.last_seq + 1, event=event, state=state)
            outcome = "appended"
        except Conflict as conflict:
            if conflict.code != "seq_conflict":
                raise
            outcome = "raced"
        done.append(DeadlineAction(job_id, state.waiting_step, state.rule["on_timeout"], outcome))
    return done


def _action_due(state, due: datetime, last_reminder: dict | None, now: datetime) -> NewEvent | None:
    """The event a deadline asks for now, or None."""
    rule, step = state.rule, state.waiting_step
    if now < due:
        return None
    if rule["on_timeout"] == "reject":
        return events.rejected(step=step, actor=events.DEADLINES, timed_out=True,
                               reason=f"no decision within {_duration(rule['respond_within_seconds'])} "
                                      f"(due {format_time(due)})")
    if rule["on_timeout"] == "escalate":
        if state.escalated_to is not None:
            return None
        return events.checkpoint_escalated(step=step, group=rule["escalate_to"], due_at=due)
    every = timedelta(seconds=rule["remind_every_seconds"])
    following = due if last_reminder is None else parse_time(last_reminder["due_at"]) + every
    if now < following:
        return None
    # After a long pause (no worker ran), one reminder for the latest slot that passed, not one per missed slot.
    slot = following + every * ((now - following) // every)
    ordinal = 1 if last_reminder is None else last_reminder["ordinal"] + 1
    return events.checkpoint_reminded(step=step, ordinal=ordinal, due_at=slot)


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def deadline_of(job_id: str, approval: dict | None) -> datetime | None:
    """When the open checkpoint's deadline passes, or None without one; `approval` is the job detail's (the rule
    and progress of the checkpoint the job waits at, selectors.approval_progress)."""
    within = ((approval or {}).get("rule") or {}).get("respond_within_seconds")
    if not within:
        return None
    announced = (JobEvent.objects.filter(job_id=job_id, event_type=EventType.WAITING_APPROVAL)
                 .order_by("-seq").values_list("recorded_at", flat=True).first())
    return announced + timedelta(seconds=within) if announced else None
