"""JSON in, JSON out: a strict JSON parser and a content negotiation that never refuses to answer.

The parser accepts only what the event store can hash and every database can store: no NaN or infinite
numbers, no duplicate keys, no NUL or lone surrogate characters, at most MAX_DEPTH levels of nesting.
"""
import json
import math

from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser

MAX_DEPTH = 64


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

    def select_renderer(self, request, renderers, format_suffix=None):
        if len(renderers) == 1:
            return renderers[0], renderers[0].media_type  # JSON whatever Accept says: no header to parse
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
