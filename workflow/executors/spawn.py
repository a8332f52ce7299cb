"""spawn: one child blueprint job per proposal the improvements checkpoint accepted, as the policy bundle's budget
allows. The children are created in the transaction of the step's result (`StepOutcome.record`), under a lock
on the root's row: a fenced result (the job cancelled, the lease taken over) leaves no child behind, and
concurrent spawns in one lineage never exceed a limit. A limit that stopped any child ends the job
STOPPED_BUDGET (reason, limit, counters) after its JOB_SPAWNED, instead of DONE."""
from jobs.events import Actor
from jobs.models import JobEvent
from jobs.pipelines import EventType
from jobs.spawning import spawn_children
from research.errors import IntegrityFailure

from ..orchestrator import StepContext, StepOutcome


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    proposals = context.read_approved("improvements")["proposals"]
    approval = (JobEvent.objects.filter(job_id=job.job_id, event_type=str(EventType.APPROVED), step="improvements")
                .order_by("-seq").values_list("payload", flat=True).first())
    if approval is None or "accepted" not in approval:
        raise IntegrityFailure(f"job {job.job_id} has no approval of its improvements naming the accepted ones")
    accepted = set(approval["accepted"])
    blueprints = [p["blueprint"] for p in proposals if p["proposal_id"] in accepted]

    def record() -> dict:
        # Children are submitted in the name of the lineage's submitter, so four eyes covers them too; the
        # parent's JOB_SPAWNED (by this worker) records who created them.
        spawned = spawn_children(parent=job, blueprints=blueprints, actor=Actor("user", job.submitted_by))
        return {"child_job_ids": spawned.child_job_ids, "counters": spawned.counters,
                "stopped_budget": spawned.stopped}

    return StepOutcome(summary={"accepted": len(blueprints)}, record=record)
