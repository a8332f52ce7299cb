"""What every agent step shares: the prompt its job pinned at submit, the agent run under it (output checked
against its contract: `invalid_output` otherwise, before anything is written), and its two artifacts,
`outputs/agents/<agent_id>/output.json` and `agent_run.json`.

`agent_run.json` holds no duration: the same idea on a fresh database must give byte-identical artifacts, and
a wall-clock figure never would. The duration is in the result event's summary instead (`duration_ms`).
"""
import time
from dataclasses import dataclass

from jobs.models import JobEvent
from jobs.services import prompt_pins_path
from research.agents import agent_run_document, execute, get_agent, load_prompt
from research.artifacts import read_json_artifact, write_json_artifact
from research.errors import IntegrityFailure

from ..orchestrator import StepContext
from ._paths import agent_path


@dataclass(frozen=True)
class AgentRun:
    output: dict
    artifacts: list[dict]  # output.json, agent_run.json (refs: path, sha256, bytes)
    summary: dict


def prompt_pins(context: StepContext) -> tuple[dict, dict]:
    """(the job's prompt pins, their artifact ref), checked against the sha256 its submit event recorded."""
    submit = JobEvent.objects.filter(job_id=context.job.job_id, seq=1).values_list("payload", flat=True).first()
    ref = (submit or {}).get("prompt_pins")
    if not ref or ref.get("path") != prompt_pins_path(context.job.job_id):
        raise IntegrityFailure(f"the submit event of job {context.job.job_id} records no prompt pins")
    return read_json_artifact(ref["path"], sha256=ref["sha256"]), ref


def run_pinned(context: StepContext, agent_id: str, inputs: dict) -> AgentRun:
    """Run `agent_id` on `inputs` under the prompt the job pinned; write its output and agent_run.json."""
    pins, _ = prompt_pins(context)
    pin = pins["agents"][agent_id]
    prompt = load_prompt(agent_id, pin["version"])
    if prompt.sha256 != pin["sha256"]:
        raise IntegrityFailure(f"prompt {agent_id}/{pin['version']} changed since job {context.job.job_id} pinned "
                               f"it ({pin['sha256']}, now {prompt.sha256})")
    agent = get_agent(agent_id)
    started = time.monotonic()
    output = execute(agent, inputs, prompt=prompt)  # InvalidOutput: the step fails, nothing is written
    duration_ms = round((time.monotonic() - started) * 1000)
    job_id = context.job.job_id
    refs = [write_json_artifact(agent_path(job_id, agent_id, "output.json"), output),
            write_json_artifact(agent_path(job_id, agent_id, "agent_run.json"),
                                agent_run_document(agent, prompt=prompt, inputs=inputs, output=output))]
    summary = {"agent_id": agent_id, "agent_version": agent.VERSION, "prompt_version": prompt.version,
               "prompt_sha256": prompt.sha256, "duration_ms": duration_ms}
    return AgentRun(output=output, artifacts=[ref.as_dict() for ref in refs], summary=summary)
