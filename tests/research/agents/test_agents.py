"""What every agent shares: the registry, prompts pinned by sha256, output contracts, invalid_output, the
agent_run document and determinism (same inputs and prompt version, same bytes; also in another process)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import canonical_json, schema_names, sha256_hex
from research.agents import (
    AGENTS, DEFAULT_PROMPT_VERSIONS, InvalidOutput, UnknownAgent, UnknownPrompt, agent_run_document, default_prompt,
    execute, load_prompt, prompt_versions, run_agent,
)
from research.agents.base import PROMPT_ROOT

from .documents import POLICY, SNAPSHOT
from ...builders import a_blueprint, an_idea

IDEA = {**an_idea("Cross-sectional momentum", symbols=["AAA", "BBB", "CCC"]),
        "hypothesis": "Twelve-month winners keep winning; long-short."}
PURE_INPUTS = {
    "intent": {"idea": IDEA, "snapshot": SNAPSHOT, "policy": POLICY},
    "strategy_spec": {"blueprint": a_blueprint("ts_momentum", {"lookback": 120, "vol_target": 0.1}),
                      "snapshot": SNAPSHOT, "policy": POLICY},
    "improvements": {"blueprint": a_blueprint("rsi_mean_reversion"), "tried_params_sha256": [], "policy": POLICY,
                     "evidence": {"oos": {"sharpe": 0.4, "trades": 30}, "stress": {"costs_x2": {"sharpe": -0.1}},
                                  "positive_share": 0.5, "test_segments": [], "gates": []}},
}


def test_the_four_agents_are_registered_with_a_contract_and_a_v1_prompt():
    assert sorted(AGENTS) == ["improvements", "intent", "report", "strategy_spec"]
    for agent_id, agent in AGENTS.items():
        assert agent.AGENT_ID == agent_id and agent.VERSION == "1"
        assert agent.CONTRACT == f"agent_{agent_id}_output_v1" and agent.CONTRACT in schema_names()
        assert DEFAULT_PROMPT_VERSIONS[agent_id] == "v1"
        assert prompt_versions(agent_id) == ["v1"]


def test_a_prompt_is_pinned_by_the_sha256_of_its_file():
    prompt = default_prompt("intent")
    assert (prompt.agent_id, prompt.version) == ("intent", "v1")
    assert prompt.sha256 == sha256_hex((PROMPT_ROOT / "intent" / "v1.md").read_bytes())
    assert prompt.ref() == {"agent_id": "intent", "version": "v1", "sha256": prompt.sha256}
    assert "preferred_families" in prompt.text  # the prompt states the rules


@pytest.mark.parametrize("agent_id, version", [("intent", "v9"), ("intent", "../report/v1"), ("nobody", "v1")])
def test_an_unknown_prompt_is_refused(agent_id, version):
    with pytest.raises(UnknownPrompt) as caught:
        load_prompt(agent_id, version)
    assert caught.value.code == "unknown_prompt"


def test_an_unknown_agent_is_refused():
    with pytest.raises(UnknownAgent):
        run_agent("oracle", {})


class Broken:
    """An agent that forgets a member of its output and embeds an invalid blueprint."""

    AGENT_ID = "intent"
    VERSION = "0"
    CONTRACT = "agent_intent_output_v1"

    def __init__(self, break_blueprint: bool = False):
        self.break_blueprint = break_blueprint

    def run(self, inputs, *, prompt):
        output = AGENTS["intent"].run(inputs, prompt=prompt)
        if self.break_blueprint:
            output["blueprint"]["strategy"]["params"] = {"lookback": "long"}
        else:
            del output["families"]
        return output

    def embedded(self, output):
        return AGENTS["intent"].embedded(output)


@pytest.mark.parametrize("break_blueprint, path", [(False, "/families"),
                                                   (True, "/blueprint/strategy/params/lookback")])
def test_an_output_that_does_not_validate_is_invalid_output(break_blueprint, path):
    with pytest.raises(InvalidOutput) as caught:
        execute(Broken(break_blueprint), PURE_INPUTS["intent"], prompt=default_prompt("intent"))
    assert caught.value.code == "invalid_output"
    assert path in [e["path"] for e in caught.value.errors]


def test_a_prompt_of_another_agent_is_refused():
    with pytest.raises(UnknownPrompt):
        execute(AGENTS["intent"], PURE_INPUTS["intent"], prompt=default_prompt("report"))


def test_the_agent_run_document_names_agent_prompt_input_and_output():
    inputs = PURE_INPUTS["intent"]
    prompt = default_prompt("intent")
    output = run_agent("intent", inputs)
    doc = agent_run_document(AGENTS["intent"], prompt=prompt, inputs=inputs, output=output)
    assert doc == {"schema": "agent_run_v1", "provider": {"name": "rules"}, "agent_id": "intent", "agent_version": "1",
                   "contract": "agent_intent_output_v1", "prompt": prompt.ref(),
                   "input_sha256": sha256_hex(canonical_json(inputs)),
                   "output_sha256": sha256_hex(canonical_json(output)), "output": output}
    assert agent_run_document(AGENTS["intent"], prompt=prompt, inputs=inputs, output=output,
                              duration_ms=12)["duration_ms"] == 12


@pytest.mark.parametrize("agent_id", sorted(PURE_INPUTS))
def test_same_inputs_same_bytes_twice_and_whatever_the_key_order(agent_id):
    inputs = PURE_INPUTS[agent_id]
    reordered = json.loads(json.dumps(inputs), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    outputs = {canonical_json(run_agent(agent_id, inputs)), canonical_json(run_agent(agent_id, inputs)),
               canonical_json(run_agent(agent_id, reordered))}
    assert len(outputs) == 1


SCRIPT = """
import json, sys
import django
django.setup()
from contracts import canonical_json
from research.agents import run_agent
inputs = json.load(sys.stdin)
sys.stdout.write(canonical_json({a: run_agent(a, doc) for a, doc in inputs.items()}).decode())
"""


def test_same_bytes_in_another_process():
    # a fresh interpreter, other hash seed: nothing may depend on set or dict iteration order
    here = canonical_json({a: run_agent(a, doc) for a, doc in PURE_INPUTS.items()})
    root = Path(__file__).resolve().parents[3]
    there = subprocess.run(
        [sys.executable, "-c", SCRIPT], input=json.dumps(PURE_INPUTS), capture_output=True, text=True, check=True,
        cwd=root, env={**os.environ, "PYTHONHASHSEED": "12345",
                       "DJANGO_SETTINGS_MODULE": "eam_site.test_settings"},
    ).stdout
    assert there.encode() == here
