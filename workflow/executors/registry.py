"""registry: record this trial (insert-only, with its universe), so later gates count it among their trials. The
row is written with the step's result, in its transaction: a fenced result (the job cancelled, the lease taken
over) leaves no trial behind to be counted."""
from contracts import content_id
from research.artifacts import read_json_artifact
from research.dossier import dossier_root
from research.registry import record_trial

from ..orchestrator import StepContext, StepOutcome
from ._paths import gate_results_path, runspec_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    path = runspec_path(job.job_id)
    runspec = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the runspec approved
    run_id = content_id(runspec)
    gate_results = read_json_artifact(gate_results_path(job.job_id),
                                      sha256=context.recorded_sha256(gate_results_path(job.job_id)))
    metrics = read_json_artifact(f"{dossier_root(run_id)}/metrics.json")

    def record() -> dict:
        entry = record_trial(job_id=job.job_id, root_job_id=job.root_job_id, run_id=run_id, runspec=runspec,
                             verdict=gate_results["verdict"], metrics=metrics)
        return {"registry_entry_id": entry.pk, "verdict": entry.verdict}

    return StepOutcome(summary={"run_id": run_id}, record=record)
