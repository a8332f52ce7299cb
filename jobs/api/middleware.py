"""Request bodies larger than EAM_MAX_BODY_BYTES are refused with 413 before anyone reads them.

A declared Content-Length is checked up front. A body without one (chunked transfer encoding, which a
server decodes into `wsgi.input`) is read here up to the limit, so no view ever sees more; a server that
cannot tell where such a body ends (`wsgi.input_terminated` unset) gets 411, rather than the body being
silently dropped and the request acted on without it.
"""
import io

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse

from .exceptions import error_body


def _refuse(status: int, detail: str, code: str) -> JsonResponse:
    response = JsonResponse(error_body(detail, code), status=status)
    response["Connection"] = "close"  # the unread body must not be taken for the next request
    return response


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.EAM_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.strip():
            try:
                length = int(declared)
            except ValueError:
                return _refuse(400, "Content-Length is not a number", "invalid_content_length")
            if length < 0:
                return _refuse(400, "Content-Length is negative", "invalid_content_length")
            if length > limit:
                return _refuse(413, f"request body of {length} bytes exceeds the limit of {limit}", "body_too_large")
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            refused = self._read_chunked(request, limit)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def _read_chunked(request, limit: int):
        if hasattr(request, "scope"):
            stream = request._stream  # ASGI: the server has already delimited the body
        elif request.META.get("wsgi.input_terminated"):
            stream = request.META["wsgi.input"]
        else:
            return _refuse(411, "a request body needs a Content-Length", "length_required")
        body = stream.read(limit + 1)
        if len(body) > limit:
            return _refuse(413, f"request body exceeds the limit of {limit} bytes", "body_too_large")
        # From here on the request looks as if it had declared its length.
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))
        return None
