"""How the API reads a request, before any view runs its operation: the body size limit, strict JSON, a
content negotiation that never refuses to answer, who may call what, and validated query and body.

- Request bodies larger than EAM_MAX_BODY_BYTES are refused with 413 before anyone reads them. A declared
  Content-Length is checked up front; a body without one (chunked transfer encoding, which a server decodes
  into `wsgi.input`) is read here up to the limit, so no view ever sees more; a server that cannot tell
  where such a body ends (`wsgi.input_terminated` unset) gets 411.
- The parser accepts only what the event store can hash and every database can store: no NaN or infinite
  numbers, no duplicate keys, no NUL or lone surrogate characters, at most MAX_DEPTH levels of nesting.
- Query parameters and bodies are read by small strict serializers declared here, one per shape.
- Reads need a signed-in user (or EAM_PUBLIC_READ), writes a model permission: a view names the permission
  each of its actions requires in `required_permissions` (action -> perm); actions not named there are
  reads. Anonymous callers get 401, signed-in callers without the permission 403 `permission_denied`.
"""
import io
import json
import math
import re
from collections.abc import Mapping

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse
from django.utils.http import parse_etags, parse_header_parameters
from rest_framework import serializers
from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission

from contracts import CONTENT_ID, NAME_ID
from jobs.errors import DATABASE_UNREACHABLE, InvalidInput
from jobs.pipelines import CHECKPOINT_NAMES, Kind, Status
from research.strategies import FAMILIES

from .exceptions import database_unavailable, error_body, pointer_errors

MAX_DEPTH = 64


# -- the body size limit ---------------------------------------------------------------------------------------

def _refuse(status: int, detail: str, code: str) -> JsonResponse:
    # No `Connection: close`: WSGI forbids an application to send hop-by-hop headers (runserver answers a 500
    # for it). The server deals with the body left unread: runserver reads and drops it, gunicorn skips it.
    return JsonResponse(error_body(detail, code), status=status)


class DatabaseUnavailableMiddleware:
    """503, not 500, from a view outside DRF (DRF's own go through `exceptions.exception_handler`) that met an
    unreachable database; any other exception is left to Django."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return database_unavailable(request, exception) if isinstance(exception, DATABASE_UNREACHABLE) else None


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


# -- strict JSON -----------------------------------------------------------------------------------------------

class UnsupportedJson(ParseError):
    """Well-formed JSON that holds something EAM cannot store or hash."""

    eam_code = "unsupported_json"


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _unique_keys(pairs):
    document = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise UnsupportedJson("JSON strings may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedJson("JSON strings may not contain lone surrogate characters") from None


def check_document(document) -> None:
    """Walk the parsed document iteratively (no recursion), checking depth and strings."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise UnsupportedJson(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        else:
            pending.extend((item, depth + 1) for item in value)


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise ParseError(f"request body is not valid {encoding} text: {exc}") from None
        try:
            document = json.loads(
                text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
            )
        except RecursionError:
            raise UnsupportedJson(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ParseError(f"malformed JSON: {exc}") from None
        check_document(document)
        return document


class JsonFirstNegotiation(DefaultContentNegotiation):
    """Honour Accept where a view offers a choice; otherwise answer with the view's first renderer (JSON)
    instead of 406, so an odd Accept header never hides an error body or a result. A view with one renderer
    (every API view: JSON only) answers with it at once."""

    def select_parser(self, request, parsers):
        """JSON only, named exactly (`*/*` or `application/*` is not a JSON body) and in UTF-8 (or no charset):
        anything else is left to DRF's 415 `unsupported_media_type`."""
        media_type, options = parse_header_parameters(request.content_type or "")
        charset = options.get("charset", "utf-8").lower()
        if media_type.lower() != StrictJSONParser.media_type or charset not in ("utf-8", "utf8"):
            return None
        return next((parser for parser in parsers if parser.media_type == StrictJSONParser.media_type), None)

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type  # JSON whatever Accept says: no header to parse
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


# -- who may call what -----------------------------------------------------------------------------------------

def _action(view) -> str:
    return getattr(view, "action", None) or view.request.method.lower()


class JobPermission(BasePermission):
    message = "you do not have permission to do this"
    code = "permission_denied"

    def has_permission(self, request, view):
        required = getattr(view, "required_permissions", {}).get(_action(view))
        user = request.user
        if required is None:
            return settings.EAM_PUBLIC_READ or bool(user and user.is_authenticated)
        if not (user and user.is_authenticated):
            return False
        if user.has_perm(required):
            return True
        self.message = f"you need the permission {required} (see the groups submitters, reviewers, operators)"
        return False


# -- query and body: small strict input serializers, no logic ---------------------------------------------------
# Inputs reject unknown fields and values of the wrong type (DRF would turn 5 into "5").

SHA256_RE = r"^[0-9a-f]{64}$"
STATUS_CHOICES = [status.value for status in Status]
KIND_CHOICES = [kind.value for kind in Kind]
ACTOR_KINDS = ["user", "worker", "system"]
HEALTH_STATUSES = ["ok", "unavailable"]
CHECKPOINTS = sorted(CHECKPOINT_NAMES)
TEXT_LIMIT = 4000  # what the event contract allows for a comment or a reason


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """The whole value must match, as given: no blanks trimmed, and no trailing newline let through (which a
    pattern's `$` allows)."""

    def __init__(self, regex, **kwargs):
        super().__init__(regex, trim_whitespace=False, **kwargs)
        self.pattern = re.compile(regex) if isinstance(regex, str) else regex

    def to_internal_value(self, data):
        if not isinstance(data, str) or not self.pattern.fullmatch(data):
            self.fail("invalid")
        return data


class StrictInput(serializers.Serializer):
    """Refuses members it does not declare, so a misspelt field is an error rather than ignored."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


# -- bodies ------------------------------------------------------------------------------------------------

class ApproveInput(StrictInput):
    comment = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT, trim_whitespace=False)
    artifact_sha256 = StrictRegexField(SHA256_RE, required=False, allow_null=True)
    accept = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, max_length=100,
        help_text="improvements only: the proposal ids to spawn as child jobs (default: all of them)",
    )


class SpawnInput(StrictInput):
    blueprint = serializers.DictField(help_text="the child's blueprint (contract blueprint_v1)")


class RejectInput(StrictInput):
    # Optional here: the service refuses a missing or blank reason with its own code, `reason_required`.
    reason = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT)


class OperatorInput(StrictInput):
    reason = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT)


class RerunInput(StrictInput):
    # Optional here: the service refuses a missing agent or reason with its own codes.
    agent_id = StrictCharField(required=False, allow_blank=True, max_length=64,
                               help_text="the agent whose output to ask for again: intent, strategy_spec, report, "
                                         "improvements")
    reason = StrictCharField(required=False, allow_blank=True, max_length=TEXT_LIMIT, help_text="required")
    prompt_version = StrictCharField(required=False, max_length=64,
                                     help_text="default: the version the job pinned at submit")


# -- query parameters (all optional unless said; unknown ones are refused) -----------------------------------

class SubmitQuery(StrictInput):
    snapshot_id = StrictRegexField(NAME_ID.pattern, required=False, help_text="default: EAM_DEFAULT_SNAPSHOT_ID")
    policy_bundle_id = StrictRegexField(NAME_ID.pattern, required=False,
                                        help_text="default: EAM_DEFAULT_POLICY_BUNDLE_ID")


class NoQuery(StrictInput):
    pass


class StepQuery(StrictInput):
    step = serializers.ChoiceField(choices=CHECKPOINTS, help_text="the checkpoint the job waits at")


class PageQuery(StrictInput):
    cursor = StrictCharField(required=False, max_length=500, help_text="next_cursor of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=50)


class JobListQuery(PageQuery):
    status = serializers.ChoiceField(choices=STATUS_CHOICES, required=False)
    kind = serializers.ChoiceField(choices=KIND_CHOICES, required=False)
    waiting_step = serializers.ChoiceField(choices=CHECKPOINTS, required=False)
    root_job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    parent_job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    snapshot_id = StrictRegexField(NAME_ID.pattern, required=False)


class EventsQuery(StrictInput):
    after_seq = serializers.IntegerField(required=False, min_value=0, default=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=500)


class RegistryQuery(PageQuery):
    root_job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    run_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    family = serializers.ChoiceField(choices=sorted(FAMILIES), required=False)


class RunQuery(StrictInput):
    segment = StrictRegexField(NAME_ID.pattern, required=False, help_text="one segment: its metrics, curve, trades")
    part = serializers.ChoiceField(choices=["all", "metrics", "curve", "trades"], required=False, default="all",
                                   help_text="with segment: only this part (a holdout has metrics only)")



# A query parameter whose errors have a code of their own; any other is `invalid_query`.
QUERY_CODES = {"/step": "invalid_step"}


def read_query(request, serializer_class) -> dict:
    """The validated query parameters; unknown ones are refused like invalid ones."""
    if not request.META.get("QUERY_STRING") and not serializer_class._declared_fields:
        return {}  # nothing to check (a job's detail, read most often, takes no parameter)
    repeated = sorted(name for name, values in request.query_params.lists() if len(values) > 1)
    if repeated:
        errors = [{"path": f"/{name}", "message": "given more than once"} for name in repeated]
        raise InvalidInput(f"query parameters given more than once: {', '.join(repeated)}", code="invalid_query",
                           errors=errors)
    serializer = serializer_class(data=request.query_params.dict())
    if not serializer.is_valid():
        errors = pointer_errors(serializer.errors)
        summary = "; ".join(f"{e['path'].lstrip('/')}: {e['message']}" for e in errors[:5])
        first = errors[0]["path"]
        # A parameter's own code only where the operation takes that parameter; an unexpected one is a query error.
        code = QUERY_CODES.get(first, "invalid_query") if first[1:] in serializer_class._declared_fields else "invalid_query"
        raise InvalidInput(f"invalid query parameters: {summary}", code=code, errors=errors)
    return serializer.validated_data


def read_body(request, serializer_class) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def not_modified(request, etag: str) -> bool:
    """Whether If-None-Match names `etag` (compared weakly, RFC 9110 §13.1.2) or is "*"."""
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    tags = {tag.removeprefix("W/") for tag in parse_etags(header)}
    return etag in tags or "*" in tags
