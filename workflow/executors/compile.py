"""compile: blueprint + snapshot + policy bundle -> runspec.json (the artifact the runspec checkpoint reviews).
A blueprint job compiles the blueprint it was submitted with; an idea job the one its blueprint checkpoint
approved (`outputs/blueprint.json`, or a rerun's, checked against the sha256 the approval named)."""
from jobs.pipelines import Kind
from research.artifacts import write_json_artifact
from research.compiler import compile_blueprint
from research.policies import load_policy_bundle

from ..orchestrator import StepContext, StepOutcome
from ._paths import job_path, runspec_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    spec = job.spec
    _, bundle_sha256 = load_policy_bundle(job.policy_bundle_id)
    policy_ref = write_json_artifact(
        job_path(job.job_id, "outputs", "policy_bundle_ref.json"),
        {"policy_bundle_id": job.policy_bundle_id, "sha256": bundle_sha256},
    )
    if job.kind == Kind.IDEA:
        blueprint = context.read_approved("blueprint")
        inputs = [policy_ref]  # the spec and the idea were written by the intent step
    else:
        blueprint = spec["blueprint"]
        inputs = [
            write_json_artifact(job_path(job.job_id, "job_spec.json"), spec),
            write_json_artifact(job_path(job.job_id, "inputs", "blueprint.json"), blueprint),
            policy_ref,
        ]
    runspec, run_id = compile_blueprint(
        blueprint=blueprint, snapshot_id=job.snapshot_id, policy_bundle_id=job.policy_bundle_id
    )
    runspec_ref = write_json_artifact(runspec_path(job.job_id), runspec)
    segments = runspec["segments"]["list"]
    return StepOutcome(
        artifacts=[ref.as_dict() for ref in [*inputs, runspec_ref]],
        summary={
            "run_id": run_id,
            "family": runspec["strategy"]["family"],
            "segments": len(segments),
            "holdout_segments": sum(1 for s in segments if s["role"] == "holdout"),
        },
        review=runspec_ref.as_dict(),
    )
