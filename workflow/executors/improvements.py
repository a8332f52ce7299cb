"""improvements: the run's test-segment evidence and the trials tried -> k child blueprint proposals (the
improvements agent; nothing of the holdout enters its input). The improvements checkpoint reviews them."""
from contracts import content_id
from jobs.pipelines import Kind
from research.agents.inputs import improvements_input
from research.artifacts import read_json_artifact

from ..orchestrator import StepContext, StepOutcome
from ._agents import run_pinned
from ._paths import gate_results_path, runspec_path


def agent_inputs(context: StepContext) -> dict:
    job = context.job
    runspec, gate_results = (_recorded(context, path(job.job_id)) for path in (runspec_path, gate_results_path))
    blueprint = context.read_approved("blueprint") if job.kind == Kind.IDEA else job.spec["blueprint"]
    return improvements_input(run_id=content_id(runspec), blueprint=blueprint, gate_results=gate_results,
                              policy_bundle_id=job.policy_bundle_id)


def execute(context: StepContext) -> StepOutcome:
    run = run_pinned(context, "improvements", agent_inputs(context))
    proposals = run.output["proposals"]
    return StepOutcome(artifacts=run.artifacts,
                       summary={**run.summary, "diagnosis": run.output["diagnosis"]["name"],
                                "proposals": len(proposals),
                                "proposal_ids": [p["proposal_id"] for p in proposals]},
                       review=run.artifacts[0])


def _recorded(context: StepContext, path: str):
    return read_json_artifact(path, sha256=context.recorded_sha256(path))
