"""Contracts: every schema is a valid Draft 2020-12 schema, `validate` reports JSON pointers, and the
canonical JSON / content id are stable."""
import copy
import hashlib
import math
import re

import pytest
from jsonschema import Draft202012Validator

from contracts import canonical_json, content_id, load_schema, schema_names, sha256_hex, validate

from ..builders import BARE, a_blueprint, a_job_spec, an_idea

EXPECTED_CONTRACTS = {
    "blueprint_v1", "idea_spec_v1", "job_event_v1", "job_event_v2", "job_spec_v1", "policy_bundle_v1",
}


# One valid document of each kind, for the tests to break.
SMA_ON_SPY = {"base": BARE, "name": "SMA 10/50 on SPY", "evaluation": {"protocol": "walk_forward", "test_months": 12}}
DOCUMENTS = {
    "blueprint_v1": lambda: a_blueprint(**SMA_ON_SPY),
    "job_spec_v1": lambda: a_job_spec(a_blueprint(**SMA_ON_SPY)),
    "idea_spec_v1": an_idea,
}


def paths(errors: list[dict]) -> list[str]:
    return [e["path"] for e in errors]


# --- the schemas themselves -------------------------------------------------------------------------


def test_every_expected_contract_is_present():
    assert EXPECTED_CONTRACTS <= set(schema_names())


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_is_a_valid_draft_2020_12_schema(name):
    # given the schema file of a contract
    schema = load_schema(name)

    # when it is checked against the metaschema, then it passes and names itself
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == name


def test_an_unknown_contract_is_a_key_error():
    with pytest.raises(KeyError):
        load_schema("no_such_contract_v1")


# --- validate: valid documents and JSON pointers ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_a_valid_document_has_no_errors(name):
    assert validate(name, DOCUMENTS[name]()) == []


@pytest.mark.parametrize(
    "name, remove, pointer",
    [
        ("blueprint_v1", ["strategy"], "/strategy"),
        ("blueprint_v1", ["strategy", "params"], "/strategy/params"),
        ("blueprint_v1", ["universe", "symbols"], "/universe/symbols"),
        ("job_spec_v1", ["kind"], "/kind"),
        ("job_spec_v1", ["snapshot_id"], "/snapshot_id"),
        ("idea_spec_v1", ["hypothesis"], "/hypothesis"),
        ("idea_spec_v1", ["universe", "symbols"], "/universe/symbols"),
    ],
)
def test_a_missing_member_is_reported_at_its_own_pointer(name, remove, pointer):
    # given a valid document without one required member
    doc = DOCUMENTS[name]()
    parent = doc
    for key in remove[:-1]:
        parent = parent[key]
    del parent[remove[-1]]

    # when it is validated
    errors = validate(name, doc)

    # then the error points at the missing member, not at its parent
    assert paths(errors) == [pointer]
    assert "required" in errors[0]["message"]


@pytest.mark.parametrize(
    "name, path, value, pointer",
    [
        ("blueprint_v1", ["strategy", "params", "fast"], "ten", "/strategy/params/fast"),
        ("blueprint_v1", ["universe", "symbols"], "SPY", "/universe/symbols"),
        ("blueprint_v1", ["evaluation", "test_months"], 1.5, "/evaluation/test_months"),
        ("job_spec_v1", ["snapshot_id"], 42, "/snapshot_id"),
        ("job_spec_v1", ["blueprint"], ["not", "an", "object"], "/blueprint"),
        ("idea_spec_v1", ["title"], 3, "/title"),
        ("idea_spec_v1", ["universe", "symbols"], [1], "/universe/symbols/0"),
    ],
)
def test_a_member_of_the_wrong_type_is_reported_at_its_pointer(name, path, value, pointer):
    doc = DOCUMENTS[name]()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value

    errors = validate(name, doc)

    assert paths(errors) == [pointer]


@pytest.mark.parametrize(
    "name, path, pointer",
    [
        ("blueprint_v1", ["colour"], "/colour"),
        ("blueprint_v1", ["strategy", "params", "medium"], "/strategy/params/medium"),
        ("blueprint_v1", ["universe", "exchange"], "/universe/exchange"),
        ("job_spec_v1", ["priority"], "/priority"),
        ("idea_spec_v1", ["budget"], "/budget"),
        ("idea_spec_v1", ["universe", "weights"], "/universe/weights"),
    ],
)
def test_an_unknown_member_is_reported_at_its_own_pointer(name, path, pointer):
    doc = DOCUMENTS[name]()
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = "surprise"

    errors = validate(name, doc)

    assert paths(errors) == [pointer]


@pytest.mark.parametrize("member, pointer", [("a/b", "/a~1b"), ("c~d", "/c~0d"), ("~/", "/~0~1")])
def test_pointer_segments_are_escaped_as_rfc_6901_says(member, pointer):
    # given an unknown member whose name contains "/" or "~"
    doc = DOCUMENTS["blueprint_v1"]()
    doc[member] = 1

    # then "/" becomes "~1" and "~" becomes "~0"
    assert paths(validate("blueprint_v1", doc)) == [pointer]


def test_every_unknown_member_is_reported_at_its_own_pointer():
    # given two unknown members in one object (jsonschema reports them in a single error)
    doc = DOCUMENTS["blueprint_v1"]()
    doc["colour"] = "red"
    doc["size"] = 3

    # when it is validated
    errors = validate("blueprint_v1", doc)

    # then each is named by its own pointer, so that a client can mark both fields
    assert sorted(paths(errors)) == ["/colour", "/size"]


def test_an_unknown_member_with_a_quote_in_its_name_is_reported_at_its_pointer():
    # given an unknown member named it's (jsonschema then quotes it with double quotes)
    doc = DOCUMENTS["blueprint_v1"]()
    doc["it's"] = 1

    # then the pointer is still that member
    assert paths(validate("blueprint_v1", doc)) == ["/it's"]


def test_errors_are_sorted_by_path_and_complete():
    # given a document with several faults
    doc = DOCUMENTS["blueprint_v1"]()
    del doc["universe"]
    doc["strategy"]["params"]["fast"] = "ten"
    doc["zzz"] = True
    doc["evaluation"]["protocol"] = "in_sample"

    errors = validate("blueprint_v1", doc)

    assert paths(errors) == ["/evaluation/protocol", "/strategy/params/fast", "/universe", "/zzz"]
    assert validate("blueprint_v1", copy.deepcopy(doc)) == errors


def test_the_params_of_a_family_are_checked_against_that_family():
    doc = DOCUMENTS["blueprint_v1"]()
    doc["strategy"] = {"family": "buy_and_hold", "params": {"fast": 10}}
    assert paths(validate("blueprint_v1", doc)) == ["/strategy/params/fast"]


def test_a_date_with_the_right_shape_but_impossible_value_is_refused():
    # the format checker is on: 2021-02-30 matches the pattern but is not a date
    doc = DOCUMENTS["blueprint_v1"]()
    doc["period"] = {"start": "2021-02-30"}
    assert paths(validate("blueprint_v1", doc)) == ["/period/start"]


def test_a_job_spec_holds_exactly_the_member_of_its_kind():
    doc = DOCUMENTS["job_spec_v1"]()
    doc["idea"] = an_idea()
    assert validate("job_spec_v1", doc) != []
    del doc["blueprint"]
    assert validate("job_spec_v1", doc) != []  # kind blueprint without a blueprint
    doc["kind"] = "idea"
    assert validate("job_spec_v1", doc) == []


# --- canonical JSON, hashing and content ids --------------------------------------------------------


def test_canonical_json_is_independent_of_key_order():
    # given the same document built in two key orders
    one = {"b": 1, "a": {"d": [1, 2, {"y": 1, "x": 2}], "c": "é"}}
    two = {"a": {"c": "é", "d": [1, 2, {"x": 2, "y": 1}]}, "b": 1}

    # then both have the one byte form: sorted keys, no spaces, UTF-8 (not \\u escapes)
    assert canonical_json(one) == canonical_json(two)
    assert canonical_json(one) == '{"a":{"c":"é","d":[1,2,{"x":2,"y":1}]},"b":1}'.encode("utf-8")


def test_canonical_json_keeps_list_order():
    assert canonical_json([2, 1]) != canonical_json([1, 2])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_nan_and_infinity(bad):
    with pytest.raises(ValueError):
        canonical_json({"sharpe": bad})


def test_content_id_is_the_first_12_hex_of_the_sha256_of_the_canonical_json():
    doc = DOCUMENTS["job_spec_v1"]()
    cid = content_id(doc)
    assert re.fullmatch(r"[0-9a-f]{12}", cid)
    assert cid == hashlib.sha256(canonical_json(doc)).hexdigest()[:12]
    assert cid == sha256_hex(canonical_json(doc))[:12]


def test_content_id_depends_on_content_not_on_key_order():
    doc = DOCUMENTS["job_spec_v1"]()
    reordered = dict(reversed(list(doc.items())))
    changed = DOCUMENTS["job_spec_v1"]()
    changed["blueprint"]["strategy"]["params"]["fast"] = 11

    assert content_id(reordered) == content_id(doc)
    assert content_id(changed) != content_id(doc)


def test_sha256_hex_accepts_text_and_bytes_alike():
    assert sha256_hex("abc") == sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
