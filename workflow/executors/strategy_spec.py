"""strategy_spec: the approved blueprint -> a fully explicit strategy spec (the strategy_spec agent), which the
strategy_spec checkpoint reviews."""
from research.agents.inputs import strategy_spec_input

from ..orchestrator import StepContext, StepOutcome
from ._agents import run_pinned


def agent_inputs(context: StepContext) -> dict:
    job = context.job
    return strategy_spec_input(blueprint=context.read_approved("blueprint"), snapshot_id=job.snapshot_id,
                               policy_bundle_id=job.policy_bundle_id)


def execute(context: StepContext) -> StepOutcome:
    run = run_pinned(context, "strategy_spec", agent_inputs(context))
    output_ref = run.artifacts[0]
    return StepOutcome(artifacts=run.artifacts,
                       summary={**run.summary, "family": run.output["family"], "checks": len(run.output["checks"])},
                       review=output_ref)
