"""Approval rules: a policy bundle that sets them, and reviewers in the groups they name."""
import json

from .people import a_user


def a_rules_bundle(policy_root, bundle_id: str, **checkpoints) -> str:
    """A copy of default_v2 named `bundle_id` in `policy_root` with `checkpoints` ({checkpoint: rule}) as its
    approval rules, e.g. runspec={"required": [{"group": "quants", "count": 2}]}."""
    doc = json.loads((policy_root / "default_v2.json").read_text())
    doc["policy_bundle_id"] = bundle_id
    doc["approvals"] = {**doc["approvals"], "checkpoints": checkpoints}
    (policy_root / f"{bundle_id}.json").write_text(json.dumps(doc))
    return bundle_id


def reviewers_in(group: str, count: int, *, prefix: str | None = None) -> list:
    """`count` reviewers (group `reviewers`, which holds the approve permission) who are also in `group`."""
    return [a_user(f"{prefix or group}{n}", "reviewers", group) for n in range(1, count + 1)]


def two_of(group: str) -> dict:
    return {"required": [{"group": group, "count": 2}]}
