"""OpenAPI helpers: the error responses every operation documents and the contracts as request schemas."""
import copy
from functools import lru_cache

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import is_list_serializer
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from contracts import load_schema
from research.policies import list_policy_bundles
from contracts import CONTENT_ID

from .serializers import ErrorResponse

ERROR_MEANINGS = {
    400: "malformed JSON, invalid input (`errors` holds JSON pointers) or an unknown query parameter",
    401: "not authenticated",
    403: "not allowed (`permission_denied`, `four_eyes`, `csrf_failed`)",
    404: "unknown or malformed id, or nothing at that path",
    405: "method not allowed",
    409: "conflict with the job's state (`not_waiting`, `stale_review`, `not_in_error`, `job_ended`, `budget_exhausted`, ...)",
    411: "a chunked body on a server that cannot tell where it ends (`length_required`)",
    413: "request body larger than EAM_MAX_BODY_BYTES",
    415: "request body is not application/json",
    503: "the database cannot be reached just now (`database_unavailable`); try again after Retry-After seconds",
}
READS = (400, 401, 403, 404, 413, 503)
WRITES = (400, 401, 403, 404, 409, 411, 413, 415, 503)


def error_responses(*statuses: int) -> dict:
    return {status: OpenApiResponse(ErrorResponse, description=ERROR_MEANINGS[status]) for status in statuses}


JOB_ID = OpenApiParameter(
    "job_id", str, OpenApiParameter.PATH, pattern=CONTENT_ID.pattern,
    description="first 12 hex characters of the sha256 of the job spec",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, required=False,
    description="the ETag of an earlier answer: 304 with no body when the detail has not changed since",
)
RUN_ID = OpenApiParameter(
    "run_id", str, OpenApiParameter.PATH, pattern=CONTENT_ID.pattern,
    description="first 12 hex characters of the sha256 of the runspec",
)


def _inline_refs(node, defs):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]), defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k not in ("$schema", "$id", "$defs")}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


@lru_cache(maxsize=None)
def contract_schema(name: str) -> dict:
    """Contract `name` as an OpenAPI 3.1 schema: its local `$defs` inlined, so it stands anywhere."""
    schema = load_schema(name)
    inlined = _inline_refs(schema, schema.get("$defs", {}))
    inlined["description"] = f"{schema.get('title', name)} (contract {name})"
    if name == "job_spec_v1":  # its inputs are contracts of their own
        inlined["properties"]["blueprint"] = contract_schema("blueprint_v1")
        inlined["properties"]["idea"] = contract_schema("idea_spec_v1")
    return inlined


class PagedAutoSchema(AutoSchema):
    """Our `list` actions answer one page object (results + next_cursor), not a bare array."""

    def _is_list_view(self, serializer=None) -> bool:
        return is_list_serializer(serializer) if serializer is not None else False


def close_request_objects(result, generator, request, public):
    """Postprocessing hook: request bodies refuse members they do not declare, and a policy bundle id must
    name a bundle that exists (listed when the schema is generated), so the schema says both."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    bundles = sorted(b["policy_bundle_id"] for b in list_policy_bundles() if b["valid"])
    for item in result.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "policy_bundle_id":
                    parameter["schema"]["enum"] = bundles
            if operation.get("operationId", "").startswith("jobs_submit"):
                operation["requestBody"]["required"] = True
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "policy_bundle_id" in body.get("properties", {}):
                body["properties"]["policy_bundle_id"] = {**body["properties"]["policy_bundle_id"], "enum": bundles}
    return result
