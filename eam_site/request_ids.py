"""Request ids: every request gets one (the caller's X-Request-ID when it is a sane token, else a new one), bound
in the logging context while it is served (events appended meanwhile record it), returned in the response's
X-Request-ID, and logged with the request's outcome in one line."""
import re
import time
import uuid

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.functional import LazyObject, empty
from structlog.contextvars import bound_contextvars

HEADER = "X-Request-ID"
# A caller's id is kept only if it cannot forge a log line or bloat one: a short token of safe characters.
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

log = structlog.get_logger("eam_site.requests")


def request_id_of(request) -> str:
    given = request.headers.get(HEADER, "")
    return given if SANE_ID.fullmatch(given) else uuid.uuid4().hex


def _username(request) -> str | None:
    user = getattr(request, "user", None)
    if user is None or (isinstance(user, LazyObject) and user._wrapped is empty):
        return None  # never looked at while serving: resolving it now would cost a query the request did not need
    return user.get_username() if user.is_authenticated else None


class RequestIdMiddleware:
    """First in MIDDLEWARE, so that every answer carries the id: errors raised below it reach it as responses."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        request_id, started = request_id_of(request), time.monotonic()
        with bound_contextvars(request_id=request_id):
            return self._answered(request, self.get_response(request), request_id, started)

    async def __acall__(self, request):
        request_id, started = request_id_of(request), time.monotonic()
        with bound_contextvars(request_id=request_id):
            return self._answered(request, await self.get_response(request), request_id, started)

    def _answered(self, request, response, request_id: str, started: float):
        response[HEADER] = request_id
        # For a stream, the time until its headers are ready.
        log.info("request", method=request.method, path=request.path, status=response.status_code,
                 duration_ms=round((time.monotonic() - started) * 1000, 1), user=_username(request))
        return response
