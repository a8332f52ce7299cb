"""What the event store needs to know of policy bundles: whether one exists and its approval rules."""
from django.conf import settings

from research import policies


def policy_bundle_exists(bundle_id: str) -> bool:
    try:
        policies.load_bundle(bundle_id)
    except policies.PolicyError:
        return False
    return True


def four_eyes_required(bundle_id: str) -> bool:
    """Four eyes applies when the deployment (EAM_FOUR_EYES) or the job's bundle asks for it: stricter wins."""
    if settings.EAM_FOUR_EYES:
        return True
    try:
        bundle, _ = policies.load_bundle(bundle_id)
    except policies.PolicyError:
        return True
    return bool(bundle["approvals"]["four_eyes"])
