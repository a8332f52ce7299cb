"""rerun: an agent's output asked for again (`jobs.reruns.request_rerun`). The agent runs on the inputs its step
had, under the prompt version asked for, into `outputs/agents/<agent_id>/reruns/<rerun_id>/`; nothing written
before is touched. The rerun's lines are appended to `outputs/reruns/rerun_log.jsonl` before its result is
recorded. When the job waits at the checkpoint that reviews this agent and the reviewed document changed, the
rerun's document goes under review (the orchestrator announces the checkpoint again); otherwise the rerun is
evidence only.

`rerun_log.jsonl` and `rerun_state.json` are derived from the events: the log is brought up to date (the request
line) before the agent runs and again once the result is recorded (the completion line), never ahead of the
events, so a result fenced off (the job cancelled, another rerun asked for meanwhile) leaves no line behind."""
from functools import partial
from importlib import import_module

from jobs.models import JobState
from jobs.pipelines import Status, reviewing_checkpoint
from jobs.reruns import current_outputs, pending_rerun, rerun_folder, rerun_rows, write_derived_files
from research.artifacts import read_json_artifact, write_json_artifact

from ..orchestrator import StepContext, StepOutcome
from ._agents import run_pinned
from ._paths import agent_path


def execute(context: StepContext) -> StepOutcome:
    job = context.job
    write_derived_files(job.job_id)
    request = pending_rerun(job.job_id)
    agent_id, rerun_id = request["agent_id"], request["rerun_id"]
    step = import_module(f"{__package__}.{agent_id}")  # the agent's own step: its inputs, its reviewed document
    folder = rerun_folder(job.job_id, agent_id, rerun_id)
    run = run_pinned(context, agent_id, step.agent_inputs(context), folder=folder,
                     prompt_version=request["prompt_version"])
    artifacts, reviewed = list(run.artifacts), run.artifacts[0]
    if hasattr(step, "reviewed_document"):
        reviewed = write_json_artifact(f"{folder}/{step.REVIEWED}", step.reviewed_document(run.output)).as_dict()
        artifacts.append(reviewed)
    output_sha256 = run.summary["output_sha256"]
    summary = {**run.summary, "rerun_id": rerun_id, "changed": output_sha256 != _current_sha256(context, agent_id)}
    state = JobState.objects.get(job_id=job.job_id)
    under_review = (state.status == Status.WAITING_APPROVAL
                    and state.waiting_step == reviewing_checkpoint(job.kind, agent_id)
                    and reviewed["sha256"] != state.review_sha256)
    return StepOutcome(artifacts=artifacts, summary=summary, review=reviewed if under_review else None,
                       after=partial(write_derived_files, job.job_id))


def _current_sha256(context: StepContext, agent_id: str) -> str:
    """The sha256 of the agent's current output; for a run recorded before results carried it, from its
    agent_run.json."""
    found = current_outputs(rerun_rows(context.job.job_id))[agent_id]["output_sha256"]
    if found is None:
        path = agent_path(context.job.job_id, agent_id, "agent_run.json")
        found = read_json_artifact(path, sha256=context.recorded_sha256(path))["output_sha256"]
    return found
