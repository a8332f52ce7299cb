"""Read-only views of research results and reference data: runs, the registry, snapshots, policies, health."""
from django.db import DatabaseError, connection
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors
from jobs.errors import InvalidInput
from research import runs

from . import serializers as s
from . import http
from .http import JobPermission, read_query
from .schema import READS, RUN_ID, error_responses


RUN_OR_SEGMENT = PolymorphicProxySerializer(
    component_name="RunOrSegment", serializers=[s.RunDetail, s.RunSegment], resource_type_field_name=None
)


class RunApi(APIView):
    permission_classes = [JobPermission]

    @extend_schema(
        operation_id="runs_read", tags=["research"], parameters=[RUN_ID, http.RunQuery],
        summary="A run's metrics by segment; with ?segment= one segment's metrics, curve and trades "
                "(a holdout segment: metrics only, its curve or trades are 404 holdout_hidden)",
        responses={200: OpenApiResponse(RUN_OR_SEGMENT, description="the run, or one segment with ?segment="),
                   **error_responses(*READS)},
    )
    def get(self, request, run_id):
        query = read_query(request, http.RunQuery)
        segment = query.get("segment")
        if segment is None:
            if query["part"] != "all":
                raise InvalidInput("part needs a segment", code="invalid_query",
                                   errors=[{"path": "/part", "message": "only with segment"}])
            return Response(runs.run_detail(run_id=run_id))
        return Response(runs.run_segment(run_id=run_id, segment_id=segment, part=query["part"]))


class RegistryApi(APIView):
    permission_classes = [JobPermission]

    @extend_schema(
        operation_id="registry_list", summary="Trials recorded in the registry, oldest first", tags=["research"],
        parameters=[http.RegistryQuery], responses={200: s.RegistryPage, **error_responses(*READS)},
    )
    def get(self, request):
        query = read_query(request, http.RegistryQuery)
        page = selectors.list_registry(**query)
        return Response({"results": page.results, "next_cursor": page.next_cursor})


class SnapshotListApi(APIView):
    permission_classes = [JobPermission]

    @extend_schema(
        operation_id="snapshots_list", summary="Data snapshots", tags=["research"],
        responses={200: s.SnapshotList, **error_responses(*READS)},
    )
    def get(self, request):
        read_query(request, http.NoQuery)
        return Response({"results": selectors.list_snapshots()})


class PolicyListApi(APIView):
    permission_classes = [JobPermission]

    @extend_schema(
        operation_id="policies_list", summary="Policy bundles with their sha256", tags=["research"],
        responses={200: s.PolicyList, **error_responses(*READS)},
    )
    def get(self, request):
        read_query(request, http.NoQuery)
        return Response({"results": selectors.list_policies()})


class HealthApi(APIView):
    """For load balancers and probes: no authentication, one query."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="healthz", summary="Whether the service can reach its database", tags=["service"],
        responses={200: s.Health, 503: s.Health},
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            return Response({"status": "unavailable", "detail": f"database: {exc.__class__.__name__}"}, status=503)
        return Response({"status": "ok"})
