"""Events as a worker writes them, appended through the one append path."""
from jobs.events import Actor
from jobs.events import NewEvent, append_events
from jobs.models import JobEvent, JobState
from jobs.pipelines import EventType as E

SHA_A = "a" * 64
SHA_B = "b" * 64
WORKER = Actor.worker("worker-1")


def append(job_id: str, *events: NewEvent) -> list[JobEvent]:
    """Append `events` after the job's last event, as one batch."""
    last = JobState.objects.values_list("last_seq", flat=True).get(job_id=job_id)
    rows, _ = append_events(job_id=job_id, expected_seq=last + 1, events=list(events))
    return rows


def started(step: str, attempt: int = 1) -> NewEvent:
    return NewEvent(
        E.STEP_STARTED, WORKER, step=step,
        payload={"attempt": attempt, "worker": WORKER.id, "lease_expires_at": "2030-01-01T00:00:00.000000Z"},
    )


def completed(etype: E, step: str, **summary) -> NewEvent:
    return NewEvent(etype, WORKER, step=step, payload={"artifacts": [], "summary": summary})


def compiled(job_id: str, run_id: str = "0123456789ab", sha: str = SHA_A) -> NewEvent:
    """compile's result: the job's runspec.json (never written: only its record), `sha` its sha256."""
    artifact = {"path": f"jobs/{job_id}/outputs/runspec.json", "sha256": sha, "bytes": 10}
    return NewEvent(E.RUNSPEC_COMPILED, WORKER, step="compile",
                    payload={"artifacts": [artifact], "summary": {"run_id": run_id}})


def gated(verdict: str) -> NewEvent:
    return completed(E.GATES_COMPLETED, "gates", verdict=verdict)


def failed(step: str, attempt: int) -> NewEvent:
    return NewEvent(E.STEP_FAILED, WORKER, step=step,
                    payload={"attempt": attempt, "error_class": "Flaky", "message": "try again", "retryable": True})


def waiting(checkpoint: str, sha: str = SHA_A) -> NewEvent:
    return NewEvent(E.WAITING_APPROVAL, WORKER, step=checkpoint, payload={"artifact_sha256": sha})


def rerun(proc: str, i: int) -> NewEvent:
    """A rerun request that any number of others may follow (each names an agent of its own): an event that fits
    wherever a job waits at a checkpoint or has ended, for tests of the log itself. It is never run: no worker is
    started on a job that holds one."""
    return NewEvent(E.RERUN_REQUESTED, WORKER, step="rerun",
                    payload={"agent_id": f"{proc}-{i}", "rerun_id": f"{proc}-{i}"})
