"""Webhooks: their configuration (EAM_WEBHOOKS, checked at start-up), the signature, and one signed POST.

A receiver verifies `X-EAM-Signature: sha256=<hex>`, the HMAC-SHA256 under the shared secret of
"<X-EAM-Timestamp>.<raw body>" (docs/notifications.md). The secret is read from the environment variable the
configuration names, when a request is signed; it is never stored in a row nor written to a log.
"""
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from contracts import canonical_json

from .kinds import Kind
from .notices import Notice

SETTING = "EAM_WEBHOOKS"
KEYS = ("name", "url", "secret_env", "kinds")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
# "Not now" rather than "not this": the same request may be taken later. Any other 4xx is final.
RETRYABLE_STATUS = frozenset({408, 429})
USER_AGENT = "EAM-notifications/1"


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    secret_env: str
    kinds: frozenset


@dataclass(frozen=True)
class Sent:
    """What one attempt came to: delivered, or not and whether trying again may help."""

    delivered: bool
    retryable: bool = False
    http_status: int | None = None
    error: str = ""


# -- configuration ---------------------------------------------------------------------------------------------

def configuration_errors(config=None) -> list[str]:
    """Every problem of EAM_WEBHOOKS (or of `config`), one message each; never a secret's value."""
    config = getattr(settings, SETTING, None) if config is None else config
    if not isinstance(config, list):
        return [f"{SETTING}: must be a JSON list of webhooks"]
    errors, names = [], set()
    for index, entry in enumerate(config):
        where = f"{SETTING}[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{where}: must be a JSON object with name, url and secret_env")
            continue
        errors += [f"{where}.{key}: unknown key (known: {', '.join(KEYS)})" for key in entry if key not in KEYS]
        errors += [f"{where}.{key}: required" for key in ("name", "url", "secret_env") if key not in entry]
        name = entry.get("name")
        if "name" in entry:
            if not isinstance(name, str) or not NAME.fullmatch(name):
                errors.append(f"{where}.name: letters, digits, '_', '.' and '-', at most 64")
            elif name in names:
                errors.append(f"{where}.name: {name!r} is used twice")
            else:
                names.add(name)
        if "url" in entry:
            errors += [f"{where}.url: {problem}" for problem in _url_problems(entry["url"])]
        if "secret_env" in entry:
            errors += [f"{where}.secret_env: {problem}" for problem in _secret_problems(entry["secret_env"])]
        if "kinds" in entry:
            errors += [f"{where}.kinds: {problem}" for problem in _kinds_problems(entry["kinds"])]
    return errors


def _url_problems(value) -> list[str]:
    # The value is not repeated: a URL with credentials in it would carry them into the message.
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is not None:
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return ["must be an http or https URL with a host"]
    if parts.username is not None or parts.password is not None:
        return ["must not hold credentials (the secret signs each request instead)"]
    return []


def _secret_problems(value) -> list[str]:
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
        return ["must be the name of an environment variable"]
    return [] if os.environ.get(value, "").strip() else [f"the environment variable {value} is not set or empty"]


def _kinds_problems(value) -> list[str]:
    known = ", ".join(Kind)
    if not isinstance(value, list) or not value:
        return [f"must be a non-empty list of kinds ({known})"]
    return [f"unknown kind {kind!r} (kinds: {known})" for kind in value if kind not in set(Kind)]


def configured() -> list[Webhook]:
    """The webhooks of EAM_WEBHOOKS; ImproperlyConfigured when it has a problem (the system check says which)."""
    config = getattr(settings, SETTING, None) or []
    errors = configuration_errors(config)
    if errors:
        raise ImproperlyConfigured("; ".join(errors))
    return [Webhook(name=entry["name"], url=entry["url"], secret_env=entry["secret_env"],
                    kinds=frozenset(Kind(k) for k in entry.get("kinds", list(Kind)))) for entry in config]


@register("notifications")
def check_webhooks(app_configs=None, **kwargs):
    """`check` (and the worker, at start) fails on a webhook that cannot work."""
    return [Error(message, hint="EAM_WEBHOOKS is a JSON list of {name, url, secret_env, kinds?} "
                                "(docs/notifications.md).", id="notifications.E001")
            for message in configuration_errors()]


# -- signing and sending ---------------------------------------------------------------------------------------

def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The value of X-EAM-Signature: HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def timeout():
    import httpx

    return httpx.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS, write=READ_TIMEOUT_SECONDS,
                         pool=CONNECT_TIMEOUT_SECONDS)


def post(client, webhook: Webhook, notice: Notice) -> Sent:
    """One signed POST of `notice` to `webhook` through `client` (an httpx.Client); 2xx is delivered."""
    import httpx

    secret = os.environ.get(webhook.secret_env, "").strip()
    if not secret:
        return Sent(False, retryable=True, error=f"the environment variable {webhook.secret_env} is not set")
    body = canonical_json(notice.document())
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-EAM-Delivery": str(notice.delivery_id), "X-EAM-Timestamp": timestamp,
               "X-EAM-Signature": signature(secret.encode(), timestamp, body)}
    try:
        response = client.post(webhook.url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        return Sent(False, retryable=True, error=f"timed out ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return Sent(False, retryable=True, error=f"{type(exc).__name__}: {exc}")
    status = response.status_code
    if 200 <= status < 300:
        return Sent(True, http_status=status)
    retryable = status >= 500 or status in RETRYABLE_STATUS
    return Sent(False, retryable=retryable, http_status=status, error=f"answered {status}")
