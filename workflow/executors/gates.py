"""gates: the policy bundle's gates over the dossier -> gate_results.json; PASS/FAIL comes from the GateRunner."""
from contracts import content_id
from research.artifacts import read_json_artifact
from research.gates import evaluate_gates
from research.registry import lineage_trials

from ..orchestrator import StepContext, StepOutcome
from ._paths import gate_results_path, runspec_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    path = runspec_path(job.job_id)
    runspec = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the runspec approved
    run_id = content_id(runspec)
    n_trials, sharpe_variance = lineage_trials(root_job_id=job.root_job_id, including_run_id=run_id)
    result = evaluate_gates(
        runspec=runspec, run_id=run_id, n_trials=n_trials, sharpe_variance=sharpe_variance,
        output_path=gate_results_path(job.job_id),
    )
    return StepOutcome(artifacts=[result.artifact.as_dict()], summary={**result.summary, "n_trials": n_trials})
