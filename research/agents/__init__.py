"""The agents of idea jobs, registered by id: pure, deterministic functions from input documents to an output
document that validates against its contract (see docs/agents.md). `run_agent` is the one way to call one."""
from types import ModuleType

from . import improvements, intent, report, strategy_spec
from .base import (  # noqa: F401
    InvalidInput, InvalidOutput, Prompt, UnknownPrompt, agent_run_document, check_output, execute, load_prompt,
    prompt_versions,
)

AGENTS: dict[str, ModuleType] = {agent.AGENT_ID: agent for agent in (intent, strategy_spec, report, improvements)}
# The prompt version each agent uses unless a job pins another.
DEFAULT_PROMPT_VERSIONS = {agent_id: "v1" for agent_id in AGENTS}


class UnknownAgent(InvalidInput):
    code = "unknown_agent"


def get_agent(agent_id: str) -> ModuleType:
    try:
        return AGENTS[agent_id]
    except KeyError:
        raise UnknownAgent(f"unknown agent {agent_id!r}") from None


def default_prompt(agent_id: str) -> Prompt:
    get_agent(agent_id)
    return load_prompt(agent_id, DEFAULT_PROMPT_VERSIONS[agent_id])


def run_agent(agent_id: str, inputs: dict, *, prompt_version: str | None = None) -> dict:
    """The output of agent `agent_id` on `inputs` under its pinned (or default) prompt, checked against its
    contract (InvalidOutput otherwise)."""
    agent = get_agent(agent_id)
    prompt = load_prompt(agent_id, prompt_version or DEFAULT_PROMPT_VERSIONS[agent_id])
    return execute(agent, inputs, prompt=prompt)

