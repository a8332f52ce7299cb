"""Approval rules per checkpoint (the policy bundle's `approvals.checkpoints`): N approvals from the eligible
reviewers of each named group, the submitter and agents never eligible, one approval per reviewer, any rejection
final, a break-glass override; a rule that can never be met is refused at submit. Through the API, with the store
compared before and after every refusal."""
import pytest
from django.contrib.auth.models import Permission

from jobs.events import Actor
from jobs.errors import Forbidden
from jobs import services
from jobs.models import JobEvent, JobState
from jobs.state import IllegalTransition, derive_state

from ..builders import (
    MONTH, SNAPSHOT, a_blueprint, a_rules_bundle, a_snapshot, a_user, assert_error, client_for, counts, reviewers_in,
    store_snapshot, submitted, to_runspec_review, two_of,
)

pytestmark = pytest.mark.django_db


def approve(user, job, **body):
    return client_for(user).post(f"/jobs/{job.job_id}/approve?step=runspec", body, format="json")


def decisions(job) -> list[tuple[str, str, str | None]]:
    return [(e.event_type, e.actor["id"], e.payload.get("counts_for"))
            for e in JobEvent.objects.filter(job_id=job.job_id, seq__gt=4).order_by("seq")]


@pytest.fixture
def snapshot():
    a_snapshot(SNAPSHOT, span=MONTH)


@pytest.fixture
def two_of_three(policy_root, snapshot):
    """A job under a 2-of-`quants` rule at runspec, waiting there; three quants, and the submitter a quant too."""
    bundle = a_rules_bundle(policy_root, "two_of_three", runspec=two_of("quants"))
    quants = reviewers_in("quants", 3)
    submitter = a_user("sue", "submitters", "reviewers", "quants")
    job = submitted(submitter, "ruled", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    return job, submitter, quants


def test_two_of_three_counts_distinct_eligible_reviewers_and_opens_on_the_second(two_of_three):
    job, submitter, (q1, q2, q3) = two_of_three

    # the submitter's approval counts zero: refused, nothing written
    before = store_snapshot()
    assert_error(approve(submitter, job), 403, "four_eyes")
    assert store_snapshot() == before

    # the first quant's approval is recorded; the checkpoint stays closed and says what is missing
    assert approve(q1, job, comment="one").status_code == 200
    detail = client_for(q2).get(f"/jobs/{job.job_id}").json()
    assert detail["status"] == "waiting_approval"
    assert detail["approval"]["approvals"] == [{"actor": "quants1", "group": "quants"}]
    assert detail["approval"]["missing"] == {"quants": 1}
    assert detail["can_approve"] is True
    mine = client_for(q1).get(f"/jobs/{job.job_id}").json()
    assert (mine["can_approve"], mine["can_reject"]) == (False, True)  # approved already; may still reject

    # the same reviewer again counts zero: refused, nothing written
    before = store_snapshot()
    assert_error(approve(q1, job), 409, "already_approved")
    assert store_snapshot() == before

    # the second distinct quant opens the checkpoint
    assert approve(q2, job, comment="two").status_code == 200
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.next_step) == ("queued", "run")
    assert decisions(job) == [("APPROVED", "quants1", "quants"), ("APPROVED", "quants2", "quants")]

    # and a third finds nothing to approve
    before = store_snapshot()
    assert_error(approve(q3, job), 409, "not_waiting")
    assert store_snapshot() == before


def test_groups_each_with_their_count_and_who_is_not_eligible(policy_root, snapshot, people):
    bundle = a_rules_bundle(policy_root, "two_groups", runspec={
        "required": [{"group": "methodology", "count": 1}, {"group": "risk", "count": 1}]})
    (m1, m2), (r1,) = reviewers_in("methodology", 2), reviewers_in("risk", 1)
    job = submitted(people.submitter, "two groups", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)

    # a reviewer of neither group, and a member of a group without the approve permission, are not eligible
    outsider = a_user("mallory", "methodology")  # in the group, not a reviewer
    before = store_snapshot()
    assert_error(approve(people.reviewer, job), 403, "not_eligible")
    assert_error(approve(outsider, job), 403, "permission_denied")
    assert store_snapshot() == before

    # methodology fills its one; a second methodology approval is not needed
    assert approve(m1, job).status_code == 200
    before = store_snapshot()
    body = assert_error(approve(m2, job), 409, "group_quota_met")
    assert "1 from risk" in body["detail"]
    assert store_snapshot() == before

    # risk's approval opens it
    assert approve(r1, job).status_code == 200
    assert JobState.objects.get(job_id=job.job_id).status == "queued"
    assert decisions(job) == [("APPROVED", "methodology1", "methodology"), ("APPROVED", "risk1", "risk")]


def test_any_rejection_by_an_eligible_reviewer_is_final(two_of_three, people):
    job, _, (q1, q2, _) = two_of_three
    assert approve(q1, job).status_code == 200

    # a reviewer outside the rule's groups may not reject
    before = store_snapshot()
    assert_error(client_for(people.reviewer).post(f"/jobs/{job.job_id}/reject?step=runspec", {"reason": "no"},
                                                  format="json"), 403, "not_eligible")
    assert store_snapshot() == before

    # one quant's rejection ends the job, approvals or not
    response = client_for(q2).post(f"/jobs/{job.job_id}/reject?step=runspec", {"reason": "costs too low"},
                                   format="json")
    assert response.status_code == 200
    assert JobState.objects.get(job_id=job.job_id).status == "rejected"


def test_an_agent_actor_is_never_eligible(two_of_three):
    job, _, _ = two_of_three
    before = store_snapshot()
    with pytest.raises(Forbidden) as refused:
        services.approve(job_id=job.job_id, step="runspec", actor=Actor("worker", "intent-agent"))
    assert refused.value.code == "not_eligible"
    assert store_snapshot() == before


def test_override_needs_its_permission_a_reason_and_is_its_own_event(two_of_three, people):
    job, submitter, (q1, _, _) = two_of_three
    assert approve(q1, job).status_code == 200
    url = f"/jobs/{job.job_id}/override?step=runspec"

    # without the permission: 403; with it but without a reason: 400; the submitter never: 403
    before = store_snapshot()
    assert_error(client_for(q1).post(url, {"reason": "urgent"}, format="json"), 403, "permission_denied")
    lead = a_user("lena")
    perm = Permission.objects.get(codename="override_approval")
    lead.user_permissions.add(perm)
    submitter.user_permissions.add(perm)
    assert_error(client_for(lead).post(url, {}, format="json"), 400, "reason_required")
    assert_error(client_for(lead).post(url, {"reason": "  "}, format="json"), 400, "reason_required")
    assert_error(client_for(submitter).post(url, {"reason": "mine"}, format="json"), 403, "four_eyes")
    assert store_snapshot() == before

    # with both: one APPROVAL_OVERRIDDEN event, and the job moves on
    response = client_for(lead).post(url, {"reason": "desk closes tonight; risk signs tomorrow"}, format="json")
    assert response.status_code == 200, response.content
    event = JobEvent.objects.get(job_id=job.job_id, event_type="APPROVAL_OVERRIDDEN")
    assert event.actor == {"kind": "user", "id": "lena"}
    assert event.payload["reason"] == "desk closes tonight; risk signs tomorrow"
    assert JobState.objects.get(job_id=job.job_id).next_step == "run"


def submit(user, bundle, name):
    return client_for(user).post(f"/jobs/blueprint?snapshot_id={SNAPSHOT}&policy_bundle_id={bundle}",
                                 a_blueprint(name=name), format="json")


def test_a_rule_that_can_never_be_met_is_refused_at_submit(policy_root, snapshot, people):
    # three quants in all, one of them the submitter: 3 approvals can never be given on her job
    bundle = a_rules_bundle(policy_root, "three_quants", runspec={"required": [{"group": "quants", "count": 3}]})
    reviewers_in("quants", 2)
    submitter = a_user("quant-sub", "submitters", "reviewers", "quants")
    before, rows = counts(), store_snapshot()
    body = assert_error(submit(submitter, bundle, "never"), 400, "approval_rule_unmeetable")
    assert body["errors"] == [{"path": "/policy_bundle_id", "message": (
        "checkpoint runspec needs 3 approval(s) from quants (3) but only 2 eligible reviewer(s) exist "
        "(the submitter is never eligible)")}]
    assert counts() == before and store_snapshot() == rows

    # the same rule on someone else's job can be met: the three quants are all eligible
    assert submit(people.submitter, bundle, "fine").status_code == 201

    # groups: quants can give 2, but risk has one member and needs 2
    shared = a_rules_bundle(policy_root, "two_groups_three", runspec={
        "required": [{"group": "quants", "count": 2}, {"group": "risk", "count": 2}]})
    reviewers_in("risk", 1)
    before, rows = counts(), store_snapshot()
    body = assert_error(submit(people.submitter, shared, "never either"), 400, "approval_rule_unmeetable")
    assert "risk (2)" in body["errors"][0]["message"]
    assert counts() == before and store_snapshot() == rows


def test_reviewers_in_two_groups_count_once_when_checking_a_rule_at_submit(policy_root, snapshot, people):
    # two people, each in both groups: 1 + 1 can be met, 2 + 1 cannot (three approvals, two people)
    for name in ("ann", "bob"):
        a_user(name, "reviewers", "methodology", "risk")
    fits = a_rules_bundle(policy_root, "fits", runspec={
        "required": [{"group": "methodology", "count": 1}, {"group": "risk", "count": 1}]})
    too_many = a_rules_bundle(policy_root, "too_many", runspec={
        "required": [{"group": "methodology", "count": 2}, {"group": "risk", "count": 1}]})
    assert submitted(people.submitter, "fits", policy_bundle_id=fits)
    before = counts()
    assert_error(submit(people.submitter, too_many, "too many"), 400, "approval_rule_unmeetable")
    assert counts() == before


def test_the_state_machine_counts_each_reviewer_once_and_only_for_a_group_still_short():
    rules = {"runspec": {"required": [{"group": "quants", "count": 2}], "respond_within_seconds": None,
                         "on_timeout": None, "escalate_to": None, "remind_every_seconds": None}}
    start = [
        {"event_type": "BLUEPRINT_SUBMITTED", "payload": {"approval_rules": rules}},
        {"event_type": "STEP_STARTED", "step": "compile", "payload": {"attempt": 1}},
        {"event_type": "RUNSPEC_COMPILED", "step": "compile", "payload": {}},
        {"event_type": "WAITING_APPROVAL", "step": "runspec", "payload": {"artifact_sha256": "a" * 64}},
    ]

    def approval(who, group="quants", kind="user"):
        return {"event_type": "APPROVED", "step": "runspec", "actor": {"kind": kind, "id": who},
                "payload": {"counts_for": group}}

    one = derive_state(start + [approval("q1")])
    assert (one.status, one.approvals) == ("waiting_approval", ({"actor": "q1", "group": "quants"},))
    assert derive_state(start + [approval("q1"), approval("q2")]).next_step == "run"
    for refused in ([approval("q1"), approval("q1")], [approval("q1", "risk")], [approval("agent", kind="worker")]):
        with pytest.raises(IllegalTransition):
            derive_state(start + refused)
