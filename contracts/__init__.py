"""Contracts: JSON Schemas of every document EAM reads or writes, canonical JSON and hashing.

This package imports nothing of the project's; everything else builds on it.
"""
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parent


def canonical_json(doc) -> bytes:
    """The one byte form of a JSON document: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


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


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=FormatChecker())


def _pointer(parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validate(name: str, doc) -> list[dict]:
    """Errors of `doc` against contract `name` as `[{"path": json-pointer, "message": str}]`; empty if valid.

    Errors are sorted by path so that the same document always reports the same list.
    """
    errors = []
    for error in _validator(name).iter_errors(doc):
        path = list(error.absolute_path)
        if error.validator == "required":
            # Point at the missing member itself, not at its parent.
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = path + [missing] if missing else path
        elif error.validator == "additionalProperties" and "'" in error.message:
            path = path + [error.message.split("'")[1]]
        errors.append({"path": _pointer(path), "message": error.message})
    return sorted(errors, key=lambda e: (e["path"], e["message"]))
