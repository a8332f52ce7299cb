"""The jobs API (DESIGN §8): one action per operation, each reading its input, calling one service or
selector and shaping the answer. Errors are raised, never returned: `exceptions.exception_handler` maps them.
"""
from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs import access, artifacts, reruns, selectors, services, spawning
from jobs.events import Actor
from jobs.services import check_job_id
from jobs.roles import APPROVE, OPERATE, OVERRIDE, RERUN, SPAWN, SUBMIT

from . import serializers as s
from . import http
from .http import not_modified, read_body, read_query
from .schema import IF_NONE_MATCH, JOB_ID, READS, WRITES, PagedAutoSchema, contract_schema, error_responses

SELECTOR_CONTENT_TYPES = sorted(set(artifacts.CONTENT_TYPES.values()) | {"application/octet-stream"})


def _tagged(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # the caller's own answer: ask again, with the ETag
    return response


def _submitted(job, created: bool) -> Response:
    return Response(
        {**selectors.job_summary(job.job_id), "created": created},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        headers={"Location": reverse("job-detail", kwargs={"job_id": job.job_id})},
    )


def _event(row) -> Response:
    return Response(selectors.event_view(row))


SUBMITTED = {201: s.SubmitResponse, 200: OpenApiResponse(s.SubmitResponse, description="already submitted"),
             **error_responses(*WRITES)}
EVENT_WRITTEN = {200: s.Event, **error_responses(*WRITES)}


class JobViewSet(viewsets.ViewSet):
    """Jobs: submit, list, read, review and operate."""

    schema = PagedAutoSchema()
    lookup_field = "job_id"
    lookup_value_regex = "[^/]+"  # any segment reaches the view, whose allowlist answers 404 invalid_job_id
    required_permissions = {
        "create": SUBMIT, "blueprint": SUBMIT, "idea": SUBMIT,
        "approve": APPROVE, "reject": APPROVE, "override": OVERRIDE,
        "retry": OPERATE, "cancel": OPERATE, "spawn": SPAWN, "rerun": RERUN,
    }

    # -- submit --------------------------------------------------------------------------------------------

    @extend_schema(
        operation_id="jobs_submit", summary="Submit a full job spec", tags=["submit"],
        request={"application/json": contract_schema("job_spec_v1")}, responses=SUBMITTED,
    )
    def create(self, request):
        read_query(request, http.NoQuery)
        job, created = services.submit_job_spec(spec=request.data, actor=Actor.user(request.user))
        return _submitted(job, created)

    @extend_schema(
        operation_id="jobs_submit_blueprint", summary="Submit a blueprint", tags=["submit"],
        parameters=[http.SubmitQuery], request={"application/json": contract_schema("blueprint_v1")},
        responses=SUBMITTED,
    )
    @action(detail=False, methods=["post"])
    def blueprint(self, request):
        query = read_query(request, http.SubmitQuery)
        job, created = services.submit_blueprint(blueprint=request.data, actor=Actor.user(request.user), **query)
        return _submitted(job, created)

    @extend_schema(
        operation_id="jobs_submit_idea", summary="Submit an idea", tags=["submit"],
        parameters=[http.SubmitQuery], request={"application/json": contract_schema("idea_spec_v1")},
        responses=SUBMITTED,
        description="An idea job: the intent agent proposes a blueprint, and five checkpoints (blueprint, "
                    "strategy_spec, runspec, trace_preview, improvements) lead to the run, the report and the "
                    "spawn of child jobs. `extensions` of a full job spec may pin prompt versions "
                    "(`extensions.prompt_pins`).",
    )
    @action(detail=False, methods=["post"])
    def idea(self, request):
        query = read_query(request, http.SubmitQuery)
        job, created = services.submit_idea(idea=request.data, actor=Actor.user(request.user), **query)
        return _submitted(job, created)

    # -- read ----------------------------------------------------------------------------------------------

    @extend_schema(
        operation_id="jobs_list", summary="List jobs, oldest first", tags=["read"], parameters=[http.JobListQuery],
        responses={200: s.JobPage, **error_responses(*READS)},
    )
    def list(self, request):
        query = read_query(request, http.JobListQuery)
        cursor, limit = query.pop("cursor", None), query.pop("limit")
        page = selectors.list_jobs(filters=selectors.JobFilters(**query), cursor=cursor, limit=limit)
        return Response({"results": page.results, "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="jobs_read", summary="A job: spec, state, verdict, lineage, artifacts, what you may do now",
        tags=["read"], parameters=[JOB_ID, IF_NONE_MATCH],
        responses={200: s.JobDetail, 304: OpenApiResponse(description="If-None-Match names the current ETag"),
                   **error_responses(*READS)},
    )
    def retrieve(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        head = selectors.job_head(job_id=job_id, user=request.user)
        etag = f'"{head.version}"'
        if not_modified(request, etag):
            return _tagged(HttpResponseNotModified(), etag)
        return _tagged(Response(selectors.job_detail(job_id=job_id, user=request.user, head=head)), etag)

    @extend_schema(
        operation_id="jobs_events", summary="A job's events after a seq", tags=["read"],
        parameters=[JOB_ID, http.EventsQuery], responses={200: s.EventPage, **error_responses(*READS)},
    )
    @action(detail=True, methods=["get"])
    def events(self, request, job_id=None):
        check_job_id(job_id)
        query = read_query(request, http.EventsQuery)
        return Response(selectors.job_events(job_id=job_id, **query))

    @extend_schema(
        operation_id="jobs_lineage", summary="The tree of a job's root: every job with its title, status, verdict",
        tags=["read"], parameters=[JOB_ID], responses={200: s.LineageTree, **error_responses(*READS)},
    )
    @action(detail=True, methods=["get"])
    def lineage(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        return Response(selectors.job_lineage(job_id=job_id))

    @extend_schema(
        operation_id="jobs_artifacts", summary="A job's files (and its run's dossier) with sha256 and size",
        tags=["read"], parameters=[JOB_ID], responses={200: s.ArtifactList, **error_responses(*READS)},
    )
    @action(detail=True, methods=["get"])
    def artifacts(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        return Response(artifacts.job_artifacts(job_id=job_id))

    @extend_schema(
        operation_id="jobs_artifact", summary="Download one artifact of a job", tags=["read"],
        description="Every download appends one row to the access log (`GET /audit/reads`); a read that cannot be "
                    "logged is not served: 503 `read_not_logged`. A 304 serves no bytes and is not logged.",
        parameters=[JOB_ID, OpenApiParameter("path", str, OpenApiParameter.PATH,
                                             description="as listed: e.g. outputs/runspec.json, dossier/metrics.json"),
                    IF_NONE_MATCH],
        responses={**{(200, media): OpenApiTypes.ANY if media == "application/json" else OpenApiTypes.BINARY
                      for media in SELECTOR_CONTENT_TYPES},
                   304: OpenApiResponse(description="If-None-Match names the artifact's ETag (its sha256)"),
                   **error_responses(*READS)},
    )
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<path>.+)", url_name="artifact")
    def artifact(self, request, job_id=None, path=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        found = artifacts.job_artifact(job_id=job_id, path=path)
        described = found.describe()
        etag = f'"{described["sha256"]}"'
        if not_modified(request, etag):  # no bytes served: not a read the access log records
            return _tagged(HttpResponseNotModified(), etag)
        if request.method != "HEAD":  # HEAD answers the headers only: no bytes served, nothing logged
            access.record_read(reader=access.Reader.of(request), job_id=job_id, path=path,
                               storage_path=found.storage_path, sha256=described["sha256"], size=described["bytes"])
        response = HttpResponse(found.data, content_type=found.content_type)
        response["Content-Disposition"] = f'inline; filename="{path.rsplit("/", 1)[-1]}"'
        return _tagged(response, etag)

    # -- review and operate ----------------------------------------------------------------------------------

    @extend_schema(
        operation_id="jobs_approve", summary="Approve the checkpoint the job waits at", tags=["review"],
        parameters=[JOB_ID, http.StepQuery], request=http.ApproveInput, responses=EVENT_WRITTEN,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, job_id=None):
        check_job_id(job_id)
        step = read_query(request, http.StepQuery)["step"]
        body = read_body(request, http.ApproveInput)
        return _event(services.approve(job_id=job_id, step=step, actor=Actor.user(request.user), **body))

    @extend_schema(
        operation_id="jobs_reject", summary="Reject the checkpoint the job waits at (the job ends)",
        tags=["review"], parameters=[JOB_ID, http.StepQuery], request=http.RejectInput, responses=EVENT_WRITTEN,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, job_id=None):
        check_job_id(job_id)
        step = read_query(request, http.StepQuery)["step"]
        body = read_body(request, http.RejectInput)
        return _event(services.reject(job_id=job_id, step=step, actor=Actor.user(request.user), **body))

    @extend_schema(
        operation_id="jobs_override",
        summary="Open the checkpoint the job waits at without the approvals its rule asks for (break-glass)",
        tags=["review"], parameters=[JOB_ID, http.StepQuery], request=http.RejectInput, responses=EVENT_WRITTEN,
    )
    @action(detail=True, methods=["post"])
    def override(self, request, job_id=None):
        check_job_id(job_id)
        step = read_query(request, http.StepQuery)["step"]
        body = read_body(request, http.RejectInput)
        return _event(services.override(job_id=job_id, step=step, actor=Actor.user(request.user), **body))

    @extend_schema(
        operation_id="jobs_retry", summary="Make a job in error runnable again", tags=["operate"],
        parameters=[JOB_ID], request=http.OperatorInput, responses=EVENT_WRITTEN,
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        body = read_body(request, http.OperatorInput)
        return _event(services.retry(job_id=job_id, actor=Actor.user(request.user), **body))

    @extend_schema(
        operation_id="jobs_cancel", summary="Cancel a job that has not ended", tags=["operate"],
        parameters=[JOB_ID], request=http.OperatorInput, responses=EVENT_WRITTEN,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        body = read_body(request, http.OperatorInput)
        return _event(services.cancel(job_id=job_id, actor=Actor.user(request.user), **body))

    @extend_schema(
        operation_id="jobs_rerun", summary="Ask for an agent's output again (a worker runs it)", tags=["operate"],
        parameters=[JOB_ID], request=http.RerunInput, responses={202: s.Event, **error_responses(*WRITES)},
        description="Appends `RERUN_REQUESTED`; a worker runs the agent and appends `RERUN_COMPLETED`. While the "
                    "job waits at the checkpoint that reviews this agent, a changed output goes under review (the "
                    "checkpoint is announced again with its sha256, and an approval naming the old one is "
                    "`stale_review`); on a job that ended, the rerun is evidence only. 409: `agent_not_in_pipeline`, "
                    "`agent_not_run`, `step_in_progress`, `job_in_error`, `rerun_pending`; 400: `reason_required`, "
                    "`invalid_agent_id`, `unknown_prompt_version`.",
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        body = read_body(request, http.RerunInput)
        row = reruns.request_rerun(job_id=job_id, actor=Actor.user(request.user), agent_id=body.get("agent_id"),
                                   reason=body.get("reason"), prompt_version=body.get("prompt_version"))
        return Response(selectors.event_view(row), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="jobs_spawn", summary="Spawn one child blueprint job of a job, within its root's budget",
        tags=["operate"], parameters=[JOB_ID], request=http.SpawnInput,
        responses={**SUBMITTED, 409: OpenApiResponse(
            s.BudgetExhaustedResponse,
            description="`budget_exhausted` (with `reason`, `limit`, `counters`), or `not_spawnable`: the job has "
                        "not ended done or stopped_budget")},
        description="The child's spec carries `extensions.lineage` (root, parent, generation = the parent's + 1); "
                    "the budget of the parent's policy bundle applies as in the spawn step. The first refusal of "
                    "a limit appends `STOPPED_BUDGET` (`manual: true`) to the parent's log; later ones write "
                    "nothing.",
    )
    @action(detail=True, methods=["post"])
    def spawn(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, http.NoQuery)
        body = read_body(request, http.SpawnInput)
        job, created = spawning.spawn_child(job_id=job_id, blueprint=body["blueprint"],
                                            actor=Actor.user(request.user))
        return _submitted(job, created)
