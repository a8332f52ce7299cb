"""The job list's bulk "Approve pending checkpoint": a confirmation page first (nothing is written), then one
call of `services.approve_pending` and a message per kind of outcome naming each job."""
from collections import defaultdict

from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from jobs import services
from jobs.events import Actor

CONFIRMATION_TEMPLATE = "admin/jobs/jobspec/approve_pending_confirmation.html"
CONFIRMED = "yes"
REVIEWED = "reviewed_"  # + job id: the sha256 the confirmation page showed under review
COMMENT_MAX_LENGTH = 4000


def jobs_phrase(outcomes) -> str:
    return f"{len(outcomes)} job{'' if len(outcomes) == 1 else 's'}"


def approve_pending(model_admin, request, queryset):
    """The action: without `post=yes` the confirmation page, with it the approvals and their outcomes."""
    jobs = list(queryset)
    if request.POST.get("post") != CONFIRMED:
        return confirmation_page(model_admin, request, jobs)
    # What the confirmation page showed under review: a checkpoint announced again since is a stale review.
    reviewed = {job.job_id: request.POST.get(f"{REVIEWED}{job.job_id}", "") for job in jobs}
    outcomes = services.approve_pending(jobs=jobs, actor=Actor.user(request.user),
                                        comment=request.POST.get("comment", "").strip(), reviewed=reviewed)
    report(model_admin, request, outcomes)
    return None  # the admin redirects to the list, where the messages show


def confirmation_page(model_admin, request, jobs) -> TemplateResponse:
    opts = model_admin.model._meta
    return TemplateResponse(request, CONFIRMATION_TEMPLATE, {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": "Approve the pending checkpoints?",
        "jobs": jobs,
        "waiting": sum(1 for job in jobs if job.state.waiting_step),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": request.POST.get("action", "approve_pending"),
        "comment_max_length": COMMENT_MAX_LENGTH,
        "confirmed": CONFIRMED,
        "reviewed_prefix": REVIEWED,
    })


def report(model_admin, request, outcomes) -> None:
    by_kind = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome)
    if approved := by_kind[services.APPROVED]:
        listed = ", ".join(f"{o.step} of job {o.job_id}" for o in approved)
        model_admin.message_user(request, f"Approved the pending checkpoint of {jobs_phrase(approved)}: {listed}.",
                                 messages.SUCCESS)
    if idle := by_kind[services.NOT_WAITING]:
        listed = ", ".join(f"{o.job_id} ({o.status})" for o in idle)
        model_admin.message_user(request, f"Not waiting at a checkpoint, nothing done for {jobs_phrase(idle)}: "
                                          f"{listed}.", messages.WARNING)
    if own := by_kind[services.FOUR_EYES]:
        listed = ", ".join(f"{o.job_id} ({o.step})" for o in own)
        model_admin.message_user(request, f"Four eyes: you submitted {jobs_phrase(own)}, another reviewer must "
                                          f"approve: {listed}.", messages.WARNING)
    for refused in by_kind[services.REFUSED]:
        model_admin.message_user(request, f"Job {refused.job_id} not approved: {refused.detail}", messages.ERROR)
