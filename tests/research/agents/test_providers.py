"""Providers: the rules provider runs the agent's own code; the openai_compatible provider talks to a real model
server on loopback (retries, timeouts, error classes, what is recorded), and its configuration is checked."""
import json
import logging
import socket
import subprocess
import sys
import time

import pytest

from research.agents import default_prompt, execute, intent
from research.agents.providers import (
    RULES, ProviderConfigError, ProviderError, check_providers, configuration_errors, provider_for, render_messages,
    retry_after, run_agent_through,
)

from .documents import POLICY, SNAPSHOT
from ...builders import Reply, a_closed_port, a_model_server, an_idea, chat_completion
from ...conftest import REPO_ROOT

SECRET = "sk-test-SECRET-123"
KEY_ENV = "EAM_TEST_MODEL_KEY"
INPUTS = {"idea": an_idea(symbols=("AAA", "BBB")), "snapshot": SNAPSHOT, "policy": POLICY}
IDEMPOTENCY_KEY = "job-abc:intent:1"
FAST = {"connect_timeout": 1, "read_timeout": 2, "max_retries": 2, "backoff_seconds": 0.01}


@pytest.fixture
def model_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


@pytest.fixture
def served_by(settings, model_key):
    """Points the intent agent at a model server's URL, with `FAST` timeouts and any other members given."""
    def configure(url: str, **members) -> None:
        settings.EAM_AGENT_PROVIDERS = {"intent": {
            "provider": "openai_compatible", "base_url": url, "model": "test-model", "api_key_env": KEY_ENV,
            **FAST, **members,
        }}
    return configure


def run_intent():
    return run_agent_through(provider_for("intent"), intent, INPUTS, prompt=default_prompt("intent"),
                             idempotency_key=IDEMPOTENCY_KEY)


def failure_of_intent() -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run_intent()
    return caught.value


# --- a model call -----------------------------------------------------------------------------------------------

def test_a_model_answer_is_the_output_and_the_exchange_records_the_call_without_the_key(served_by, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "research.agents.providers"):
        caplog.set_level(logging.DEBUG, logger=name)
    # given a model server that answers as the rule-based intent agent would
    with a_model_server() as server:
        served_by(server.url, temperature=0.2, seed=7)

        # when intent runs through it
        run = run_intent()

    # then the output is the rule-based agent's, and the call is recorded
    assert run.output == execute(intent, INPUTS, prompt=default_prompt("intent"))
    assert run.provider == {"name": "openai_compatible", "model": "test-model", "base_url": server.url}
    assert run.exchange.prompt == render_messages(intent, INPUTS, default_prompt("intent"))
    assert run.exchange.request == {
        "provider": "openai_compatible", "path": "/v1/chat/completions", "model": "test-model", "temperature": 0.2,
        "seed": 7, "response_format": {"type": "json_object"}, "idempotency_key": IDEMPOTENCY_KEY, "attempts": 1,
    }
    assert json.loads(run.exchange.response)["choices"][0]["message"]["content"]
    [received] = server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {SECRET}"
    assert received.headers["idempotency-key"] == IDEMPOTENCY_KEY
    assert received.headers["content-type"] == "application/json"
    assert received.body == {"model": "test-model", **run.exchange.prompt, "temperature": 0.2, "seed": 7,
                             "response_format": {"type": "json_object"}}
    # and the key is in nothing that is recorded or logged
    recorded = json.dumps([run.exchange.prompt, run.exchange.request, run.provider]).encode() + run.exchange.response
    assert SECRET.encode() not in recorded
    assert {r.name.split(".")[0] for r in caplog.records} >= {"research", "httpx", "httpcore"}
    for record in caplog.records:
        assert SECRET not in record.getMessage() and SECRET not in repr(record.__dict__)


def test_the_messages_are_the_prompt_the_instruction_the_schemas_and_the_canonical_inputs():
    prompt = default_prompt("intent")
    # given the same inputs with their keys in another order
    reversed_inputs = {key: INPUTS[key] for key in reversed(INPUTS)}

    # when both are rendered
    messages = render_messages(intent, INPUTS, prompt)

    # then the messages are identical, and hold what the model needs
    assert messages == render_messages(intent, reversed_inputs, prompt)
    system, user = messages["messages"]
    assert system["role"] == "system" and system["content"].startswith(prompt.text.rstrip())
    assert "JSON Schema agent_intent_output_v1:" in system["content"]
    assert "JSON Schema blueprint_v1:" in system["content"]  # the document intent embeds
    assert user == {"role": "user", "content": json.dumps(INPUTS, sort_keys=True, separators=(",", ":"),
                                                          ensure_ascii=False)}


def test_a_server_without_json_mode_gets_no_response_format_and_a_fenced_answer_is_accepted(served_by):
    # given a server that cannot do json mode and wraps its answer in a ```json fence
    fenced = "```json\n" + json.dumps(execute(intent, INPUTS, prompt=default_prompt("intent"))) + "\n```"
    with a_model_server(answer=lambda body: fenced) as server:
        served_by(server.url, capabilities={"json_mode": False})

        # when intent runs through it
        run = run_intent()

    # then the request had no response_format, and the output is the fenced document
    assert "response_format" not in server.requests[0].body
    assert "response_format" not in run.exchange.request
    assert run.output["agent_id"] == "intent"


def test_a_local_server_without_a_key_gets_no_authorization_header(settings):
    with a_model_server() as server:
        settings.EAM_AGENT_PROVIDERS = {"intent": {"provider": "openai_compatible", "base_url": server.url,
                                                   "model": "local"}}
        run = run_intent()
    assert "authorization" not in server.requests[0].headers
    assert run.output["agent_id"] == "intent"


# --- retries and failures ---------------------------------------------------------------------------------------

def test_a_503_is_retried_with_the_same_idempotency_key(served_by):
    # given a server that is unavailable once, then answers
    with a_model_server(Reply(status=503)) as server:
        served_by(server.url)

        # when intent runs through it
        run = run_intent()

    # then a second attempt, with the same key, succeeded
    assert [r.headers["idempotency-key"] for r in server.requests] == [IDEMPOTENCY_KEY, IDEMPOTENCY_KEY]
    assert run.exchange.request["attempts"] == 2
    assert run.output == execute(intent, INPUTS, prompt=default_prompt("intent"))


def test_a_429_with_retry_after_is_retried_after_the_time_it_asks_for(served_by):
    # given a server that asks to wait 0 s once (and a backoff that would mostly wait far longer)
    with a_model_server(Reply(status=429, headers={"Retry-After": "0"})) as server:
        served_by(server.url, backoff_seconds=60)

        # when intent runs through it
        started = time.monotonic()
        run = run_intent()

    # then the retry came at once and succeeded
    assert time.monotonic() - started < 5
    assert len(server.requests) == 2
    assert run.exchange.request["attempts"] == 2


@pytest.mark.parametrize("header, seconds", [
    ("0", 0.0), ("2.5", 2.5), ("120", 30.0), ("-1", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, None),
])
def test_a_numeric_retry_after_is_honoured_up_to_a_cap(header, seconds):
    assert retry_after(header) == seconds


@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_another_status_fails_at_once_and_is_not_retryable(served_by, status):
    # given a server that refuses the request
    with a_model_server(Reply(status=status, body=b'{"error": "no"}')) as server:
        served_by(server.url)

        # when intent runs through it
        error = failure_of_intent()

    # then the step fails on the first attempt, for good
    assert (error.error_class, error.status, error.attempt, error.retryable) == ("http_status", status, 1, False)
    assert error.details == {"status": status, "attempt": 1, "path": "/v1/chat/completions"}
    assert error.code == "provider_error"
    assert len(server.requests) == 1


def test_retries_run_out_on_a_server_that_stays_unavailable(served_by):
    with a_model_server(*[Reply(status=502)] * 3) as server:
        served_by(server.url, max_retries=2)
        error = failure_of_intent()
    assert (error.error_class, error.status, error.attempt, error.retryable) == ("http_status", 502, 3, True)
    assert len(server.requests) == 3


def test_a_read_timeout_is_retried_then_fails_as_retryable(served_by):
    # given a server slower than the read timeout, every time
    with a_model_server(*[Reply(delay=1.0)] * 2) as server:
        served_by(server.url, read_timeout=0.2, max_retries=1)

        # when intent runs through it
        error = failure_of_intent()

    # then two attempts timed out; a later attempt of the step may succeed
    assert (error.error_class, error.status, error.attempt, error.retryable) == ("timeout", None, 2, True)
    assert len(server.requests) == 2


def test_a_refused_connection_is_a_network_failure(served_by):
    # given a port where nothing listens
    served_by(f"http://127.0.0.1:{a_closed_port()}/v1", max_retries=1)

    # when intent runs through it
    error = failure_of_intent()

    # then both attempts failed on the network, and the message does not carry the key
    assert (error.error_class, error.status, error.attempt, error.retryable) == ("network", None, 2, True)
    assert error.path == "/v1/chat/completions"
    assert SECRET not in str(error)


@pytest.mark.parametrize("body, with_errors", [
    (chat_completion("Here is the blueprint you asked for."), False),
    (chat_completion('{"schema_version": "agent_intent_output_v1", "agent_id": "intent"}'), True),
    (chat_completion("[1, 2, 3]"), False),
    (chat_completion('{"horizon_bars": NaN}'), False),
    (b'{"choices": []}', False),
    (b"<html>not json</html>", False),
], ids=["prose", "schema_invalid", "not_an_object", "nan", "no_choices", "not_json"])
def test_an_answer_that_is_not_a_valid_output_fails_at_once(served_by, body, with_errors):
    # given a server whose answer is not a valid output document
    with a_model_server(Reply(body=body)) as server:
        served_by(server.url)

        # when intent runs through it
        error = failure_of_intent()

    # then it fails as invalid_output, not retried, with the schema's errors when there are some
    assert (error.error_class, error.status, error.attempt, error.retryable) == ("invalid_output", 200, 1, False)
    assert bool(error.errors) is with_errors
    assert len(server.requests) == 1


# --- configuration ----------------------------------------------------------------------------------------------

def openai(**members) -> dict:
    return {"provider": "openai_compatible", "base_url": "http://127.0.0.1:8001/v1", "model": "m", **members}


@pytest.mark.parametrize("agent_id, entry, key, words", [
    ("nobody", {"provider": "rules"}, '["nobody"]', "unknown agent"),
    ("intent", {"provider": "magic"}, '["intent"].provider', "must be one of"),
    ("intent", {}, '["intent"].provider', "must be one of"),
    ("intent", "rules", '["intent"]', "must be a JSON object"),
    ("intent", openai(api_key=SECRET), '["intent"].api_key', "unknown key"),
    ("intent", openai(seed=7, capabilities={"seed": False}), '["intent"].seed',
     "the server of intent does not support seed (capabilities.seed is false)"),
    ("intent", {"provider": "rules", "model": "m"}, '["intent"].model', "does not support model"),
    ("intent", {"provider": "rules", "temperature": 0.1}, '["intent"].temperature', "does not support temperature"),
    ("intent", {"provider": "rules", "base_url": "http://h/v1"}, '["intent"].base_url', "does not support"),
    ("intent", {"provider": "rules", "capabilities": {"seed": True}}, '["intent"].capabilities.seed',
     "may only turn a capability off"),
    ("intent", openai(capabilities={"telepathy": False}), '["intent"].capabilities.telepathy', "unknown capability"),
    ("intent", openai(capabilities={"network": False}), '["intent"].capabilities.network', "cannot work"),
    ("intent", openai(api_key_env="EAM_TEST_UNSET_KEY"), '["intent"].api_key_env', "is not set or empty"),
    ("intent", openai(api_key_env=SECRET), '["intent"].api_key_env', "name of an environment variable"),
    ("intent", openai(api_key_file="/nonexistent/eam/model.key"), '["intent"].api_key_file', "cannot read"),
    ("intent", openai(api_key_file="{empty_file}"), '["intent"].api_key_file', "is empty"),
    ("intent", openai(api_key_env=KEY_ENV, api_key_file="{key_file}"), '["intent"]', "not both"),
    ("intent", openai(base_url="ftp://127.0.0.1/v1"), '["intent"].base_url', "http or https"),
    ("intent", openai(base_url="127.0.0.1:8001/v1"), '["intent"].base_url', "http or https"),
    ("intent", openai(base_url=f"https://me:{SECRET}@models.example/v1"), '["intent"].base_url', "credentials"),
    ("intent", openai(base_url="http://h/v1?key=1"), '["intent"].base_url', "no query"),
    ("intent", {"provider": "openai_compatible", "model": "m"}, '["intent"].base_url', "required"),
    ("intent", {"provider": "openai_compatible", "base_url": "http://h/v1"}, '["intent"].model', "required"),
    ("intent", openai(connect_timeout=-1), '["intent"].connect_timeout', "greater than 0"),
    ("intent", openai(read_timeout=-0.5), '["intent"].read_timeout', "greater than 0"),
    ("intent", openai(max_retries=-1), '["intent"].max_retries', "0 or more"),
    ("intent", openai(backoff_seconds=-1), '["intent"].backoff_seconds', "0 or more"),
    ("intent", openai(seed=1.5), '["intent"].seed', "integer"),
    ("intent", openai(temperature="hot"), '["intent"].temperature', "number"),
    ("intent", openai(max_tokens=0), '["intent"].max_tokens', "greater than 0"),
])
def test_a_configuration_that_cannot_work_is_named_by_agent_and_key(agent_id, entry, key, words, model_key,
                                                                    tmp_path):
    (tmp_path / "empty.key").write_text("\n")
    (tmp_path / "model.key").write_text(SECRET + "\n")
    if isinstance(entry, dict):
        entry = {k: v.format(empty_file=tmp_path / "empty.key", key_file=tmp_path / "model.key")
                 if isinstance(v, str) else v for k, v in entry.items()}

    # when the configuration is checked
    errors = configuration_errors({agent_id: entry})

    # then one message names the agent, the key and the problem, and no message holds the key's value
    assert any(message.startswith(f"EAM_AGENT_PROVIDERS{key}:") and words in message for message in errors), errors
    assert all(SECRET not in message for message in errors)


def test_working_configurations_have_no_errors(model_key, tmp_path):
    (tmp_path / "model.key").write_text(SECRET + "\n")
    assert configuration_errors({}) == []
    assert configuration_errors({
        "intent": openai(api_key_env=KEY_ENV, temperature=0.2, seed=7, connect_timeout=5, read_timeout=120,
                         max_retries=3, backoff_seconds=0.5, max_tokens=4096, capabilities={"seed": True}),
        "report": openai(api_key_file=str(tmp_path / "model.key"), capabilities={"json_mode": False}),
        "strategy_spec": {"provider": "rules"},
    }) == []


def test_the_system_check_reports_each_problem_and_provider_for_refuses_the_entry(settings, model_key):
    # given a configuration with two problems in intent's entry
    settings.EAM_AGENT_PROVIDERS = {"intent": openai(seed=7, capabilities={"seed": False}, api_key=SECRET),
                                    "report": {"provider": "rules"}}

    # when the system check and provider_for read it
    problems = check_providers()
    with pytest.raises(ProviderConfigError) as caught:
        provider_for("intent")

    # then both problems are errors research.E010, the step is refused, and the key is in no message
    assert [p.id for p in problems] == ["research.E010", "research.E010"]
    assert '"intent"' in str(caught.value) and SECRET not in str(caught.value)
    assert provider_for("report") is RULES
    settings.EAM_AGENT_PROVIDERS = {}
    assert check_providers() == []


# --- the default: rules ------------------------------------------------------------------------------------------

def test_without_configuration_the_rules_provider_runs_the_agent_and_touches_no_network(settings, monkeypatch):
    # given no provider configuration, and a network that fails any connection
    settings.EAM_AGENT_PROVIDERS = {}
    connects = []

    def refuse(sock, address):
        connects.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)

    # when intent runs through its provider
    provider = provider_for("intent")
    run = run_agent_through(provider, intent, INPUTS, prompt=default_prompt("intent"), idempotency_key="k")

    # then it is the rules provider, with the agent's own output, no exchange and no connection
    assert provider is RULES
    assert run.output == execute(intent, INPUTS, prompt=default_prompt("intent"))
    assert (run.provider, run.exchange) == ({"name": "rules"}, None)
    assert connects == []


def test_the_rules_provider_never_imports_httpx():
    # given a fresh interpreter with the project's settings and no provider configured
    script = (
        "import json, sys, django; django.setup()\n"
        "from research.agents import default_prompt, intent\n"
        "from research.agents.providers import provider_for, run_agent_through, configuration_errors\n"
        "inputs = json.loads(sys.stdin.read())\n"
        "run = run_agent_through(provider_for('intent'), intent, inputs, prompt=default_prompt('intent'),"
        " idempotency_key='k')\n"
        "assert configuration_errors() == []\n"
        "print(json.dumps({'httpx': 'httpx' in sys.modules, 'agent_id': run.output['agent_id']}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "eam_site.test_settings",
           "EAM_AGENT_PROVIDERS": "{}", "SECRET_KEY": "x"}

    # when it runs an agent through its provider
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(INPUTS), capture_output=True,
                          text=True, cwd=REPO_ROOT, env=env, timeout=60)

    # then the agent ran and httpx was never imported
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"httpx": False, "agent_id": "intent"}


@pytest.mark.django_db(transaction=True)
def test_a_configuration_a_provider_cannot_serve_stops_check_and_the_worker_at_start_up(process_env):
    # given a rules agent asked for a seed, which only a model can take
    env = {**process_env, "EAM_AGENT_PROVIDERS": json.dumps({"intent": {"provider": "rules", "seed": 7}})}

    # when an operator runs check, and starts a worker
    outcomes = [subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                               text=True, timeout=120) for args in (["check"], ["run_jobs", "--once"])]

    # then both refuse before any job is touched, naming the agent and the key
    for done in outcomes:
        assert done.returncode != 0
        assert "research.E010" in done.stderr and 'EAM_AGENT_PROVIDERS["intent"].seed' in done.stderr
