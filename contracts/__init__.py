"""Contracts: JSON Schemas of every document EAM reads or writes, canonical JSON and hashing.

This package imports nothing of the project's; everything else builds on it.
"""
import hashlib
import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import jsonschema_rs

SCHEMA_DIR = Path(__file__).resolve().parent
# Allowlists of the ids that reach a URL or a path (DESIGN §4.1), checked before any lookup or path is built
# from one. Job and run ids are content ids (`content_id`); snapshot, policy bundle and agent ids are names.
CONTENT_ID = re.compile(r"^[0-9a-f]{12}$")
NAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def canonical_json(doc) -> bytes:
    """The one byte form of a JSON document: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def iso(moment: datetime | None) -> str | None:
    """A moment as every answer shows it: ISO 8601, UTC written as Z."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def content_id(doc) -> str:
    """Content address of a document: first 12 hex of the sha256 of its canonical JSON."""
    return sha256_hex(canonical_json(doc))[:12]


def schema_names() -> list[str]:
    """Names of the contracts, e.g. `job_spec_v1` for `job_spec_schema_v1.json`."""
    return sorted(_name_of(p) for p in SCHEMA_DIR.glob("*_schema_v*.json"))


def _name_of(path: Path) -> str:
    stem = path.stem  # e.g. job_spec_schema_v1
    base, version = stem.rsplit("_schema_", 1)
    return f"{base}_{version}"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    base, version = name.rsplit("_", 1)
    path = SCHEMA_DIR / f"{base}_schema_{version}.json"
    if not path.is_file():
        raise KeyError(f"unknown contract {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))


def _reference_validator(schema: dict):
    # Imported on first use: valid documents never need it, and it is slow to import.
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(schema, format_checker=FormatChecker())


@lru_cache(maxsize=None)
def _validator(name: str):
    return _reference_validator(load_schema(name))


@lru_cache(maxsize=None)
def _fast_check(name: str, event_type: str | None = None):
    """A compiled validator of the same schema, used only to say "valid" quickly.

    Documents it does not pass (or cannot read: tuples, NaN) go to the reference validator, which alone
    decides and words the errors; so a difference between the two can only cost time, never let a
    document through that the reference refuses, as long as this one is no more lenient (a test checks).
    """
    schema = _event_schema(name, event_type) if event_type else load_schema(name)
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def _quickly_valid(check, doc) -> bool:
    try:
        return check.is_valid(doc)
    except (ValueError, TypeError, OverflowError):
        return False


def json_pointer(parts) -> str:
    """The JSON pointer (RFC 6901) of the member at `parts` (keys and indexes): the one form of every error path."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validate(name: str, doc) -> list[dict]:
    """Errors of `doc` against contract `name` as `[{"path": json-pointer, "message": str}]`; empty if valid.

    Errors are sorted by path so that the same document always reports the same list.
    """
    if _quickly_valid(_fast_check(name), doc):
        return []
    return _errors(_validator(name), doc)


@lru_cache(maxsize=None)
def _event_schema(name: str, event_type: str) -> dict:
    """The event contract narrowed to one event type: only the rule whose `if` names that type remains."""
    schema = dict(load_schema(name))
    rules = [rule["then"] for rule in schema.pop("allOf", []) if event_type in _rule_types(rule)]
    if rules:
        schema["allOf"] = rules
    return schema


@lru_cache(maxsize=None)
def _event_validator(name: str, event_type: str):
    return _reference_validator(_event_schema(name, event_type))


def _rule_types(rule: dict) -> set:
    condition = rule["if"]["properties"]["event_type"]
    return {condition["const"]} if "const" in condition else set(condition["enum"])


def validate_event(name: str, doc) -> list[dict]:
    """Same errors as `validate(name, doc)` for a job event, checking only the rules of its own type."""
    event_type = doc.get("event_type") if isinstance(doc, dict) else None
    if not isinstance(event_type, str) or event_type not in load_schema(name)["properties"]["event_type"]["enum"]:
        return validate(name, doc)
    if _quickly_valid(_fast_check(name, event_type), doc):
        return []
    return _errors(_event_validator(name, event_type), doc)


def _errors(validator, doc) -> list[dict]:
    errors = []
    for error in validator.iter_errors(doc):
        path = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # One error per missing member, pointing at the member itself.
            for member in error.validator_value:
                if member not in error.instance:
                    errors.append({"path": json_pointer(path + [member]), "message": f"{member!r} is a required property"})
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for member in sorted(set(error.instance) - known):
                errors.append({"path": json_pointer(path + [member]), "message": f"unknown member {member!r}"})
            continue
        errors.append({"path": json_pointer(path), "message": error.message})
    errors += [{"path": json_pointer(p), "message": "not a finite number"} for p in _non_finite(doc, [])]
    return sorted(errors, key=lambda e: (e["path"], e["message"]))


def _non_finite(doc, path):
    """Paths of NaN and infinite numbers, which JSON cannot carry and canonical_json refuses."""
    if isinstance(doc, float) and (doc != doc or doc in (float("inf"), float("-inf"))):
        yield path
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield from _non_finite(value, path + [key])
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _non_finite(value, path + [index])
