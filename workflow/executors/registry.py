"""registry: record this trial (insert-only), so later gates deflate Sharpe by the trials of the lineage."""
from contracts import content_id
from research.artifacts import read_json_artifact
from research.dossier import dossier_root
from research.registry import record_trial

from ..orchestrator import StepContext, StepOutcome
from ._paths import gate_results_path, runspec_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    runspec = read_json_artifact(runspec_path(job.job_id))
    run_id = content_id(runspec)
    gate_results = read_json_artifact(gate_results_path(job.job_id))
    metrics = read_json_artifact(f"{dossier_root(run_id)}/metrics.json")
    entry = record_trial(
        job_id=job.job_id, root_job_id=job.root_job_id, run_id=run_id, runspec=runspec,
        verdict=gate_results["verdict"], metrics=metrics,
    )
    return StepOutcome(
        summary={
            "registry_entry_id": entry.pk,
            "run_id": run_id,
            "verdict": entry.verdict,
        }
    )
