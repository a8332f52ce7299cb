"""The reviewer's pages: job lists, a job's page, a run's page, and the sign-in pages around them.

Reads go through jobs.selectors, research.runs (a run's dossier) and ui.selectors; the decisions are in
ui.decisions. Every id in a URL is checked against its allowlist before any lookup, and a domain error (or a
research error a read can meet) is a page with its status, never a 500.
"""
from functools import cache, wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from jobs import deadlines, reruns, review, selectors
from jobs.errors import DomainError, InvalidInput, from_research
from jobs.services import check_job_id
from research import runs
from research.errors import ResearchError

from . import selectors as pages
from .charts import comparison_chart, equity_chart, run_charts
from .checkpoints import checkpoint_review
from .forms import OverrideForm, RejectForm, RerunForm, approve_form_for
from .templatetags.ui_format import METRIC_LABELS


def with_navigation(request) -> None:
    """What base.html's navigation needs beyond the user: how many jobs wait for them (`ui_waiting_count`), read
    only if the page draws it (one query). Set by `reader`, `render_job`, `error_page` and the logout page."""
    request.ui_waiting_count = cache(lambda: pages.waiting_count(request.user))  # a template calls it


def error_page(request, error: DomainError):
    with_navigation(request)
    return render(request, "ui/error.html", {"error": error}, status=error.status)


def reader(view):
    """A read: a signed-in user, or anyone when EAM_PUBLIC_READ is on; domain errors become error pages."""

    @wraps(view)
    def read(request, *args, **kwargs):
        if not (settings.EAM_PUBLIC_READ or request.user.is_authenticated):
            return redirect_to_login(request.get_full_path())
        with_navigation(request)
        try:
            return view(request, *args, **kwargs)
        except DomainError as error:
            return error_page(request, error)
        except ResearchError as error:
            domain = from_research(error)
            if domain is None:
                raise
            return error_page(request, domain)

    return read


def _list_page(request, *, title: str, page: selectors.Page, order: str, filters=None, status: str | None = None,
               intro: str = "", search: dict | None = None, queue: bool = False):
    """A list of jobs; `search` ({"q", "mine"}: the job list) is kept by its filter and page links; a `queue`
    shows how long each job has waited."""
    kept = urlencode({name: value for name, value in (search or {}).items() if value})
    return render(request, "ui/job_list.html", {
        "title": title,
        "intro": intro,
        "order": order,
        "jobs": page.results,  # each with its title and verdict (from the projection)
        "next_cursor": page.next_cursor,
        "paged": bool(request.GET.get("cursor")),
        "status": status,
        "filters": filters,
        "search": search,
        "queue": queue,
        "kept": kept,  # the search, for the status links
        "query": "&".join(part for part in (f"status={status}" if status else "", kept) if part),  # for paging
    })


@reader
def job_list(request):
    """Every job, newest first; `status=`, a search (`q=`: title, submitter, family) and `mine=1` (the jobs the
    signed-in user submitted) narrow it, the status counts with it."""
    status = request.GET.get("status") or None
    if status is not None and status not in pages.STATUSES:
        raise InvalidInput(f"unknown status {status!r}: one of {', '.join(pages.STATUSES)}", code="invalid_status")
    q = request.GET.get("q", "").strip()
    mine = request.GET.get("mine") == "1"
    if mine and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    where = pages.job_search(q=q, submitted_by=request.user.get_username() if mine else None)
    page = selectors.list_jobs(filters=selectors.JobFilters(status=status), cursor=request.GET.get("cursor"),
                               limit=pages.PAGE_SIZE, where=where, order=selectors.NEWEST_FIRST)
    return _list_page(request, title="My jobs" if mine else "Jobs", page=page, order="newest first",
                      filters=pages.status_filters(where), status=status,
                      search={"q": q, "mine": "1" if mine else ""})


@reader
def waiting_list(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    page = pages.waiting_for_review(user=request.user, cursor=request.GET.get("cursor"), limit=pages.PAGE_SIZE)
    intro = ("Jobs waiting at a checkpoint that you may decide, the longest waiting first."
             if request.user.has_perm(pages.APPROVE) else "You are not a reviewer: no checkpoint waits for you.")
    return _list_page(request, title="Waiting for me", page=page, order="longest waiting first", intro=intro,
                      queue=True)


def render_job(request, job_id: str, *, status: int = 200, approve_form=None, reject_form=None, rerun_form=None,
               override_form=None):
    """The job's page; a refused decision renders it again with the refusal's status and the posted form."""
    with_navigation(request)
    detail = selectors.job_detail(job_id=job_id, user=request.user)
    step = detail["waiting_step"]
    approve_form = approve_form or approve_form_for(initial={"step": step, "artifact_sha256": detail["review_sha256"]})
    return render(request, "ui/job_detail.html", {
        "job": detail,
        "review": checkpoint_review(detail),
        "accepted": approve_form.data.getlist("accept") if approve_form.is_bound else None,
        "lineage": pages.lineage_tree(selectors.job_lineage(job_id=job_id)),
        "summary": pages.spec_summary(detail["kind"], detail["spec"]),
        "timeline": review.timeline(job_id),
        "artifacts": review.artifact_links(detail),
        "gates": pages.gate_results(detail),
        "has_run": pages.run_completed(detail),
        "approve_form": approve_form,
        "reject_form": reject_form or RejectForm(initial={"step": step}),
        "override_form": override_form or OverrideForm(initial={"step": step}),
        "deadline": deadlines.deadline_of(job_id, detail["approval"]),
        "agents": agent_rows(detail, rerun_form),
    }, status=status)


def agent_rows(detail: dict, posted=None) -> list[dict]:
    """Per agent that ran: its current output, its reruns so far, what is pending, and (if the user may ask)
    a form to ask for it again (the posted one, with its errors, for the agent it named)."""
    if not detail["rerun_agents"]:
        return []
    state = reruns.rerun_state(detail["job_id"])
    pending = {r["agent_id"] for r in detail["reruns"]}
    rows = []
    for agent_id in detail["rerun_agents"]:
        known = state["agents"].get(agent_id, {})
        form = None
        if detail["can_rerun"]:
            form = posted if posted is not None and posted.agent == agent_id else RerunForm(agent_id=agent_id)
        rows.append({"agent_id": agent_id, "current": known.get("current_output_sha256"),
                     "reruns": known.get("reruns", 0), "latest": known.get("latest"),
                     "pending": agent_id in pending, "form": form})
    return rows


@reader
def job_detail(request, job_id):
    check_job_id(job_id)
    return render_job(request, job_id)


@reader
def run_detail(request, run_id):
    """The run's overview (the stitched out-of-sample record, drawn) or, with ?segment=, one segment."""
    run = runs.run_detail(run_id=run_id)
    segment_id = request.GET.get("segment")
    segment, chart, overview = None, None, None
    if segment_id:
        segment = runs.run_segment(run_id=run_id, segment_id=segment_id)  # what the segment shows (a holdout: metrics)
        if "curve" in segment:
            chart = _chart(segment["curve"])
    else:
        overview = run_charts(run["segments"], runs.run_oos_curve(run_id=run_id))
    return render(request, "ui/run_detail.html", {"run": run, "segment": segment, "chart": chart,
                                                  "overview": overview})


def _chart(curve: dict):
    columns = curve["columns"]
    if "date" not in columns or "equity" not in columns:
        return None
    d, e = columns.index("date"), columns.index("equity")
    return equity_chart([row[d] for row in curve["rows"]], [row[e] for row in curve["rows"]])


@reader
def run_compare(request):
    """Two runs side by side (?a=&b=): their out-of-sample metrics with the difference, both stitched curves."""
    ids = [request.GET.get(name, "") for name in ("a", "b")]
    if not all(ids):
        raise InvalidInput("name two runs to compare: ?a=<run_id>&b=<run_id>", code="invalid_run_id")
    a, b = (runs.run_detail(run_id=run_id) for run_id in ids)
    oos_a, oos_b = a["metrics"]["oos"], b["metrics"]["oos"]
    rows = [{"key": key, "label": label, "a": oos_a.get(key), "b": oos_b.get(key),
             "difference": _difference(oos_a.get(key), oos_b.get(key))}
            for key, label in METRIC_LABELS.items() if _number(oos_a.get(key)) or _number(oos_b.get(key))]
    chart = comparison_chart([(f"A {a['run_id']}", runs.run_oos_curve(run_id=a["run_id"])),
                              (f"B {b['run_id']}", runs.run_oos_curve(run_id=b["run_id"]))])
    return render(request, "ui/run_compare.html", {"a": a, "b": b, "rows": rows, "chart": chart})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _difference(a, b):
    return b - a if _number(a) and _number(b) else None


# The next pages are set here, not in LOGIN_REDIRECT_URL / LOGOUT_REDIRECT_URL, which the admin reads too.
class LoginView(auth_views.LoginView):
    template_name = "ui/login.html"
    redirect_authenticated_user = True
    next_page = "ui:jobs"


class LogoutView(auth_views.LogoutView):
    """GET asks to confirm (a link must not sign anyone out); POST signs out and says so."""

    http_method_names = ["get", "post", "options"]
    template_name = "ui/logout.html"
    next_page = "ui:login"

    def get(self, request, *args, **kwargs):
        with_navigation(request)
        return render(request, self.template_name)

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.info(request, "You are signed out.")
        return response
