"""run: the approved runspec -> the dossier of its run (shared by every job that compiles to the same runspec)."""
from research.artifacts import read_json_artifact
from research.dossier import run_dossier

from ..orchestrator import StepContext, StepOutcome
from ._paths import runspec_path


def execute(context: StepContext) -> StepOutcome:
    path = runspec_path(context.job.job_id)
    runspec = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the runspec approved
    result = run_dossier(runspec)
    return StepOutcome(artifacts=[ref.as_dict() for ref in result.artifacts], summary=result.summary)
