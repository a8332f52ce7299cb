"""The one place where errors become HTTP responses: `{"detail", "code"}` (+ `errors` with JSON pointers).

`exception_handler` is DRF's EXCEPTION_HANDLER; `not_found`, `bad_request` and `server_error` are the root
urlconf's handler404/400/500, so that a URL no view matches answers in the same shape. A database that cannot
be reached is a 503 `database_unavailable` with Retry-After, not a 500: from DRF views through the handler,
from the others (admin, /ui) through `http.DatabaseUnavailableMiddleware`. Django drops a broken connection when
the request ends, so the next request after the outage connects afresh.
"""
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf
from rest_framework.response import Response

from contracts import json_pointer
from jobs.errors import DATABASE_UNREACHABLE, DomainError, from_research
from research.errors import ResearchError

log = logging.getLogger(__name__)

# DRF exception class -> our stable code (checked in order: subclasses first).
DRF_CODES: tuple[tuple[type, str], ...] = (
    (drf.ParseError, "malformed_json"),
    (drf.UnsupportedMediaType, "unsupported_media_type"),
    (drf.NotAuthenticated, "not_authenticated"),
    (drf.AuthenticationFailed, "authentication_failed"),
    (drf.PermissionDenied, "permission_denied"),
    (drf.MethodNotAllowed, "method_not_allowed"),
    (drf.NotFound, "not_found"),
    (drf.NotAcceptable, "not_acceptable"),
    (drf.Throttled, "throttled"),
    (drf.ValidationError, "invalid_input"),
)


UNAVAILABLE_DETAIL = "the database cannot be reached just now; try again shortly"
UNAVAILABLE_HEADERS = {"Retry-After": "5"}  # seconds
UNAVAILABLE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Service unavailable</title></head>'
    "<body><h1>Service unavailable</h1><p>The database cannot be reached just now. Try again in a few seconds."
    "</p></body></html>"
)


class BodyTooLarge(drf.APIException):
    status_code = 413
    default_detail = "request body too large"
    default_code = "body_too_large"


def error_body(detail: str, code: str, errors: list[dict] | None = None) -> dict:
    body = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def pointer_errors(detail, parts=()) -> list[dict]:
    """DRF's nested validation detail as a flat list of `{path, message}` with JSON pointers."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            # DRF's name for errors of the object as a whole: they point at the object itself.
            here = parts if key in ("non_field_errors", "__all__") else (*parts, key)
            found += pointer_errors(value, here)
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"path": json_pointer(parts), "message": str(item)} for item in detail]
        found = []
        for index, item in enumerate(detail):
            found += pointer_errors(item, (*parts, index)) if isinstance(item, (dict, list)) else [
                {"path": json_pointer(parts), "message": str(item)}
            ]
        return found
    return [{"path": json_pointer(parts), "message": str(detail)}]


def _drf_response(exc: drf.APIException) -> Response:
    code = next((code for cls, code in DRF_CODES if isinstance(exc, cls)), None)
    if code is None:
        code = exc.default_code if isinstance(exc.default_code, str) else "error"
    if isinstance(exc, drf.ValidationError):
        errors = pointer_errors(exc.detail)
        detail = "invalid input: " + "; ".join(f"{e['path'] or '/'}: {e['message']}" for e in errors[:5])
        return Response(error_body(detail, getattr(exc, "eam_code", code), errors), status=exc.status_code)
    if isinstance(exc, drf.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
        code = "csrf_failed"
    code = getattr(exc, "eam_code", code)
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    return Response(error_body(str(exc.detail), code), status=exc.status_code, headers=headers)


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER. Returns None (a real 500, logged by Django) only for a bug of ours."""
    if isinstance(exc, DATABASE_UNREACHABLE):
        log.warning("database unavailable while serving %s: %s", context.get("request"), exc)
        return Response(error_body(UNAVAILABLE_DETAIL, "database_unavailable"), status=503,
                        headers=UNAVAILABLE_HEADERS)
    if isinstance(exc, ResearchError):
        domain = from_research(exc)
        if domain is None:
            log.error("research error while serving %s", context.get("request"), exc_info=exc)
            return Response(error_body("the server could not read this result", "internal_error"), status=500)
        exc = domain
    if isinstance(exc, DomainError):
        # A refusal may carry its evidence (budget_exhausted: reason, limit, counters) beside detail and code.
        evidence = getattr(exc, "evidence", None) or {}
        return Response({**error_body(exc.detail, exc.code, exc.errors), **evidence}, status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge()
    elif isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        return _drf_response(exc)
    return None


def _is_page(request) -> bool:
    # The admin and the /ui pages keep Django's HTML error pages; everything else is the JSON API.
    return request.path.startswith(("/admin/", "/ui/"))


def not_found(request, exception=None):
    if _is_page(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("no such resource", "not_found"), status=404)


def bad_request(request, exception=None):
    if _is_page(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("request body too large", "body_too_large"), status=413)
    return JsonResponse(error_body("bad request", "bad_request"), status=400)


def server_error(request):
    if _is_page(request):
        return defaults.server_error(request)
    return JsonResponse(error_body("internal server error", "internal_error"), status=500)


def database_unavailable(request, exception):
    """The answer to a view outside DRF (the admin, /ui, Django's own) that met an unreachable database: a plain
    page for the admin and /ui, the API's JSON error elsewhere."""
    log.warning("database unavailable while serving %s: %s", request.path, exception)
    if _is_page(request):
        return HttpResponse(UNAVAILABLE_PAGE, status=503, headers=UNAVAILABLE_HEADERS)
    return JsonResponse(error_body(UNAVAILABLE_DETAIL, "database_unavailable"), status=503,
                        headers=UNAVAILABLE_HEADERS)
