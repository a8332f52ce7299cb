"""Approval rules: a policy bundle that sets them, reviewers in the groups they name, and jobs in each state a rule
adds."""
import json
from datetime import timedelta

from jobs import deadlines, services
from jobs.events import Actor
from jobs.models import JobEvent

from .jobs import submitted, to_runspec_review
from .people import a_user
from .snapshots import MONTH, SNAPSHOT, a_snapshot


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


def jobs_at_each_rule_state(people, policy_root) -> dict:
    """Jobs under approval rules in each state a rule adds, all submitted by people.submitter: waiting with one of
    two approvals ("partial"), escalated, reminded, rejected by its deadline ("timed_out") and opened by an
    override ("overridden", queued for its run)."""
    a_snapshot(SNAPSHOT, span=MONTH)
    q1, _ = reviewers_in("ruled", 2)
    a_user("ruled-lead", "reviewers", "ruled-leads")
    deadline = {"respond_within": "1h"}
    bundles = {
        "partial": a_rules_bundle(policy_root, "rule_partial", runspec=two_of("ruled")),
        "escalated": a_rules_bundle(policy_root, "rule_escalated", runspec={
            **two_of("ruled"), **deadline, "on_timeout": "escalate", "escalate_to": "ruled-leads"}),
        "reminded": a_rules_bundle(policy_root, "rule_reminded", runspec={
            **two_of("ruled"), **deadline, "on_timeout": "remind"}),
        "timed_out": a_rules_bundle(policy_root, "rule_timed_out", runspec={
            **two_of("ruled"), **deadline, "on_timeout": "reject"}),
        "overridden": a_rules_bundle(policy_root, "rule_overridden", runspec=two_of("ruled")),
    }
    jobs = {}
    for state, bundle in bundles.items():
        job = submitted(people.submitter, f"ruled {state}", policy_bundle_id=bundle)
        to_runspec_review(job.job_id)
        jobs[state] = job
    services.approve(job_id=jobs["partial"].job_id, step="runspec", actor=Actor.user(q1))
    later = JobEvent.objects.filter(event_type="WAITING_APPROVAL").latest("id").recorded_at + timedelta(hours=2)
    deadlines.sweep(now=later, job_ids=[jobs[s].job_id for s in ("escalated", "reminded", "timed_out")])
    services.override(job_id=jobs["overridden"].job_id, step="runspec", actor=Actor.user(people.superuser),
                      reason="break-glass in a test")
    return jobs
