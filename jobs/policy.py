"""What the event store needs to know of policy bundles: whether one exists and its approval rules."""
from django.conf import settings

from research.errors import PolicyError
from research.policies import load_policy_bundle


def policy_bundle_exists(bundle_id: str) -> bool:
    try:
        load_policy_bundle(bundle_id)
    except PolicyError:
        return False
    return True


def four_eyes_required(bundle_id: str) -> bool:
    """Four eyes applies when the deployment (EAM_FOUR_EYES) or the job's bundle asks for it: stricter wins."""
    if settings.EAM_FOUR_EYES:
        return True
    try:
        bundle, _ = load_policy_bundle(bundle_id)
    except PolicyError:
        return True
    return bool(bundle["approvals"]["four_eyes"])
