"""DRF token authentication that remembers a token's user, with the user's permissions, for a few seconds.

Without it every token request looks the token and its user up, and a read that says what the caller may
do (`can_approve`, …) looks their permissions up too: three queries, most of a cached job read. A
remembered entry lives EAM_TOKEN_CACHE_SECONDS (0: off). In this process, saving or deleting a token, a
user, a group or a permission, or changing who is in a group or holds a permission, forgets every entry at
once (and again when that transaction commits, so a request that read the old rows meanwhile cannot keep
them). Another process's changes (the admin on another server, a shell), and QuerySet.update(), which
sends no signal, are seen within the TTL.
"""
import copy
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

_remembered: dict[str, tuple[float, object, Token]] = {}
_lock = threading.Lock()
_generation = 0  # bumped by every forget: an entry read before it is never stored after it


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, answered from memory while the entry is young and nothing changed."""

    def authenticate_credentials(self, key):
        ttl = settings.EAM_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return super().authenticate_credentials(key)
        now = time.monotonic()
        found = _remembered.get(key)
        if found is not None and found[0] > now:
            _, user, token = found
            return copy.copy(user), token  # a request's own user object; the permission sets are shared
        generation = _generation
        user, token = super().authenticate_credentials(key)  # unknown or inactive: AuthenticationFailed
        user.get_all_permissions()  # fills the user's permission caches, remembered with it
        with _lock:
            if generation == _generation:
                _remembered[key] = (now + ttl, user, token)
        return copy.copy(user), token


def forget_tokens() -> None:
    """Drop every remembered token (the rows behind some of them changed)."""
    global _generation
    with _lock:
        _generation += 1
        _remembered.clear()


def _changed(sender, instance=None, **kwargs):
    if isinstance(instance, (Token, get_user_model(), Group, Permission)):
        forget_tokens()
        transaction.on_commit(forget_tokens)


def connect_signals() -> None:
    """Called once from JobsConfig.ready(). No sender filter: proxies (the admin's TokenProxy) count too."""
    for name, signal in (("save", post_save), ("delete", post_delete), ("m2m", m2m_changed)):
        signal.connect(_changed, dispatch_uid=f"eam-forget-tokens-on-{name}")
