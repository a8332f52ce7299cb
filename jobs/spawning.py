"""Spawning child jobs: the one code path of the `spawn` step and of `POST /jobs/{id}/spawn`, with the policy
bundle's budget (generations, children per job, jobs per root) counted under a lock on the root's row."""
from dataclasses import dataclass

from django.db import transaction

from contracts import content_id
from research.policies import budget_limits, load_policy_bundle

from . import events
from .errors import BudgetExhausted, Conflict, Forbidden
from .events import Actor, append_event
from .state import state_from_row
from .models import JobEvent, JobSpec, JobState
from .pipelines import EventType, Kind, Status
from .services import four_eyes_applies, get_job, make_job_spec, submit_job_spec, validate_spec


@dataclass(frozen=True)
class Spawned:
    """What a spawn did: the children created (in order), the counters after it, and the limit that stopped
    the rest (`stopped`: {reason, limit, counters}) or None."""

    child_job_ids: list[str]
    counters: dict
    stopped: dict | None


def _child_spec(parent: JobSpec, blueprint) -> dict:
    """The job spec of a child blueprint job of `parent`: its snapshot and policy bundle, and the lineage."""
    generation = parent.generation + 1
    lineage = {"root_job_id": parent.root_job_id, "parent_job_id": parent.job_id, "generation": generation,
               "iteration": generation}
    return make_job_spec(Kind.BLUEPRINT, "blueprint", blueprint, parent.snapshot_id, parent.policy_bundle_id,
                     {"lineage": lineage})


def spawn_children(*, parent: JobSpec, blueprints: list[dict], actor: Actor) -> Spawned:
    """One child blueprint job per blueprint (in order) under `parent`'s lineage, as many as the policy
    bundle's budget allows: the one code path of every spawn (the `spawn` step and `POST /jobs/{id}/spawn`).
    Must be called inside a transaction, which it holds to the end: the counters are read under a lock on the
    root's JobState row (SELECT … FOR UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction already holds
    the database's write lock), and the children are inserted in it, so concurrent spawns in one lineage queue
    and can never exceed a limit; whatever the caller writes after it in the same transaction (a manual spawn's
    refusal record) is decided under that lock too. The root job counts among the jobs of its root."""
    limits = budget_limits(load_policy_bundle(parent.policy_bundle_id)[0])
    list(JobState.objects.select_for_update().filter(job_id=parent.root_job_id).values_list("job_id", flat=True))
    generation = parent.generation + 1
    counters = {
        "generation": generation,
        "children_of_parent": JobSpec.objects.filter(parent_job_id=parent.job_id).count(),
        "jobs_in_root": JobSpec.objects.filter(root_job_id=parent.root_job_id).count(),
    }
    children, stopped = [], None
    for blueprint in blueprints:
        reason = _limit_reached(limits, counters)
        if reason is not None:
            stopped = {"reason": reason, "limit": {reason: limits[reason]}}
            break
        child, created = submit_job_spec(spec=_child_spec(parent, blueprint), actor=actor, lineage_allowed=True)
        if created:
            children.append(child.job_id)
            counters["children_of_parent"] += 1
            counters["jobs_in_root"] += 1
    counters = {**counters, "requested": len(blueprints), "spawned": len(children)}
    if stopped is not None:
        stopped["counters"] = counters
    return Spawned(child_job_ids=children, counters=counters, stopped=stopped)


SPAWNABLE_STATUSES = frozenset({Status.DONE, Status.STOPPED_BUDGET})


def spawn_child(*, job_id: str, blueprint, actor: Actor) -> tuple[JobSpec, bool]:
    """`POST /jobs/{id}/spawn`: one child blueprint job of job `job_id`, by hand, under the rules of the spawn
    step (`spawn_children`: lineage, budget, counters, lock). The child is submitted in `actor`'s name; the
    same blueprint spawned twice from one parent is the same job (created False, nothing written).

    Refused, writing nothing: a parent that has not ended DONE or STOPPED_BUDGET (409 `not_spawnable`: while
    a job runs its own pipeline owns it), the parent's own submitter where four eyes applies (403
    `four_eyes`: a child counts toward the root's budget and trials, so a second person decides it, as for
    approving improvements), an invalid blueprint (400, before any lock).

    Past the budget: 409 `budget_exhausted` with `reason`, `limit` and `counters`. The first refusal of a
    limit on this parent records it: a `STOPPED_BUDGET` event (`manual: true`) on the parent's log, which the
    state machine allows after DONE or STOPPED_BUDGET as a record that does not move the state. Later refusals
    of the same limit answer the same 409 and write nothing (jobs are never deleted, so a limit once reached
    stays reached). The check and the append happen under the root's lock, so concurrent requests record each
    limit once."""
    parent = get_job(job_id)
    if parent.state.status not in SPAWNABLE_STATUSES:
        raise Conflict(f"job {job_id} is {parent.state.status}: a child is spawned by hand only from a job that "
                       f"ended done or stopped_budget", code="not_spawnable")
    if four_eyes_applies(parent.policy_bundle_id) and actor.id == parent.submitted_by:
        raise Forbidden("four eyes: the submitter of a job may not spawn its children", code="four_eyes")
    validate_spec(_child_spec(parent, blueprint))
    with transaction.atomic():
        spawned = spawn_children(parent=parent, blueprints=[blueprint], actor=actor)
        if spawned.stopped is not None:
            _record_refusal(parent, spawned.stopped, actor)
    if spawned.stopped is not None:
        stopped = spawned.stopped
        refused = BudgetExhausted(
            f"the budget of root {parent.root_job_id} is exhausted: {stopped['reason']} "
            f"{stopped['limit'][stopped['reason']]} reached", code="budget_exhausted")
        refused.evidence = {"reason": stopped["reason"], "limit": stopped["limit"], "counters": stopped["counters"]}
        raise refused
    if spawned.child_job_ids:
        return JobSpec.objects.get(job_id=spawned.child_job_ids[0]), True
    return get_job(content_id(_child_spec(parent, blueprint))), False


def _record_refusal(parent: JobSpec, stopped: dict, actor: Actor) -> None:
    """The first refusal of a limit on `parent` appends STOPPED_BUDGET to its log; later ones write nothing.
    Runs under the root's lock (`spawn_children`), so the parent's state read here is current."""
    if JobEvent.objects.filter(job_id=parent.job_id, event_type=str(EventType.STOPPED_BUDGET),
                               payload__reason=stopped["reason"]).exists():
        return
    state = JobState.objects.get(job_id=parent.job_id)
    append_event(job_id=parent.job_id, expected_seq=state.last_seq + 1,
                 event=events.spawn_refused(actor=actor, **stopped), state=state_from_row(state))


def _limit_reached(limits: dict, counters: dict) -> str | None:
    """The first budget limit one more child would break, or None."""
    if counters["generation"] > limits["max_generations"]:
        return "max_generations"
    if counters["children_of_parent"] >= limits["max_children_per_job"]:
        return "max_children_per_job"
    if counters["jobs_in_root"] >= limits["max_jobs_per_root"]:
        return "max_jobs_per_root"
    return None
