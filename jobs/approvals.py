"""Who may decide a checkpoint under its policy bundle's approval rule (research.policies.approval_rule).

A rule asks for approvals from groups, each with its count, by distinct reviewers. A reviewer is eligible for a
group when active, holding the approve permission and a member of the group; the job's submitter and any actor
that is not a person never are. Once a checkpoint is escalated, members of the escalation group are eligible for
any group still short. What the events say (jobs/state.py) decides when the checkpoint opens; this module only
says, before an approval is appended, which group it counts for, and refuses a rule that can never be met.
"""
from itertools import combinations

from research.policies import approval_rule, load_policy_bundle

from .errors import Conflict, Forbidden, InvalidInput
from .events import Actor
from .pipelines import PIPELINES, Checkpoint, Kind
from .roles import APPROVE, holders
from .state import DerivedState, missing_approvals


def eligible_users(group: str, *, submitter: str) -> list:
    """The active users of `group` who hold the approve permission, the submitter excluded, by username: one query."""
    return list(holders(APPROVE).filter(groups__name=group).exclude(username=submitter).order_by("username"))


def counts_for(state: DerivedState, *, actor: Actor, submitter: str, user) -> tuple[str, bool]:
    """The group of the open checkpoint's rule that `actor`'s approval fills, and whether the reviewer is eligible
    only through the checkpoint's escalation; Forbidden or Conflict when the approval may not count."""
    step = state.waiting_step
    if actor.kind != "user" or user is None:
        raise Forbidden(f"only a person may approve {step} under its rule", code="not_eligible")
    if actor.id == submitter:
        raise Forbidden("the submitter of a job is never eligible to approve it under an approval rule",
                        code="four_eyes")
    if any(a["actor"] == actor.id for a in state.approvals):
        raise Conflict(f"{actor.id} approved {step} already: one approval per reviewer", code="already_approved")
    if not user.has_perm(APPROVE):
        raise Forbidden("only reviewers decide checkpoints", code="permission_denied")
    groups = set(user.groups.values_list("name", flat=True))
    missing = missing_approvals(state)
    for group in missing:  # the rule's order
        if group in groups:
            return group, False
    if state.escalated_to and state.escalated_to in groups and missing:
        return next(iter(missing)), True
    if groups & {need["group"] for need in state.rule["required"]}:
        raise Conflict(f"{step} needs no more approvals from your groups (missing: {_describe(missing)})",
                       code="group_quota_met")
    raise Forbidden(f"you are in none of the groups {step} needs ({_describe(missing)})", code="not_eligible")


def may_decide(state: DerivedState, *, user, submitter: str) -> bool:
    """Whether `user` (a reviewer) may approve or reject the open checkpoint under its rule now: the same answer
    as `counts_for`, asked without trying. A checkpoint without a rule is decided by any reviewer."""
    if state.rule is None:
        return True
    try:
        counts_for(state, actor=Actor.user(user), submitter=submitter, user=user)
    except (Forbidden, Conflict):
        return False
    return True


def rules_for(kind: Kind | str, policy_bundle_id: str) -> dict:
    """{checkpoint: rule} for the checkpoints of a job of `kind` that its policy bundle gives a rule, in pipeline
    order; what the submit event fixes for the job's life."""
    bundle, _ = load_policy_bundle(policy_bundle_id)
    rules = {}
    for stage in PIPELINES[Kind(kind)]:
        rule = approval_rule(bundle, stage.name) if isinstance(stage, Checkpoint) else None
        if rule is not None:
            rules[stage.name] = rule
    return rules


def check_may_reject(state: DerivedState, *, user) -> None:
    """Under a rule, any reviewer of its groups (or of the group it was escalated to) may reject, approved already
    or not, and the rejection is final; Forbidden for anyone else."""
    groups = {need["group"] for need in state.rule["required"]}
    if state.escalated_to:
        groups.add(state.escalated_to)
    if user is None or not user.groups.filter(name__in=groups).exists():
        raise Forbidden(f"only reviewers of {', '.join(sorted(groups))} decide {state.waiting_step}",
                        code="not_eligible")


def may_reject(state: DerivedState, *, user, submitter: str) -> bool:
    """`check_may_reject`, asked without trying (the submitter never decides under a rule)."""
    if state.rule is None:
        return True
    if user.get_username() == submitter:
        return False
    try:
        check_may_reject(state, user=user)
    except Forbidden:
        return False
    return True


def check_rules_can_be_met(rules: dict, *, policy_bundle_id: str, submitter: str) -> None:
    """Refuse a job whose rules ask, at one of its checkpoints, for more approvals than there are eligible
    reviewers (the submitter excluded): it could only ever wait. Exact: for every set of the rule's groups, the
    reviewers eligible for any of them must be at least the approvals those groups need together (Hall)."""
    errors = []
    for checkpoint, rule in rules.items():
        eligible = {need["group"]: {u.pk for u in eligible_users(need["group"], submitter=submitter)}
                    for need in rule["required"]}
        for size in range(1, len(rule["required"]) + 1):
            for needs in combinations(rule["required"], size):
                people = set().union(*(eligible[need["group"]] for need in needs))
                wanted = sum(need["count"] for need in needs)
                if len(people) < wanted:
                    errors.append({"path": "/policy_bundle_id", "message": (
                        f"checkpoint {checkpoint} needs {wanted} approval(s) from {_describe_needs(needs)} but only "
                        f"{len(people)} eligible reviewer(s) exist (the submitter is never eligible)")})
                    break
            else:
                continue
            break
    if errors:
        raise InvalidInput(f"policy bundle {policy_bundle_id} asks for approvals that can never be given",
                           code="approval_rule_unmeetable", errors=errors)


def _describe(missing: dict[str, int]) -> str:
    return ", ".join(f"{count} from {group}" for group, count in missing.items()) or "none"


def _describe_needs(needs) -> str:
    return " and ".join(f"{need['group']} ({need['count']})" for need in needs)
