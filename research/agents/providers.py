"""What an agent runs through: `rules` (the agent module's own deterministic `run`) or `openai_compatible` (one
chat-completions call to a model server, retried on transient failures), chosen per agent by
settings.EAM_AGENT_PROVIDERS. Both return the same checked output; see docs/agents.md, section Providers.
"""
import json
import logging
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register

from contracts import canonical_json, load_schema, schema_names

from ..errors import ResearchError
from .base import InvalidOutput, Prompt, UnknownPrompt, check_output, execute

log = logging.getLogger(__name__)

SETTING = "EAM_AGENT_PROVIDERS"
# What each provider can do; a configuration may turn a capability off for its server, never on.
CAPABILITIES = {
    "rules": {"network": False, "deterministic": True, "seed": False, "temperature": False, "json_mode": False},
    "openai_compatible": {"network": True, "deterministic": False, "seed": True, "temperature": True,
                          "json_mode": True},
}
# Each configuration key besides `provider` and `capabilities`, and the capability it asks for.
KEY_NEEDS = {
    "base_url": "network", "model": "network", "api_key_env": "network", "api_key_file": "network",
    "max_tokens": "network", "connect_timeout": "network", "read_timeout": "network", "max_retries": "network",
    "backoff_seconds": "network", "temperature": "temperature", "seed": "seed",
}
REQUIRED = {"rules": (), "openai_compatible": ("base_url", "model")}
DEFAULTS = {"connect_timeout": 5.0, "read_timeout": 120.0, "max_retries": 3, "backoff_seconds": 0.5}
# Statuses that say "not now" rather than "not this": the same request may succeed a moment later.
RETRYABLE_STATUS = {429, 502, 503, 504}
RETRY_AFTER_STATUS = {429, 503}
RETRY_AFTER_CAP_SECONDS = 30.0
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FENCE = re.compile(r"^\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)
INSTRUCTION = (
    "Answer with ONE JSON object and nothing else: no prose, no code fence. It must validate against the JSON "
    "Schema of the output contract {contract} below, and every document it embeds against the schema of the "
    "contract its schema_version names (also below)."
)


class ProviderError(ResearchError):
    """A model call that failed: error_class is one of timeout | network | http_status | invalid_output."""

    code = "provider_error"

    def __init__(self, message: str, *, error_class: str, status: int | None = None, attempt: int, path: str,
                 retryable: bool, errors: list[dict] | None = None):
        super().__init__(message, errors=errors)
        self.error_class = error_class
        self.status = status
        self.attempt = attempt
        self.path = path
        self.retryable = retryable

    @property
    def details(self) -> dict:
        return {"status": self.status, "attempt": self.attempt, "path": self.path}


class ProviderConfigError(Exception):
    """A provider configuration that cannot work (every problem of the agent's entry, in the message)."""


@dataclass(frozen=True)
class Exchange:
    """What a model call sent and received; the worker stores each as an artifact and their sha256 in
    agent_run.json. Never the key, nor any header."""

    prompt: dict     # {"messages": [...]}, as sent
    request: dict    # the body's parameters without its messages, plus provider, path, idempotency_key, attempts
    response: bytes  # the raw body of the successful answer, exactly as received


@dataclass(frozen=True)
class ProviderRun:
    output: dict                # checked with base.check_output
    provider: dict              # what agent_run.json records of the provider
    exchange: Exchange | None   # None for rules


@dataclass(frozen=True)
class RulesProvider:
    """The agent module's own `run`: deterministic, no network."""

    name = "rules"

    def run(self, agent, inputs: dict, *, prompt: Prompt, idempotency_key: str) -> ProviderRun:
        return ProviderRun(output=execute(agent, inputs, prompt=prompt), provider={"name": self.name},
                           exchange=None)


RULES = RulesProvider()


@dataclass(frozen=True)
class OpenAICompatibleProvider:
    """One POST to `{base_url}/chat/completions` per attempt; the answer's content must be the output document."""

    name = "openai_compatible"
    agent_id: str
    base_url: str
    model: str
    key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    json_mode: bool = True
    connect_timeout: float = DEFAULTS["connect_timeout"]
    read_timeout: float = DEFAULTS["read_timeout"]
    max_retries: int = DEFAULTS["max_retries"]
    backoff_seconds: float = DEFAULTS["backoff_seconds"]

    @property
    def path(self) -> str:
        return urlsplit(self.base_url).path + "/chat/completions"

    def run(self, agent, inputs: dict, *, prompt: Prompt, idempotency_key: str) -> ProviderRun:
        if prompt.agent_id != agent.AGENT_ID:
            raise UnknownPrompt(f"prompt of {prompt.agent_id!r} given to agent {agent.AGENT_ID!r}")
        rendered = render_messages(agent, inputs, prompt)
        parameters = self._parameters()
        response, attempts = self._post({"model": self.model, **rendered, **parameters}, idempotency_key)
        output = self._output(agent, response, attempts)
        request = {"provider": self.name, "path": self.path, "model": self.model, **parameters,
                   "idempotency_key": idempotency_key, "attempts": attempts}
        return ProviderRun(output=output, provider={"name": self.name, "model": self.model, "base_url": self.base_url},
                           exchange=Exchange(prompt=rendered, request=request, response=response.content))

    def _parameters(self) -> dict:
        sent = {"temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens}
        parameters = {name: value for name, value in sent.items() if value is not None}
        if self.json_mode:
            parameters["response_format"] = {"type": "json_object"}
        return parameters

    def _post(self, body: dict, idempotency_key: str):
        """(the 2xx response, attempts made); ProviderError once an attempt fails for good or retries run out."""
        import httpx  # only a configured model call pays for it; the rules provider never imports it

        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        timeout = httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout, write=self.read_timeout,
                                pool=self.connect_timeout)
        content = json.dumps(body, ensure_ascii=False).encode()
        with httpx.Client(timeout=timeout) as client:
            attempt = 0
            while True:
                attempt += 1
                started = time.monotonic()
                wait = None
                try:
                    response = client.post(self.base_url + "/chat/completions", content=content, headers=headers)
                except httpx.TimeoutException as exc:
                    self._log("timeout", attempt, started)
                    failure = self._failure("timeout", f"timed out ({type(exc).__name__})", attempt, retryable=True)
                except httpx.TransportError as exc:
                    self._log("network", attempt, started)
                    failure = self._failure("network", f"failed: {type(exc).__name__}: {exc}", attempt,
                                            retryable=True)
                else:
                    status = response.status_code
                    self._log(status, attempt, started)
                    if 200 <= status < 300:
                        return response, attempt
                    failure = self._failure("http_status", f"answered {status}", attempt, status=status,
                                            retryable=status in RETRYABLE_STATUS)
                    if status in RETRY_AFTER_STATUS:
                        wait = retry_after(response.headers.get("Retry-After"))
                if not failure.retryable or attempt > self.max_retries:
                    raise failure
                time.sleep(wait if wait is not None else backoff(self.backoff_seconds, attempt))

    def _failure(self, error_class: str, what: str, attempt: int, *, status=None, retryable: bool) -> ProviderError:
        return ProviderError(f"model call of agent {self.agent_id} to {self.path} {what} (attempt {attempt})",
                             error_class=error_class, status=status, attempt=attempt, path=self.path,
                             retryable=retryable)

    def _log(self, outcome, attempt: int, started: float) -> None:
        log.info("agent %s: POST %s -> %s (attempt %d, %.3fs)", self.agent_id, self.path, outcome, attempt,
                 time.monotonic() - started)

    def _output(self, agent, response, attempt: int) -> dict:
        """The output document in a 2xx answer, checked against the agent's contract."""
        def invalid(reason: str, errors=None) -> ProviderError:
            return ProviderError(f"model answer for agent {self.agent_id} from {self.path} {reason}",
                                 error_class="invalid_output", status=response.status_code, attempt=attempt,
                                 path=self.path, retryable=False, errors=errors)

        try:
            content = json.loads(response.content)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise invalid("is not a chat completion with choices[0].message.content") from None
        if not isinstance(content, str):
            raise invalid("has a content that is not a string")
        fenced = FENCE.match(content)
        try:
            output = json.loads(fenced.group(1) if fenced else content, parse_constant=_no_constant)
        except ValueError:
            raise invalid("has a content that is not JSON") from None
        if not isinstance(output, dict):
            raise invalid("has a content that is not a JSON object")
        try:
            return check_output(agent, output)
        except InvalidOutput as exc:
            raise invalid(f"does not validate against {agent.CONTRACT}", errors=exc.errors) from None


def _no_constant(name: str):
    # NaN and Infinity are not JSON; canonical_json would refuse them later, after the call was paid for.
    raise ValueError(f"{name} is not JSON")


def retry_after(value: str | None) -> float | None:
    """Seconds a numeric Retry-After asks for, capped; None for a date or anything else."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(seconds, RETRY_AFTER_CAP_SECONDS) if seconds >= 0 else None


def backoff(base: float, retry: int) -> float:
    # Full jitter: workers that failed together do not retry together.
    return random.uniform(0, base * 2 ** (retry - 1))


def render_messages(agent, inputs: dict, prompt: Prompt) -> dict:
    """The messages of a model call: the prompt, the instruction and the schemas; then the inputs as canonical
    JSON. Same inputs and prompt, same messages."""
    contracts = [agent.CONTRACT] + embedded_contracts(agent.CONTRACT)
    schemas = "\n\n".join(f"JSON Schema {name}:\n{canonical_json(load_schema(name)).decode()}" for name in contracts)
    system = f"{prompt.text.rstrip()}\n\n{INSTRUCTION.format(contract=agent.CONTRACT)}\n\n{schemas}"
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": canonical_json(inputs).decode()}]}


def embedded_contracts(contract: str) -> list[str]:
    """The other contracts a contract's schema names as a constant (a `schema_version` of a document it holds)."""
    known = set(schema_names()) - {contract}
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("const") in known:
                found.add(node["const"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_schema(contract))
    return sorted(found)


def run_agent_through(provider, agent, inputs: dict, *, prompt: Prompt, idempotency_key: str) -> ProviderRun:
    """The agent's checked output through `provider` (InvalidOutput from rules, ProviderError from a model)."""
    return provider.run(agent, inputs, prompt=prompt, idempotency_key=idempotency_key)


def provider_for(agent_id: str):
    """The provider settings.EAM_AGENT_PROVIDERS names for the agent (rules when it names none);
    ProviderConfigError when that entry cannot work."""
    config = getattr(settings, SETTING, None) or {}
    if not isinstance(config, dict):
        raise ProviderConfigError(f"{SETTING}: must be a JSON object of agent id -> provider configuration")
    if agent_id not in config:
        return RULES
    errors = entry_errors(agent_id, config[agent_id])
    if errors:
        raise ProviderConfigError("; ".join(errors))
    entry = config[agent_id]
    if entry["provider"] == "rules":
        return RULES
    capabilities = {**CAPABILITIES["openai_compatible"], **entry.get("capabilities", {})}
    return OpenAICompatibleProvider(
        agent_id=agent_id, base_url=entry["base_url"].rstrip("/"), model=entry["model"], key=_key(entry),
        temperature=entry.get("temperature"), seed=entry.get("seed"), max_tokens=entry.get("max_tokens"),
        json_mode=capabilities["json_mode"],
        **{name: entry.get(name, default) for name, default in DEFAULTS.items()},
    )


def _key(entry: dict) -> str | None:
    if "api_key_env" in entry:
        return os.environ[entry["api_key_env"]].strip()
    if "api_key_file" in entry:
        return Path(entry["api_key_file"]).read_text(encoding="utf-8").strip()
    return None  # a local server without authentication


def configuration_errors(config: dict | None = None) -> list[str]:
    """Every problem of EAM_AGENT_PROVIDERS (or of `config`), one message each; never a key's value."""
    config = getattr(settings, SETTING, None) if config is None else config
    if config is None:
        return []
    if not isinstance(config, dict):
        return [f"{SETTING}: must be a JSON object of agent id -> provider configuration"]
    return [message for agent_id, entry in config.items() for message in entry_errors(agent_id, entry)]


def entry_errors(agent_id: str, entry) -> list[str]:
    from . import AGENTS  # here, not at the top: the package may import this module while it loads

    where = f'{SETTING}["{agent_id}"]'
    if agent_id not in AGENTS:
        return [f"{where}: unknown agent {agent_id!r} (agents: {', '.join(sorted(AGENTS))})"]
    if not isinstance(entry, dict):
        return [f"{where}: must be a JSON object with at least a provider"]
    provider = entry.get("provider")
    if provider not in CAPABILITIES:
        return [f"{where}.provider: must be one of {', '.join(CAPABILITIES)} (got {provider!r})"]
    errors, capabilities = _capability_errors(where, provider, entry.get("capabilities", {}))
    subject = f"the server of {agent_id}" if provider == "openai_compatible" else f"the rules provider of {agent_id}"
    for key in entry:
        if key in ("provider", "capabilities"):
            continue
        if key not in KEY_NEEDS:
            hint = " (a key's value is never configured: name it with api_key_env or api_key_file)" \
                if "key" in key.lower() else ""
            errors.append(f"{where}.{key}: unknown key{hint}")
        elif not capabilities[KEY_NEEDS[key]]:
            errors.append(f"{where}.{key}: {subject} does not support {key} "
                          f"(capabilities.{KEY_NEEDS[key]} is false)")
        else:
            errors += [f"{where}.{key}: {problem}" for problem in _value_problems(key, entry[key])]
    errors += [f"{where}.{key}: required for {provider}" for key in REQUIRED[provider] if key not in entry]
    if "api_key_env" in entry and "api_key_file" in entry:
        errors.append(f"{where}: give api_key_env or api_key_file, not both")
    return errors


def _capability_errors(where: str, provider: str, overrides) -> tuple[list[str], dict]:
    """Problems of `capabilities`, and the capabilities in force (a bad override is left out)."""
    capabilities = dict(CAPABILITIES[provider])
    if not isinstance(overrides, dict):
        return [f"{where}.capabilities: must be a JSON object of capability -> false"], capabilities
    errors = []
    for name, value in overrides.items():
        if name not in capabilities:
            errors.append(f"{where}.capabilities.{name}: unknown capability (known: {', '.join(capabilities)})")
        elif not isinstance(value, bool):
            errors.append(f"{where}.capabilities.{name}: must be true or false")
        elif value and not capabilities[name]:
            errors.append(f"{where}.capabilities.{name}: {provider} cannot do {name}; a configuration may only "
                          f"turn a capability off")
        else:
            capabilities[name] = value
    if CAPABILITIES[provider]["network"] and not capabilities["network"]:
        errors.append(f"{where}.capabilities.network: {provider} cannot work without the network")
        capabilities["network"] = True  # one message is enough; its keys are not wrong as well
    return errors, capabilities


def _value_problems(key: str, value) -> list[str]:
    """What is wrong with one value of an openai_compatible entry; never the value of a key or credentials."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    integer = isinstance(value, int) and not isinstance(value, bool)
    if key == "base_url":
        return _base_url_problems(value)
    if key == "model":
        return [] if isinstance(value, str) and value.strip() else ["must be a non-empty string"]
    if key == "api_key_env":
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
            return ["must be the name of an environment variable"]
        return [] if os.environ.get(value, "").strip() else [f"the environment variable {value} is not set or empty"]
    if key == "api_key_file":
        return _key_file_problems(value)
    if key in ("connect_timeout", "read_timeout"):
        return [] if number and value > 0 else ["must be a number of seconds greater than 0"]
    if key == "backoff_seconds":
        return [] if number and value >= 0 else ["must be a number of seconds, 0 or more"]
    if key == "max_retries":
        return [] if integer and value >= 0 else ["must be an integer, 0 or more"]
    if key == "max_tokens":
        return [] if integer and value > 0 else ["must be an integer greater than 0"]
    if key == "temperature":
        return [] if number and value >= 0 else ["must be a number, 0 or more"]
    if key == "seed":
        return [] if integer else ["must be an integer"]
    return []


def _base_url_problems(value) -> list[str]:
    # The value is not repeated: a URL with credentials in it would carry them into the message.
    if not isinstance(value, str):
        return ["must be an http or https URL"]
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return ["must be an http or https URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["must be an http or https URL with a host"]
    if parts.username is not None or parts.password is not None:
        return ["must not hold credentials (use api_key_env or api_key_file)"]
    if parts.query or parts.fragment:
        return ["must have no query or fragment"]
    return []


def _key_file_problems(value) -> list[str]:
    if not isinstance(value, str) or not value:
        return ["must be the path of a file that holds the key"]
    try:
        text = Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"cannot read {value}: {getattr(exc, 'strerror', None) or type(exc).__name__}"]
    return [] if text.strip() else [f"{value} is empty"]


@register("agents")
def check_providers(app_configs=None, **kwargs):
    """`check` fails on a provider configuration that cannot work, before a worker takes a step with it."""
    return [Error(message, hint="EAM_AGENT_PROVIDERS maps agent ids to provider configurations "
                                "(docs/agents.md, section Providers).", id="research.E010")
            for message in configuration_errors()]
