"""intent: the idea -> a blueprint proposal (the intent agent), and the blueprint itself as
`outputs/blueprint.json`, which the blueprint checkpoint reviews and compile reads once approved."""
from research.agents.inputs import intent_input
from research.artifacts import write_json_artifact

from ..orchestrator import StepContext, StepOutcome
from ._agents import prompt_pins, run_pinned
from ._paths import blueprint_path, job_path

REVIEWED = "blueprint.json"  # what the blueprint checkpoint reviews of a rerun's output, in the rerun's folder


def agent_inputs(context: StepContext) -> dict:
    job = context.job
    return intent_input(idea=job.spec["idea"], snapshot_id=job.snapshot_id, policy_bundle_id=job.policy_bundle_id)


def reviewed_document(output: dict) -> dict:
    return output["blueprint"]


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    _, pins_ref = prompt_pins(context)
    inputs = [write_json_artifact(job_path(job.job_id, "job_spec.json"), job.spec).as_dict(),
              write_json_artifact(job_path(job.job_id, "inputs", "idea_spec.json"), job.spec["idea"]).as_dict(),
              pins_ref]
    run = run_pinned(context, "intent", agent_inputs(context))
    blueprint = write_json_artifact(blueprint_path(job.job_id), reviewed_document(run.output)).as_dict()
    families = [family["family"] for family in run.output["families"]]
    return StepOutcome(artifacts=[*inputs, *run.artifacts, blueprint],
                       summary={**run.summary, "family": run.output["blueprint"]["strategy"]["family"],
                                "families": families},
                       review=blueprint)
