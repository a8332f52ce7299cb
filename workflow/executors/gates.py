"""gates: the policy bundle's gates over the dossier -> gate_results.json; PASS/FAIL comes from the GateRunner.
The trials the run is judged among are those of the bundle's `trials.scope`, counted in the registry now, or,
when an earlier attempt of this step wrote its gate results without recording them, the trials it counted."""
from contracts import content_id
from research.artifacts import read_json_artifact
from research.errors import ArtifactNotFound
from research.gates import evaluate_gates
from research.policies import load_policy_bundle, trials_policy
from research.registry import trials_in_scope

from ..orchestrator import StepContext, StepOutcome
from ._paths import gate_results_path, runspec_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    path = runspec_path(job.job_id)
    runspec = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the runspec approved
    run_id = content_id(runspec)
    output = gate_results_path(job.job_id)
    bundle, _ = load_policy_bundle(runspec["policy"]["policy_bundle_id"])  # its sha256 is checked by the gates
    trials = trials_in_scope(scope=trials_policy(bundle)["scope"], runspec=runspec, run_id=run_id,
                             root_job_id=job.root_job_id, counted=_counted_before(output))
    result = evaluate_gates(runspec=runspec, run_id=run_id, trials=trials, output_path=output)
    return StepOutcome(artifacts=[result.artifact.as_dict()],
                       summary={**result.summary, "n_trials": trials.n_trials, "trials_scope": trials.scope})


def _counted_before(output: str) -> list[str] | None:
    """The run ids an earlier attempt counted: trials registered since must not change write-once results."""
    try:
        previous = read_json_artifact(output)
    except ArtifactNotFound:
        return None
    return previous["trials"].get("run_ids")
