"""What every agent step shares: the prompt its job pinned at submit, the agent run under it through the agent's
provider (`rules`, or a model behind `openai_compatible`), its output checked against its contract before
anything is written, and its files in one folder: `output.json`, `agent_run.json` and, for a model call, the
prompt sent, the request's parameters and the raw response (`model_prompt.json`, `model_request.json`,
`model_response.json`), whose sha256 agent_run.json records.

The pipeline's run writes to `outputs/agents/<agent_id>/`, a rerun to `.../reruns/<rerun_id>/`. A folder that
already holds an agent_run.json for the same inputs, prompt and agent version (an attempt that wrote its files
and then lost its worker) is taken as the run: a model is not called, and billed, twice for one answer, and
its answer, which may differ each time, cannot conflict with the files already written.

`agent_run.json` holds no duration: the same idea on a fresh database must give byte-identical artifacts, and
a wall-clock figure never would. The duration is in the result event's summary instead (`duration_ms`).
"""
import json
import time
from dataclasses import dataclass

from contracts import canonical_json, sha256_hex
from jobs.models import JobEvent
from jobs.services import prompt_pins_path
from research.agents import agent_run_document, get_agent, load_prompt
from research.agents.providers import provider_for, run_agent_through
from research.artifacts import ArtifactRef, read_artifact, read_json_artifact, write_artifact, write_json_artifact
from research.errors import ArtifactNotFound, IntegrityFailure

from ..orchestrator import StepContext
from ._paths import agent_path

EXCHANGE_FILES = {"prompt": "model_prompt.json", "request": "model_request.json", "response": "model_response.json"}


@dataclass(frozen=True)
class AgentRun:
    output: dict
    artifacts: list[dict]  # output.json, agent_run.json, then the model exchange if any (refs: path, sha256, bytes)
    summary: dict


def prompt_pins(context: StepContext) -> tuple[dict, dict]:
    """(the job's prompt pins, their artifact ref), checked against the sha256 its submit event recorded."""
    submit = JobEvent.objects.filter(job_id=context.job.job_id, seq=1).values_list("payload", flat=True).first()
    ref = (submit or {}).get("prompt_pins")
    if not ref or ref.get("path") != prompt_pins_path(context.job.job_id):
        raise IntegrityFailure(f"the submit event of job {context.job.job_id} records no prompt pins")
    return read_json_artifact(ref["path"], sha256=ref["sha256"]), ref


def pinned_prompt(context: StepContext, agent_id: str, version: str | None = None):
    """The prompt of `agent_id` in `version` (default: the one the job pinned); the pinned one is checked against
    the sha256 pinned at submit, so an edited prompt file is never used under an old pin."""
    pins, _ = prompt_pins(context)
    pin = pins["agents"][agent_id]
    prompt = load_prompt(agent_id, version or pin["version"])
    if prompt.version == pin["version"] and prompt.sha256 != pin["sha256"]:
        raise IntegrityFailure(f"prompt {agent_id}/{pin['version']} changed since job {context.job.job_id} pinned "
                               f"it ({pin['sha256']}, now {prompt.sha256})")
    return prompt


def run_pinned(context: StepContext, agent_id: str, inputs: dict, *, folder: str | None = None,
               prompt_version: str | None = None) -> AgentRun:
    """Run `agent_id` on `inputs` under the job's pinned prompt (or `prompt_version`) and write its files to
    `folder` (default: the agent's own folder)."""
    job_id = context.job.job_id
    folder = folder or agent_path(job_id, agent_id, "").rstrip("/")
    prompt = pinned_prompt(context, agent_id, prompt_version)
    agent = get_agent(agent_id)
    started = time.monotonic()
    earlier = _earlier_run(folder, agent, prompt, inputs)
    if earlier is not None:
        output, provider = earlier["output"], earlier.get("provider") or {"name": "rules"}
        exchange_refs = _refs(earlier.get("exchange"))
    else:
        key = sha256_hex(f"{job_id}/{folder}/{context.attempt}".encode())[:32]  # the same on each HTTP retry
        run = run_agent_through(provider_for(agent_id), agent, inputs, prompt=prompt, idempotency_key=key)
        output, provider, exchange_refs = run.output, run.provider, _write_exchange(folder, run.exchange)
    duration_ms = round((time.monotonic() - started) * 1000)
    exchange = {name: {"path": ref.path, "sha256": ref.sha256} for name, ref in exchange_refs.items()} or None
    refs = [write_json_artifact(f"{folder}/output.json", output),
            write_json_artifact(f"{folder}/agent_run.json", agent_run_document(
                agent, prompt=prompt, inputs=inputs, output=output, provider=provider, exchange=exchange)),
            *exchange_refs.values()]
    summary = {"agent_id": agent_id, "agent_version": agent.VERSION, "prompt_version": prompt.version,
               "prompt_sha256": prompt.sha256, "provider": provider["name"],
               "output_sha256": sha256_hex(canonical_json(output)), "duration_ms": duration_ms}
    return AgentRun(output=output, artifacts=[ref.as_dict() for ref in refs], summary=summary)


def _earlier_run(folder: str, agent, prompt, inputs: dict) -> dict | None:
    """The agent_run.json an earlier attempt wrote to `folder` for these inputs, prompt and agent version."""
    try:
        doc = json.loads(read_artifact(f"{folder}/agent_run.json"))
    except ArtifactNotFound:
        return None
    same = (doc.get("input_sha256") == sha256_hex(canonical_json(inputs)) and doc.get("prompt") == prompt.ref()
            and doc.get("agent_version") == agent.VERSION)
    if not same:
        raise IntegrityFailure(f"{folder}/agent_run.json holds a run for other inputs, prompt or agent version")
    return doc


def _write_exchange(folder: str, exchange) -> dict[str, ArtifactRef]:
    if exchange is None:
        return {}
    return {
        "prompt": write_json_artifact(f"{folder}/{EXCHANGE_FILES['prompt']}", exchange.prompt),
        "request": write_json_artifact(f"{folder}/{EXCHANGE_FILES['request']}", exchange.request),
        "response": write_artifact(f"{folder}/{EXCHANGE_FILES['response']}", exchange.response),
    }


def _refs(exchange: dict | None) -> dict[str, ArtifactRef]:
    """The refs of an earlier attempt's exchange files, each checked against the sha256 its agent_run.json names."""
    refs = {}
    for name, ref in (exchange or {}).items():
        data = read_artifact(ref["path"])
        if sha256_hex(data) != ref["sha256"]:
            raise IntegrityFailure(f"{ref['path']} changed since its agent run recorded it")
        refs[name] = ArtifactRef(path=ref["path"], sha256=ref["sha256"], bytes=len(data))
    return refs
