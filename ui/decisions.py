"""Approve, reject and ask for an agent again from a job's page: the form checks its shape, jobs.services decides and writes.

A decision that is taken redirects back to the job's page with a message (post/redirect/get). One that is
refused renders the job's page again with the refusal's HTTP status (400, 403, 404, 409) and says why,
so a forged or stale POST gets the same answer from the page as from the API, and nothing is written.
"""
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View

from jobs import reruns, services
from jobs.events import Actor
from jobs.errors import DomainError, Forbidden, InvalidInput, NotFound
from jobs.services import check_job_id
from jobs.roles import APPROVE, OVERRIDE, RERUN

from .forms import ApproveForm, OverrideForm, RejectForm, RerunForm, approve_form_for
from .views import error_page, render_job


class MethodNotAllowed(DomainError):
    status = 405
    code = "method_not_allowed"


def form_problems(form) -> str:
    """A bound form's errors in one sentence, each named by its field's label."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label or name if name in form.fields else ""
        parts += [f"{label}: {error}" if label else error for error in errors]
    return " ".join(parts)


class Decision(View):
    """POST only. Subclasses name their form, the keyword of the page's form, and how to decide."""

    http_method_names = ["post"]
    form_class: type
    form_key: str
    permission, refused = APPROVE, "only reviewers decide checkpoints"

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = error_page(request, MethodNotAllowed("use the form on the job's page (POST)"))
        response["Allow"] = "POST"
        return response

    def post(self, request, job_id):
        try:
            check_job_id(job_id)
        except NotFound as error:
            return error_page(request, error)
        if not request.user.is_authenticated:
            return redirect_to_login(reverse("ui:job", kwargs={"job_id": job_id}))
        form = self.make_form(request.POST)
        try:
            if not request.user.has_perm(self.permission):
                raise Forbidden(self.refused, code="permission_denied")
            if not form.is_valid():
                raise InvalidInput(form_problems(form), code="invalid_form")
            said = self.decide(job_id=job_id, actor=Actor.user(request.user), **form.cleaned_data)
        except DomainError as error:
            messages.error(request, error.detail)
            try:
                return render_job(request, job_id, status=error.status, **{self.form_key: form})
            except NotFound as missing:
                return error_page(request, missing)
        messages.success(request, said)
        return redirect("ui:job", job_id=job_id)

    def make_form(self, data):
        return self.form_class(data)

    def decide(self, *, job_id: str, actor: Actor, step: str, **fields) -> str:
        """Call the service; return what to tell the reviewer."""
        raise NotImplementedError


class Approve(Decision):
    form_class, form_key = ApproveForm, "approve_form"

    def make_form(self, data):
        return approve_form_for(data)  # at improvements, with the accepted proposals

    def decide(self, *, job_id, actor, step, comment, artifact_sha256, accept=None):
        services.approve(job_id=job_id, step=step, actor=actor, comment=comment,
                         artifact_sha256=artifact_sha256 or None, accept=accept)
        said = f"Approved {step} of job {job_id}"
        if accept is not None:
            said += f", accepting {len(accept)} proposal{'' if len(accept) == 1 else 's'} ({', '.join(accept)})"
        return said + (f" with the comment “{comment}”." if comment else ".") + " A worker takes it from here."


class Rerun(Decision):
    form_class, form_key = RerunForm, "rerun_form"
    permission, refused = RERUN, "only reviewers and operators ask for an agent's output again"

    def decide(self, *, job_id, actor, agent_id, prompt_version, reason):
        event = reruns.request_rerun(job_id=job_id, agent_id=agent_id, actor=actor, reason=reason,
                                     prompt_version=prompt_version or None)
        return (f"Asked for {agent_id} again (rerun {event.payload['rerun_id']}, prompt "
                f"{event.payload['prompt_version']}). A worker runs it; its result appears in the timeline.")


class Override(Decision):
    form_class, form_key = OverrideForm, "override_form"
    permission, refused = OVERRIDE, "only people given the override permission open a checkpoint without its approvals"

    def decide(self, *, job_id, actor, step, reason):
        services.override(job_id=job_id, step=step, actor=actor, reason=reason)
        return f"Overrode {step} of job {job_id}: {reason.strip()}. The checkpoint is open; a worker takes it from here."


class Reject(Decision):
    form_class, form_key = RejectForm, "reject_form"

    def decide(self, *, job_id, actor, step, reason):
        services.reject(job_id=job_id, step=step, actor=actor, reason=reason)
        return f"Rejected {step} of job {job_id}: {reason.strip()}. The job has ended."
