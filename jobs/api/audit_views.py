"""`GET /audit/reads`: the access log of artifact reads (jobs.access), for operators; its query and answer."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from contracts import CONTENT_ID
from jobs import access
from jobs.models import ArtifactRead

from .http import PageQuery, StrictCharField, StrictRegexField, read_query
from .schema import READS, error_responses


class ReadLogPermission(BasePermission):
    message = "you need the permission jobs.operate_job (the operators group) or jobs.view_artifactread"
    code = "permission_denied"

    def has_permission(self, request, view):
        return access.may_read_log(request.user)


class ReadLogQuery(PageQuery):
    job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    who = StrictCharField(required=False, max_length=150, help_text='a username, or "anonymous"')
    since = serializers.DateTimeField(required=False, help_text="reads at or after this moment (ISO 8601)")


class ArtifactReadItem(serializers.Serializer):
    id = serializers.IntegerField()
    who = serializers.CharField(help_text='username, or "anonymous"')
    job_id = serializers.CharField()
    path = serializers.CharField(help_text="as requested: /jobs/{job_id}/artifacts/{path}")
    storage_path = serializers.CharField()
    sha256 = serializers.CharField(help_text="of the bytes served")
    bytes = serializers.IntegerField()
    at = serializers.DateTimeField()
    request_id = serializers.CharField()
    via = serializers.ChoiceField(choices=ArtifactRead.Via.values)


class ArtifactReadPage(serializers.Serializer):
    results = ArtifactReadItem(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ReadLogApi(APIView):
    permission_classes = [ReadLogPermission]

    @extend_schema(
        operation_id="audit_reads", summary="Artifact reads, oldest first: who was served which file, when",
        tags=["operate"], parameters=[ReadLogQuery], responses={200: ArtifactReadPage, **error_responses(*READS)},
    )
    def get(self, request):
        query = read_query(request, ReadLogQuery)
        cursor, limit = query.pop("cursor", None), query.pop("limit")
        page = access.list_reads(filters=access.ReadFilters(**query), cursor=cursor, limit=limit)
        return Response({"results": page.results, "next_cursor": page.next_cursor})
