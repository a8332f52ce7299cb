"""What every agent shares: its prompt (a versioned file, pinned by sha256), the check of its output against
its contract, and the `agent_run.json` document. An agent is a module with AGENT_ID, VERSION, CONTRACT and
`run(inputs, *, prompt) -> dict`; nothing here touches the database or writes a file.
"""
from dataclasses import dataclass
from pathlib import Path

from contracts import NAME_ID, canonical_json, sha256_hex, validate

from ..dossier import dossier_root
from ..errors import ResearchError

PROMPT_ROOT = Path(__file__).resolve().parent / "prompts"
PROMPT_VERSION = NAME_ID


class InvalidOutput(ResearchError):
    """An agent returned a document that does not validate against its output contract."""

    code = "invalid_output"
    error_class = "invalid_output"  # what a failed step's ERROR event names


class InvalidInput(ResearchError):
    """An agent's input documents do not allow a proposal (e.g. no symbol of the idea is in the snapshot)."""

    code = "invalid_input"


class UnknownPrompt(ResearchError):
    code = "unknown_prompt"


@dataclass(frozen=True)
class Prompt:
    """The text an agent follows, as pinned: its version and the sha256 of its bytes."""

    agent_id: str
    version: str
    text: str
    sha256: str

    def ref(self) -> dict:
        return {"agent_id": self.agent_id, "version": self.version, "sha256": self.sha256}


def load_prompt(agent_id: str, version: str) -> Prompt:
    """`prompts/<agent_id>/<version>.md`; UnknownPrompt if the agent or the version has no such file."""
    if not NAME_ID.fullmatch(agent_id) or not PROMPT_VERSION.fullmatch(version):
        raise UnknownPrompt(f"invalid prompt reference {agent_id!r}/{version!r}")
    path = PROMPT_ROOT / agent_id / f"{version}.md"
    if not path.is_file():
        raise UnknownPrompt(f"agent {agent_id!r} has no prompt version {version!r}")
    data = path.read_bytes()
    return Prompt(agent_id=agent_id, version=version, text=data.decode("utf-8"), sha256=sha256_hex(data))


def prompt_versions(agent_id: str) -> list[str]:
    return sorted(p.stem for p in (PROMPT_ROOT / agent_id).glob("*.md"))


def check_output(agent, output) -> dict:
    """`output` if it validates against the agent's contract, and every document it embeds (a blueprint)
    against that document's own contract; else InvalidOutput with the errors, as JSON pointers into `output`."""
    errors = validate(agent.CONTRACT, output)
    if not errors:
        for path, contract, doc in getattr(agent, "embedded", lambda _: [])(output):
            errors += [{**e, "path": path + e["path"]} for e in validate(contract, doc)]
    if errors:
        raise InvalidOutput(f"agent {agent.AGENT_ID} returned a document that does not validate against "
                            f"{agent.CONTRACT}", errors=errors)
    return output


def execute(agent, inputs: dict, *, prompt: Prompt) -> dict:
    """Run `agent` on `inputs` under `prompt` and check what it returns; the prompt must be the agent's."""
    if prompt.agent_id != agent.AGENT_ID:
        raise UnknownPrompt(f"prompt of {prompt.agent_id!r} given to agent {agent.AGENT_ID!r}")
    return check_output(agent, agent.run(inputs, prompt=prompt))


def agent_run_document(agent, *, prompt: Prompt, inputs: dict, output: dict, duration_ms: int | None = None,
                       provider: dict | None = None, exchange: dict | None = None) -> dict:
    """The `agent_run.json` the pipeline writes beside an agent's output (the duration only if given): with the
    provider that ran it and, for a model call, `exchange`: the artifact refs of the prompt sent, the request's
    parameters and the raw response."""
    doc = {
        "provider": provider or {"name": "rules"},
        "schema": "agent_run_v1",
        "agent_id": agent.AGENT_ID,
        "agent_version": agent.VERSION,
        "contract": agent.CONTRACT,
        "prompt": prompt.ref(),
        "input_sha256": sha256_hex(canonical_json(inputs)),
        "output_sha256": sha256_hex(canonical_json(output)),
        "output": output,
    }
    if exchange is not None:
        doc["exchange"] = exchange
    if duration_ms is not None:
        doc["duration_ms"] = duration_ms
    return doc


def holdout_evidence(gate: dict, *, run_id: str, segments: list) -> bool:
    """Whether a gate's evidence is a file of one of the run's holdout segments (e.g. `holdout_sharpe`)."""
    folders = [f"{dossier_root(run_id)}/segments/{s['segment_id']}/" for s in segments if s["role"] == "holdout"]
    return any(gate["evidence"]["artifact"].startswith(folder) for folder in folders)
