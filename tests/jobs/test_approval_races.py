"""Approval rules and deadlines under real concurrency: reviewers approving at the same moment, and worker passes
that overlap, in separate processes on the test's database."""
import subprocess
import time
from datetime import timedelta

import pytest

from jobs import deadlines, services
from jobs.errors import Conflict
from jobs.events import Actor
from jobs.models import JobEvent, JobState

from ..builders import (
    MONTH, SNAPSHOT, a_rules_bundle, a_snapshot, a_user, reviewers_in, store_snapshot, submitted, to_runspec_review,
    two_of,
)
from ..conftest import REPO_ROOT
from .test_races import race

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def ruled_env(process_env, policy_root):
    return {**process_env, "EAM_POLICY_ROOT": str(policy_root)}


def waiting_under(policy_root, bundle_id: str, **rules):
    a_snapshot(SNAPSHOT, span=MONTH)
    bundle = a_rules_bundle(policy_root, bundle_id, **rules)
    job = submitted(a_user("sue", "submitters"), "ruled", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    return job


def test_eight_eligible_reviewers_approving_at_once_leave_exactly_two_approvals(python, ruled_env, policy_root,
                                                                                 tmp_path):
    names = [user.get_username() for user in reviewers_in("quants", 8)]
    job = waiting_under(policy_root, "two_of_eight", runspec=two_of("quants"))
    before = JobEvent.objects.filter(job_id=job.job_id).count()

    reports = race(python, ruled_env, tmp_path, [["approve", job.job_id, name, str(tmp_path)] for name in names])

    assert sum(r["other"] for r in reports) == 0, [r["errors"] for r in reports]
    assert sum(r["ok"] for r in reports) == 2
    assert {code for r in reports for code in r["conflict_codes"]} == {"not_waiting"}
    approvals = list(JobEvent.objects.filter(job_id=job.job_id, event_type="APPROVED").order_by("seq"))
    winners = sorted(r["name"] for r in reports if r["ok"])
    assert sorted(a.actor["id"] for a in approvals) == winners
    assert [a.payload["counts_for"] for a in approvals] == ["quants", "quants"]
    assert JobEvent.objects.filter(job_id=job.job_id).count() == before + 2
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.next_step) == ("queued", "run")


def run_jobs_once(python, env, name):
    return subprocess.Popen([python, "manage.py", "run_jobs", "--once", "--worker-id", name], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_escalation_fires_once_across_three_overlapping_worker_passes(python, ruled_env, policy_root):
    lead = a_user("lead1", "reviewers", "leads")
    reviewers_in("quants", 2)
    job = waiting_under(policy_root, "escalating", runspec={
        **two_of("quants"), "respond_within": "1s", "on_timeout": "escalate", "escalate_to": "leads"})
    time.sleep(1.2)  # the deadline passes

    passes = [run_jobs_once(python, ruled_env, f"w{n}") for n in range(3)]
    outputs = [p.communicate(timeout=120) for p in passes]
    assert all(p.returncode == 0 for p in passes), [err for _, err in outputs]

    escalations = list(JobEvent.objects.filter(job_id=job.job_id, event_type="CHECKPOINT_ESCALATED"))
    assert len(escalations) == 1
    assert escalations[0].actor == {"kind": "system", "id": "deadlines"}
    assert escalations[0].payload["group"] == "leads"
    assert sum(f"{job.job_id} runspec escalate (appended)" in out for out, _ in outputs) == 1

    # a later pass escalates nothing again
    again = run_jobs_once(python, ruled_env, "w9")
    again.communicate(timeout=120)
    assert JobEvent.objects.filter(job_id=job.job_id, event_type="CHECKPOINT_ESCALATED").count() == 1

    # the escalation group may now decide: a lead's approval counts for the group still short
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(lead))
    event = JobEvent.objects.filter(job_id=job.job_id, event_type="APPROVED").get()
    assert (event.payload["counts_for"], event.payload["via_escalation"]) == ("quants", True)


def test_a_deadline_that_rejects_ends_the_job_and_a_late_approval_is_refused(policy_root):
    (q1, _) = reviewers_in("quants", 2)
    job = waiting_under(policy_root, "rejecting", runspec={
        **two_of("quants"), "respond_within": "2h", "on_timeout": "reject"})
    announced = JobEvent.objects.get(job_id=job.job_id, event_type="WAITING_APPROVAL").recorded_at

    assert deadlines.sweep(now=announced + timedelta(hours=1, minutes=59)) == []
    acted = deadlines.sweep(now=announced + timedelta(hours=2))
    assert [(a.action, a.outcome) for a in acted] == [("reject", "appended")]
    rejected = JobEvent.objects.get(job_id=job.job_id, event_type="REJECTED")
    assert rejected.actor == {"kind": "system", "id": "deadlines"}
    assert rejected.payload["timed_out"] is True and "no decision within 2h" in rejected.payload["reason"]
    assert JobState.objects.get(job_id=job.job_id).status == "rejected"

    before = store_snapshot()
    with pytest.raises(Conflict) as late:
        services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(q1))
    assert late.value.code == "not_waiting"
    assert deadlines.sweep(now=announced + timedelta(days=3)) == []
    assert store_snapshot() == before


def test_reminders_repeat_every_interval_and_a_long_pause_sends_one_not_a_backlog(policy_root):
    reviewers_in("quants", 2)
    job = waiting_under(policy_root, "reminding", runspec={
        **two_of("quants"), "respond_within": "1d", "on_timeout": "remind", "remind_every": "6h"})
    announced = JobEvent.objects.get(job_id=job.job_id, event_type="WAITING_APPROVAL").recorded_at

    def sweep_at(hours):
        return [a.outcome for a in deadlines.sweep(now=announced + timedelta(hours=hours))]

    assert sweep_at(23) == []
    assert sweep_at(24) == ["appended"]
    assert sweep_at(25) == []  # the same slot twice: nothing
    assert sweep_at(30) == ["appended"]
    assert sweep_at(90) == ["appended"]  # ten slots passed: one reminder, for the latest
    assert sweep_at(91) == []
    reminders = [(e.payload["ordinal"], e.payload["due_at"][:13]) for e in
                 JobEvent.objects.filter(job_id=job.job_id, event_type="CHECKPOINT_REMINDED").order_by("seq")]
    slot = lambda hours: (announced + timedelta(hours=hours)).strftime("%Y-%m-%dT%H")  # noqa: E731
    assert reminders == [(1, slot(24)), (2, slot(30)), (3, slot(90))]
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"
