"""Policy bundles: loaded by a checked id, validated, hashed by their canonical JSON, listed."""
import json

import pytest

from contracts import canonical_json, sha256_hex
from research.errors import PolicyError
from research.policies import list_policy_bundles, load_policy_bundle


@pytest.fixture
def policy_root(tmp_path, settings):
    root = tmp_path / "policies"
    root.mkdir()
    settings.EAM_POLICY_ROOT = str(root)
    return root


def _bundle(bundle_id: str) -> dict:
    with open("policies/default_v1.json", encoding="utf-8") as handle:
        doc = json.load(handle)
    doc["policy_bundle_id"] = bundle_id
    return doc


def test_the_default_bundle_loads_with_the_sha256_of_its_canonical_json():
    doc, sha256 = load_policy_bundle("default_v1")

    assert doc["policy_bundle_id"] == "default_v1"
    assert sha256 == sha256_hex(canonical_json(doc))
    assert [g["gate_id"] for g in doc["gates"]][:2] == ["data_integrity", "min_trades"]


def test_each_caller_gets_its_own_copy_in_the_file_s_order(policy_root):
    doc = _bundle("tight")
    (policy_root / "tight.json").write_text(json.dumps(doc))
    first, _ = load_policy_bundle("tight")
    first["gates"].clear()
    first["policy_bundle_id"] = "changed"

    again, _ = load_policy_bundle("tight")

    assert again == doc
    assert list(again) == list(doc) and [g["gate_id"] for g in again["gates"]] == [g["gate_id"] for g in doc["gates"]]


def test_reformatting_a_bundle_does_not_change_its_sha256(policy_root):
    doc = _bundle("tight")
    (policy_root / "tight.json").write_text(json.dumps(doc))
    _, compact = load_policy_bundle("tight")
    (policy_root / "tight.json").write_text(json.dumps(doc, indent=4, sort_keys=True))

    assert load_policy_bundle("tight")[1] == compact


@pytest.mark.parametrize("bundle_id", ["", "../default_v1", "a/b", ".hidden", "x" * 65, None])
def test_an_invalid_id_is_refused_before_any_lookup(bundle_id):
    with pytest.raises(PolicyError, match="invalid policy bundle id"):
        load_policy_bundle(bundle_id)


def test_unknown_invalid_and_misnamed_bundles_are_refused(policy_root):
    (policy_root / "broken.json").write_text("{not json")
    invalid = _bundle("invalid")
    del invalid["gates"]
    (policy_root / "invalid.json").write_text(json.dumps(invalid))
    (policy_root / "misnamed.json").write_text(json.dumps(_bundle("other")))

    with pytest.raises(PolicyError, match="unknown policy bundle 'nope'"):
        load_policy_bundle("nope")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy_bundle("broken")
    with pytest.raises(PolicyError, match="does not validate against policy_bundle_v1") as caught:
        load_policy_bundle("invalid")
    assert caught.value.errors[0]["path"] == "/gates"
    with pytest.raises(PolicyError, match="names itself 'other'"):
        load_policy_bundle("misnamed")


def test_list_reports_every_bundle_and_why_one_is_unusable(policy_root):
    (policy_root / "good.json").write_text(json.dumps(_bundle("good")))
    (policy_root / "bad.json").write_text(json.dumps({"schema_version": "policy_bundle_v1"}))

    bundles = list_policy_bundles()

    assert [(b["policy_bundle_id"], b["valid"]) for b in bundles] == [("bad", False), ("good", True)]
    assert bundles[1]["sha256"] == load_policy_bundle("good")[1]
    assert "does not validate" in bundles[0]["error"]
