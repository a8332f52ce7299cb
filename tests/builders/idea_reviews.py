"""Real idea jobs for the review pages: submitted through the service, run by the worker in process and
approved through the service until they wait at the checkpoint a test reads."""
from jobs import services
from research.artifacts import artifact_storage

from .ideas import IDEA_CHECKPOINTS, an_idea_for_tiny, idea_worker, waiting_at
from .people import as_actor
from .snapshots import TINY_SNAPSHOT


def an_idea_job_at(step: str, people, *, accept=None, **idea) -> str:
    """The id of an idea job on the tiny snapshot that waits at `step` (or, with step "done", has ended);
    `accept` is what the improvements approval accepts on the way."""
    from workflow.orchestrator import run_pass

    job, _ = services.submit_idea(idea=an_idea_for_tiny(**idea), actor=as_actor(people.submitter),
                                  snapshot_id=TINY_SNAPSHOT, policy_bundle_id="default_v2")
    for _ in range(len(IDEA_CHECKPOINTS) + 1):
        run_pass(idea_worker(), job_ids=[job.job_id])
        status, waiting, sha256 = waiting_at(job.job_id)
        if waiting == step or status != "waiting_approval":
            assert waiting == step or step == "done", (status, waiting)
            return job.job_id
        services.approve(job_id=job.job_id, step=waiting, actor=as_actor(people.reviewer), artifact_sha256=sha256,
                         accept=accept if waiting == "improvements" else None)
    raise AssertionError(f"job {job.job_id} never reached {step}")


def overwrite_artifact(storage_path: str, data: bytes) -> None:
    """Change a recorded file behind the events' back, as a tampering disk would."""
    storage = artifact_storage()
    with open(storage.path(storage_path), "wb") as handle:
        handle.write(data)
