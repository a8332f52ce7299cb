"""The job list and the job page, where reviewers decide checkpoints.

Status, waiting step and verdict come from the JobState projection; Approve, Reject and the bulk action
(`bulk`) call `jobs.services` and nothing else. The gate results and the run link are the /ui job page's reads.
"""
import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from jobs import deadlines, review, selectors, services
from jobs.events import Actor
from jobs.errors import DomainError, InvalidInput, NotFound
from jobs.models import JobSpec
from jobs.roles import APPROVE
from research.models import RegistryEntry
from ui import selectors as pages
from ui.checkpoints import checkpoint_review

from . import bulk
from .base import RecordAdmin

NO_VERDICT = "none"


class VerdictFilter(admin.SimpleListFilter):
    title = "verdict"
    parameter_name = "verdict"

    def lookups(self, request, model_admin):
        return (*RegistryEntry.Verdict.choices, (NO_VERDICT, "No verdict yet"))

    def queryset(self, request, queryset):
        value = self.value()
        if value == NO_VERDICT:
            return queryset.filter(state__verdict__isnull=True)
        if value in RegistryEntry.Verdict.values:
            return queryset.filter(state__verdict=value)
        return queryset


@admin.register(JobSpec)
class JobSpecAdmin(RecordAdmin):
    list_display = ("job_id", "status", "kind", "waiting_step", "verdict", "title", "submitted_by", "created_at")
    list_filter = (
        "state__status", "kind", "state__waiting_step", VerdictFilter, "submitted_by",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("^job_id", "^root_job_id", "submitted_by", "snapshot_id", "state__status", "state__waiting_step")
    ordering = ("-created_at", "-job_id")
    actions = ("approve_pending",)
    job_page_template = "admin/jobs/jobspec/job_page.html"

    def get_queryset(self, request):  # the title read in the database, as every job list reads it
        return super().get_queryset(request).select_related("state").annotate(spec_title=selectors.job_title("spec"))

    @admin.display(description="title", ordering="spec_title", empty_value="—")
    def title(self, job):
        return job.spec_title

    def has_approve_permission(self, request):
        return request.user.has_perm(APPROVE)

    # -- the list ----------------------------------------------------------------------------------------------

    @admin.display(description="status", ordering="state__status")
    def status(self, job):
        return job.state.status

    @admin.display(description="waiting step", ordering="state__waiting_step")
    def waiting_step(self, job):
        return job.state.waiting_step

    @admin.display(description="verdict", ordering="state__verdict")
    def verdict(self, job):
        return job.state.verdict

    @admin.action(description="Approve pending checkpoint", permissions=["approve"])
    def approve_pending(self, request, queryset):
        return bulk.approve_pending(self, request, queryset)

    # -- the job page ------------------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        try:
            detail = selectors.job_detail(job_id=job.job_id, user=request.user)
        except DomainError as error:  # a job without its state projection: say so, do not fail
            self.message_user(request, error.detail, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:jobs_jobspec_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{job.kind} job {job.job_id}",
            "job": job,
            "detail": detail,
            "verdict": job.state.verdict,
            "spec_json": json.dumps(job.spec, indent=2, sort_keys=True, ensure_ascii=False),
            "events": review.timeline(job.job_id),
            "artifacts": review.artifact_links(detail),
            "review": checkpoint_review(detail),
            "gates": pages.gate_results(detail),
            "has_run": pages.run_completed(detail),
            "may_decide": detail["can_approve"] or detail["can_reject"],
            "deadline": deadlines.deadline_of(job.job_id, detail["approval"]),
            "approve_url": reverse("admin:jobs_jobspec_approve", args=[quote(job.job_id)]),
            "reject_url": reverse("admin:jobs_jobspec_reject", args=[quote(job.job_id)]),
            "api_url": reverse("job-detail", kwargs={"job_id": job.job_id}),
            "ui_url": reverse("ui:job", args=[job.job_id]),
            "events_url": reverse("admin:jobs_jobevent_changelist") + "?" + urlencode({"q": job.job_id}),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.job_page_template, context)

    # -- decisions: POST only, CSRF-checked by admin_view, written by the services -----------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        decisions = [
            path("<path:object_id>/approve/", view(self.approve_view), name="jobs_jobspec_approve"),
            path("<path:object_id>/reject/", view(self.reject_view), name="jobs_jobspec_reject"),
        ]
        return decisions + super().get_urls()

    @method_decorator(require_POST)
    def approve_view(self, request, object_id):
        def approve(job_id, step, actor):
            accept = None
            if step == services.IMPROVEMENTS:  # the checked proposals; none checked is not an approval
                accept = request.POST.getlist("accept")
                if not accept:
                    raise InvalidInput("accept at least one proposal, or reject instead", code="nothing_accepted")
            services.approve(
                job_id=job_id, step=step, actor=actor, comment=request.POST.get("comment", "").strip(),
                artifact_sha256=request.POST.get("artifact_sha256") or None, accept=accept,
            )
            accepted = f", accepting {len(accept)} proposal(s): {', '.join(accept)}" if accept else ""
            return f"Approved checkpoint {step} of job {job_id}{accepted}."

        return self._decide(request, object_id, approve, failed="Not approved")

    @method_decorator(require_POST)
    def reject_view(self, request, object_id):
        def reject(job_id, step, actor):
            services.reject(job_id=job_id, step=step, actor=actor, reason=request.POST.get("reason", ""))
            return f"Rejected checkpoint {step} of job {job_id}; the job has ended."

        return self._decide(request, object_id, reject, failed="Not rejected")

    def _decide(self, request, object_id, decide, *, failed: str):
        """Run one decision; every refusal of the service becomes a message on the job page, never an error page."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        job_id = unquote(object_id)
        try:
            self.message_user(request, decide(job_id, request.POST.get("step", ""), Actor.user(request.user)),
                              messages.SUCCESS)
        except NotFound as error:
            self.message_user(request, f"{failed}: {error.detail}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:jobs_jobspec_changelist"))
        except DomainError as error:
            self.message_user(request, f"{failed}: {error.detail}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:jobs_jobspec_change", args=[quote(job_id)]))
