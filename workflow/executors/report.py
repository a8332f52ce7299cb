"""report: the run's dossier and gate results -> the report (the report agent); the holdout reaches it only
as the gates reported it."""
from contracts import content_id
from research.agents.inputs import report_input
from research.artifacts import read_json_artifact

from ..orchestrator import StepContext, StepOutcome
from ._agents import run_pinned
from ._paths import gate_results_path, runspec_path


def agent_inputs(context: StepContext) -> dict:
    job_id = context.job.job_id
    runspec = read_json_artifact(runspec_path(job_id), sha256=context.recorded_sha256(runspec_path(job_id)))
    gates = gate_results_path(job_id)
    gate_results = read_json_artifact(gates, sha256=context.recorded_sha256(gates))
    return report_input(run_id=content_id(runspec), gate_results=gate_results)


def execute(context: StepContext) -> StepOutcome:
    run = run_pinned(context, "report", agent_inputs(context))
    return StepOutcome(artifacts=run.artifacts,
                       summary={**run.summary, "run_id": run.output["run_id"], "verdict": run.output["verdict"]})
