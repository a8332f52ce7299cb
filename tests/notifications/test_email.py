"""E-mail through Django's backend (the test outbox here): who receives each kind, what it says, and the settings
that turn a kind off."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone

from jobs import deadlines, events, services
from jobs.events import Actor
from notifications.models import Delivery, DeliveryAttempt, NotificationSetting
from notifications.recipients import eligible_reviewers
from notifications.services import run_pass

from ..builders import (
    a_closed_port, a_rules_bundle, a_user, cancelled_job, done_job, error_job, rejected_job, reviewers_in,
    stopped_job, submitted, to_runspec_review, waiting_job, with_email,
)

pytestmark = pytest.mark.django_db


def outbox_to(address: str) -> list:
    return [message for message in mail.outbox if address in message.to]


@pytest.fixture
def addressed(people):
    """Everyone in `people` with an e-mail address (the superuser has one already)."""
    for user in (people.submitter, people.reviewer, people.operator, people.nobody):
        with_email(user)
    return people


def test_a_waiting_job_emails_its_eligible_reviewers_with_its_title(addressed):
    # given a job waiting at its runspec checkpoint
    job = waiting_job(addressed.submitter, "Trend on rates")

    # when a pass runs
    run_pass()

    # then each eligible reviewer (the approve permission, not the submitter) gets one e-mail naming the job
    [message] = outbox_to(addressed.reviewer.email)
    assert "Trend on rates" in message.subject and job.job_id in message.subject
    assert f"http://localhost:8000/ui/jobs/{job.job_id}" in message.body
    assert "waits for review at runspec" in message.body
    assert message.extra_headers["X-EAM-Delivery"]
    assert outbox_to(addressed.submitter.email) == []  # the submitter may not review their own job
    assert outbox_to(addressed.nobody.email) == [] and outbox_to(addressed.operator.email) == []
    assert {u.username for u in eligible_reviewers(job, "runspec")} == {"rita", "root"}
    delivery = Delivery.objects.get(target="rita")
    assert delivery.status == Delivery.Status.DELIVERED and delivery.address == "rita@example.org"
    assert DeliveryAttempt.objects.get(delivery=delivery).outcome == "delivered"


def test_a_second_pass_sends_nothing_again(addressed):
    waiting_job(addressed.submitter, "once only")
    run_pass()
    sent, rows = len(mail.outbox), Delivery.objects.count()
    summary = run_pass()
    assert len(mail.outbox) == sent and Delivery.objects.count() == rows
    assert summary.planned == 0 and summary.outcomes == []


def test_a_reviewer_who_turned_waiting_off_gets_no_waiting_email(addressed):
    NotificationSetting.objects.create(user=addressed.reviewer, email_off=["waiting"])
    waiting_job(addressed.submitter, "muted")
    run_pass()
    assert outbox_to(addressed.reviewer.email) == []
    assert not Delivery.objects.filter(target="rita").exists()  # nothing planned for them
    assert len(outbox_to(addressed.superuser.email)) == 1  # others still get theirs


def test_a_reviewer_without_an_address_gets_no_email(people):
    waiting_job(people.submitter, "no address")  # rita has no address; root has one
    run_pass()
    assert not Delivery.objects.filter(target="rita").exists()
    assert [m.to for m in mail.outbox] == [[people.superuser.email]]


def test_inactive_reviewers_are_not_eligible(addressed):
    addressed.reviewer.is_active = False
    addressed.reviewer.save()
    waiting_job(addressed.submitter, "inactive")
    run_pass()
    assert outbox_to(addressed.reviewer.email) == []


def test_decisions_and_endings_go_to_the_submitter(addressed):
    # given jobs approved, rejected, done, stopped by the budget and cancelled, all submitted by sam
    approved = waiting_job(addressed.submitter, "approved one")
    services.approve(job_id=approved.job_id, step="runspec", actor=Actor.user(addressed.reviewer))
    rejected_job(addressed.submitter, "rejected one")
    done_job(addressed.submitter, "done one")
    stopped_job(addressed.submitter, "stopped one")
    cancelled_job(addressed.submitter, "cancelled one")
    mail.outbox.clear()

    run_pass()

    # then sam hears of each decision and each ending, by kind
    subjects = sorted(m.subject.split(":")[0] for m in outbox_to(addressed.submitter.email))
    decided = ["[EAM] Decided"] * 3  # approved, rejected, and the approval inside done_job
    finished = ["[EAM] Finished"] * 3
    assert subjects == sorted(decided + finished)
    kinds = sorted(Delivery.objects.filter(target="sam").values_list("kind", flat=True))
    assert kinds == ["decided"] * 3 + ["finished"] * 3


def test_an_error_goes_to_the_submitter_and_the_operators(addressed):
    operator2 = with_email(a_user("olga", "operators"))
    job = error_job(addressed.submitter, "broken one")
    run_pass()
    for user in (addressed.submitter, addressed.operator, operator2):
        [message] = outbox_to(user.email)
        assert "[EAM] Error: broken one" in message.subject and job.job_id in message.subject
        assert "stopped on an error at compile" in message.body
    assert outbox_to(addressed.reviewer.email) == []


def test_a_submitter_who_is_an_operator_gets_one_error_email(addressed):
    addressed.submitter.groups.add(Group.objects.get(name="operators"))
    error_job(addressed.submitter, "one email")
    run_pass()
    assert len(outbox_to(addressed.submitter.email)) == 1


def test_events_nobody_is_told_of_plan_nothing(addressed):
    submitted(addressed.submitter, "just queued")
    run_pass()
    assert mail.outbox == [] and Delivery.objects.count() == 0


def test_under_an_approval_rule_only_the_eligible_reviewers_of_its_groups_hear_a_job_waits(addressed, policy_root):
    bundle = a_rules_bundle(policy_root, "quants_only", runspec={"required": [{"group": "quants", "count": 1}]})
    quant = with_email(reviewers_in("quants", 1)[0])
    job = submitted(addressed.submitter, "quants decide", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    run_pass()
    assert [m.to for m in mail.outbox if "quants decide" in m.subject] == [[quant.email]]
    assert {u.username for u in eligible_reviewers(job, "runspec")} == {"quants1"}


def test_an_escalation_emails_the_members_of_its_group(addressed, policy_root):

    # given a job waiting at runspec under a rule that escalates to `methodology` after a second
    bundle = a_rules_bundle(policy_root, "escalating", runspec={
        "required": [{"group": "quants", "count": 1}], "respond_within": "1s", "on_timeout": "escalate",
        "escalate_to": "methodology"})
    reviewers_in("quants", 1)
    methodology = with_email(a_user("mia", "reviewers", "methodology"))
    job = submitted(addressed.submitter, "escalated one", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    run_pass()
    mail.outbox.clear()

    # when the deadline has passed and a worker's pass escalated the checkpoint
    [action] = deadlines.sweep(now=events.now() + timedelta(hours=1), job_ids=[job.job_id])
    assert action.action == "escalate"
    run_pass()

    # then the group's members hear of it, and nobody outside the group does
    [message] = outbox_to(methodology.email)
    assert "[EAM] Escalated: escalated one" in message.subject
    assert "was escalated to methodology at runspec" in message.body
    assert list(Delivery.objects.filter(kind="escalated", channel="email").values_list("target", flat=True)) == [
        "mia"]


def test_an_smtp_server_that_refuses_is_retried_then_the_email_delivered(addressed, settings):
    # given an SMTP backend whose server refuses connections (nothing listens on the port)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", a_closed_port(), 5
    waiting_job(addressed.submitter, "smtp down")
    start = timezone.now()

    # when a pass runs, then the server comes back (the test outbox) and a later pass runs
    run_pass(now=start)
    delivery = Delivery.objects.get(target="rita")
    assert delivery.status == Delivery.Status.PENDING and "ConnectionRefusedError" in delivery.last_error
    assert mail.outbox == []
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run_pass(now=start + timedelta(hours=1))

    # then the second attempt delivered it, and both attempts are recorded
    assert len(outbox_to(addressed.reviewer.email)) == 1
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "outcome")) == [
        (1, "retry"), (2, "delivered")]


def test_an_address_that_cannot_be_sent_to_is_recorded_and_the_pass_goes_on(addressed):
    # given a reviewer whose address holds a line break (the e-mail cannot even be built), and another reviewer
    with_email(addressed.reviewer, "rita@example.org\nBcc: someone@example.org")
    waiting_job(addressed.submitter, "bad address")

    run_pass()

    # then the failure is an attempt on that delivery, and the other reviewer still got their e-mail
    delivery = Delivery.objects.get(target="rita")
    assert delivery.status == Delivery.Status.PENDING and "BadHeaderError" in delivery.last_error
    assert DeliveryAttempt.objects.get(delivery=delivery).outcome == "retry"
    assert [m.to for m in mail.outbox] == [[addressed.superuser.email]]


def test_an_approval_under_a_rule_tells_the_submitter_which_group_it_counts_for(addressed, policy_root):
    bundle = a_rules_bundle(policy_root, "two_quants", runspec={"required": [{"group": "quants", "count": 2}]})
    quant = reviewers_in("quants", 2)[0]
    job = submitted(addressed.submitter, "counted", policy_bundle_id=bundle)
    to_runspec_review(job.job_id)
    services.approve(job_id=job.job_id, step="runspec", actor=Actor.user(quant))
    run_pass()
    [message] = [m for m in outbox_to(addressed.submitter.email) if "counted" in m.subject]
    assert "got an approval at runspec (counts for quants)" in message.body
