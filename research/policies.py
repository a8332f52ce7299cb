"""Policy bundles: read-only JSON files under settings.EAM_POLICY_ROOT, referred to by id and sha256, and the
rules read from them (whether a bundle exists, whether four eyes apply, which trials count and how).

The sha256 of a bundle is that of its canonical JSON, so re-indenting the file does not change it.
"""
import json
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from contracts import NAME_ID, canonical_json, sha256_hex, validate

from .errors import PolicyError

BUNDLE_ID = NAME_ID
TRIAL_SCOPES = ("lineage", "snapshot", "all")
# What a bundle's `trials` section (optional, every key optional) means when it says nothing. A bundle written
# before trials had a scope counts every trial on its snapshot too: counting per lineage was the bug.
TRIALS_DEFAULTS = {
    "scope": "snapshot",
    "pbo": {"min_trials": 10, "partitions": 16},
    "min_track_record": {"confidence": 0.95},
    "bootstrap": {"samples": 2000, "confidence": 0.95, "seed": 0, "block_bars": 10},
}


def check_bundle_id(policy_bundle_id) -> str:
    if not isinstance(policy_bundle_id, str) or not BUNDLE_ID.fullmatch(policy_bundle_id):
        raise PolicyError(f"invalid policy bundle id {policy_bundle_id!r} (allowed: {BUNDLE_ID.pattern})")
    return policy_bundle_id


def _root() -> Path:
    return Path(settings.EAM_POLICY_ROOT)


def load_policy_bundle(policy_bundle_id: str) -> tuple[dict, str]:
    """The bundle document and the sha256 of its canonical JSON; PolicyError if unknown or invalid."""
    check_bundle_id(policy_bundle_id)
    path = _root() / f"{policy_bundle_id}.json"
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None or not path.is_file():
        raise PolicyError(f"unknown policy bundle {policy_bundle_id!r}")
    text, sha256 = _read_bundle(str(path), policy_bundle_id, stat.st_mtime_ns, stat.st_size)
    return json.loads(text), sha256  # the caller's own copy, parsed again: far cheaper than a deepcopy


@lru_cache(maxsize=64)
def _read_bundle(path: str, policy_bundle_id: str, mtime_ns: int, size: int) -> tuple[str, str]:
    """(the bundle as compact JSON in the file's key order, the sha256 of its canonical JSON), checked once.
    Keyed by the file's mtime and size: an edited bundle is read again (and gets a new sha256)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"policy bundle {policy_bundle_id!r} is not valid JSON: {exc}") from exc
    errors = validate("policy_bundle_v1", doc)
    if errors:
        raise PolicyError(f"policy bundle {policy_bundle_id!r} does not validate against policy_bundle_v1", errors=errors)
    for checkpoint, rule in doc["approvals"].get("checkpoints", {}).items():
        groups = [need["group"] for need in rule["required"]]
        if len(set(groups)) != len(groups):
            raise PolicyError(f"policy bundle {policy_bundle_id!r} names a group twice in the {checkpoint} rule",
                              errors=[{"path": f"/approvals/checkpoints/{checkpoint}/required",
                                       "message": "each group once, with its count"}])
    if doc["policy_bundle_id"] != policy_bundle_id:
        raise PolicyError(
            f"policy bundle file {Path(path).name} names itself {doc['policy_bundle_id']!r}",
            errors=[{"path": "/policy_bundle_id", "message": f"must be {policy_bundle_id!r}, the file's name"}],
        )
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")), sha256_hex(canonical_json(doc))


def policy_bundle_exists(bundle_id: str) -> bool:
    try:
        load_policy_bundle(bundle_id)
    except PolicyError:
        return False
    return True


def bundle_requires_four_eyes(bundle_id: str) -> bool:
    """Whether the bundle's approval rules ask for four eyes (an unreadable bundle counts as asking)."""
    try:
        bundle, _ = load_policy_bundle(bundle_id)
    except PolicyError:
        return True
    return bool(bundle["approvals"]["four_eyes"])


DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """`"90m"` -> 5400: the bundle's durations (the contract allows only a whole number and one unit)."""
    return int(text[:-1]) * DURATION_SECONDS[text[-1]]


def approval_rule(bundle: dict, checkpoint: str) -> dict | None:
    """The bundle's rule for `checkpoint`, as the checkpoint's WAITING_APPROVAL records it (so that who may decide
    and by when are read from the events alone), or None: one approval by any reviewer opens it, no deadline.

    {"required": [{"group", "count"}, …], "respond_within_seconds", "on_timeout", "escalate_to",
    "remind_every_seconds"}; the last four are None without a deadline. A reminder repeats every
    `remind_every` (default: `respond_within`)."""
    given = (bundle.get("approvals") or {}).get("checkpoints", {}).get(checkpoint)
    if given is None:
        return None
    within = duration_seconds(given["respond_within"]) if "respond_within" in given else None
    on_timeout = given.get("on_timeout")
    remind = given.get("remind_every")
    return {
        "required": [{"group": need["group"], "count": need["count"]} for need in given["required"]],
        "respond_within_seconds": within,
        "on_timeout": on_timeout,
        "escalate_to": given.get("escalate_to") if on_timeout == "escalate" else None,
        "remind_every_seconds": (duration_seconds(remind) if remind else within) if on_timeout == "remind" else None,
    }


def trials_policy(bundle: dict) -> dict:
    """The bundle's trial counting and overfitting-test settings, its `trials` section over TRIALS_DEFAULTS."""
    given = bundle.get("trials", {})
    return {
        "scope": given.get("scope", TRIALS_DEFAULTS["scope"]),
        **{part: {**TRIALS_DEFAULTS[part], **given.get(part, {})} for part in ("pbo", "min_track_record", "bootstrap")},
    }


# What a bundle's budget means where it names no limit (policy_bundle_v1 requires all three today; a bundle
# read through an older or reduced contract still gets these): those of default_v1 and default_v2.
BUDGET_DEFAULTS = {"max_generations": 2, "max_children_per_job": 3, "max_jobs_per_root": 10}


def budget_limits(bundle: dict) -> dict:
    """The spawn budget of a bundle: each limit of its `budget` section over BUDGET_DEFAULTS."""
    given = bundle.get("budget") or {}
    return {name: int(given.get(name, default)) for name, default in BUDGET_DEFAULTS.items()}


def list_policy_bundles() -> list[dict]:
    """Every `<id>.json` under the policy root, sorted by id, with its sha256 or the reason it is unusable."""
    bundles = []
    for path in sorted(_root().glob("*.json")):
        bundle_id = path.stem
        if not BUNDLE_ID.fullmatch(bundle_id):
            continue
        try:
            doc, sha256 = load_policy_bundle(bundle_id)
        except PolicyError as exc:
            bundles.append({"policy_bundle_id": bundle_id, "valid": False, "error": exc.message, "errors": exc.errors})
            continue
        bundles.append(
            {"policy_bundle_id": bundle_id, "valid": True, "sha256": sha256, "description": doc.get("description", "")}
        )
    return bundles
