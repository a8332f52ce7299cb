"""strategy_spec: the approved blueprint -> a fully explicit strategy spec (the strategy_spec agent), which the
strategy_spec checkpoint reviews."""
from research.agents.inputs import strategy_spec_input
from research.artifacts import read_json_artifact

from ..orchestrator import StepContext, StepOutcome
from ._agents import run_pinned
from ._paths import blueprint_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    path = blueprint_path(job.job_id)
    blueprint = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the blueprint approved
    run = run_pinned(context, "strategy_spec", strategy_spec_input(
        blueprint=blueprint, snapshot_id=job.snapshot_id, policy_bundle_id=job.policy_bundle_id))
    output_ref = run.artifacts[0]
    return StepOutcome(artifacts=run.artifacts,
                       summary={**run.summary, "family": run.output["family"], "checks": len(run.output["checks"])},
                       review=output_ref)
