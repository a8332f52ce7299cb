"""Finished jobs as an auditor receives them: taken to the end by the engine, anchored, exported as bundles."""
from jobs import reruns
from jobs.anchors import anchor_heads
from jobs.bundles import bundle_files
from jobs.models import JobEvent, JobState
from workflow.orchestrator import run_pass

from .idea_reviews import an_idea_job_at
from .ideas import idea_worker
from .jobs import done_job_with_run
from .people import as_actor


def an_idea_job_with_reruns_and_children(people) -> str:
    """An idea job the engine took to DONE (its children spawned), then an agent rerun asked for and run."""
    job_id = an_idea_job_at("done", people)
    assert JobState.objects.get(job_id=job_id).status == "done"
    reruns.request_rerun(job_id=job_id, agent_id="report", actor=as_actor(people.operator), reason="once more")
    run_pass(idea_worker(), job_ids=[job_id])
    assert JobEvent.objects.filter(job_id=job_id, event_type="RERUN_COMPLETED").exists()
    assert JobEvent.objects.get(job_id=job_id, event_type="JOB_SPAWNED").payload["child_job_ids"]
    return job_id


def finished_jobs(people) -> dict[str, str]:
    """{"blueprint": id, "idea": id}: a blueprint job run to DONE with a real dossier and an idea job with reruns
    and children, both covered by an anchor written afterwards."""
    jobs = {"blueprint": done_job_with_run(people.submitter, "audited", snapshot_id="audit_tiny").job_id,
            "idea": an_idea_job_with_reruns_and_children(people)}
    anchor_heads()
    return jobs


def exported(job_ids) -> dict[str, dict[str, bytes]]:
    return {job_id: bundle_files(job_id) for job_id in job_ids}
