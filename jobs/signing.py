"""Signatures: every event, and every anchor, is signed with an Ed25519 key that lives outside the database.

The database role can insert an event with a correct hash, but not sign it: the private key is a file only the
service's processes read (`EAM_SIGNING_KEYS`, key id -> private key file, PEM; the last one listed signs, the
others still verify). Public keys verify and cannot sign; `EAM_PUBLIC_KEYS` (key id -> public key file) names
the retired keys whose private half was destroyed, or the keys an auditor holds. Without a configured key, a
key is generated once into `EAM_KEY_DIR` (under var/, never in the repository): fine for development, and
`check --deploy` warns about it.
"""
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.signals import setting_changed
from django.dispatch import receiver

from contracts import sha256_hex

# What a signature covers is told apart by a prefix, so an event's signature can never pass as an anchor's.
EVENT_CONTEXT = b"eam-event-v1:"
ANCHOR_CONTEXT = b"eam-anchor-v1:"
DEV_KEY_FILE = "signing-dev.pem"


class KeyProblem(Exception):
    """A configured key file that cannot be read or is not an Ed25519 key."""


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key: Ed25519PublicKey) -> str:
    return sha256_hex(public_bytes(key))[:16]


@dataclass(frozen=True)
class Keyring:
    """The key that signs (its id and private half) and every public key that verifies, by key id."""

    signing_id: str | None
    signing_key: Ed25519PrivateKey | None
    public: dict[str, Ed25519PublicKey]

    def sign(self, context: bytes, message: bytes) -> tuple[str, str]:
        """(key id, hex signature) of `message` under `context`."""
        if self.signing_key is None:
            raise KeyProblem("no signing key is configured (EAM_SIGNING_KEYS)")
        return self.signing_id, self.signing_key.sign(context + message).hex()

    def problem(self, context: bytes, message: bytes, key_id: str | None, signature: str | None) -> str | None:
        """Why the signature does not verify, or None when it does."""
        if not key_id or not signature:
            return "not signed"
        key = self.public.get(key_id)
        if key is None:
            return f"signed with key {key_id}, which is not a known public key (EAM_SIGNING_KEYS, EAM_PUBLIC_KEYS)"
        try:
            key.verify(bytes.fromhex(signature), context + message)
        except (InvalidSignature, ValueError):
            return f"the signature does not verify with key {key_id} (forged or altered)"
        return None


def _load_private(key_id: str, path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyProblem(f"signing key {key_id}: cannot read {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"signing key {key_id}: {path} is not an Ed25519 private key")
    return key


def _load_public(key_id: str, path: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise KeyProblem(f"public key {key_id}: cannot read {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"public key {key_id}: {path} is not an Ed25519 public key")
    return key


def development_key(key_dir: str, *, create: bool) -> tuple[str, Ed25519PrivateKey] | None:
    """The development key in `key_dir`, generated on first use when `create` (several processes starting at
    once agree on one: the file is linked into place, and whoever comes second reads the first one's)."""
    path = Path(key_dir, DEV_KEY_FILE)
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        temporary = path.with_name(f".{DEV_KEY_FILE}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    key = _load_private("development", str(path))
    return f"dev-{fingerprint(key.public_key())}", key


@lru_cache(maxsize=8)
def _keyring(signing: tuple, public: tuple, key_dir: str, create: bool) -> Keyring:
    private = [(key_id, _load_private(key_id, path)) for key_id, path in signing]
    if not private:
        found = development_key(key_dir, create=create)
        private = [found] if found else []
    keys = {key_id: _load_public(key_id, path) for key_id, path in public}
    keys.update((key_id, key.public_key()) for key_id, key in private)
    signing_id, signing_key = private[-1] if private else (None, None)
    return Keyring(signing_id, signing_key, keys)


# The keyring this process signs with, once loaded: the append path reads it without a call (settings do not
# change in a running process; when a test changes them, it is dropped).
signer: Keyring | None = None


def keyring(*, signing: bool = True) -> Keyring:
    """The keys the settings name. `signing=False` (a verifier) never generates the development key."""
    global signer
    key_dir = str(settings.EAM_KEY_DIR)
    create = signing or Path(key_dir, DEV_KEY_FILE).exists()  # part of the cache key: a key made later is seen
    keys = _keyring(tuple(settings.EAM_SIGNING_KEYS.items()), tuple(settings.EAM_PUBLIC_KEYS.items()), key_dir,
                    create)
    if signing:
        signer = keys
    return keys


@receiver(setting_changed)
def _forget_signer(*, setting, **kwargs):
    global signer
    if setting in ("EAM_SIGNING_KEYS", "EAM_PUBLIC_KEYS", "EAM_KEY_DIR"):
        signer = None


@register("signing")
def check_keys(app_configs=None, **kwargs):
    """`check` fails when a configured key cannot be read; `check --deploy` warns about the development key."""
    try:
        keyring(signing=False)
    except KeyProblem as exc:
        return [Error(str(exc), hint="EAM_SIGNING_KEYS and EAM_PUBLIC_KEYS map key ids to PEM files of "
                                     "Ed25519 keys (docs/operations.md, section 6).", id="jobs.E001")]
    return []


@register("signing", deploy=True)
def check_production_key(app_configs=None, **kwargs):
    if settings.EAM_SIGNING_KEYS:
        return []
    return [Warning("Events are signed with a development key generated into EAM_KEY_DIR.",
                    hint="Set EAM_SIGNING_KEYS to a key kept outside the database and the image "
                         "(docs/operations.md, section 6).", id="jobs.W001")]
