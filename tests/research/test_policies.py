"""Policy bundles: loaded by a checked id, validated, hashed by their canonical JSON, listed."""
import json

import pytest

from contracts import canonical_json, sha256_hex
from research.errors import PolicyError
from research.policies import TRIALS_DEFAULTS, list_policy_bundles, load_policy_bundle, trials_policy


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


# The sha256 every job compiled with default_v1 names in its runspec: the file must never change.
DEFAULT_V1_SHA256 = "e6722157bcd222bd0131699cd4cc38fd558c08dd2546c500cebb7a84e3968f62"


def test_the_shipped_bundles_count_trials_on_the_snapshot_and_v2_gates_the_pbo():
    v1, v1_sha256 = load_policy_bundle("default_v1")
    v2, _ = load_policy_bundle("default_v2")

    assert v1_sha256 == DEFAULT_V1_SHA256
    assert "trials" not in v1 and trials_policy(v1) == TRIALS_DEFAULTS
    assert trials_policy(v1)["scope"] == "snapshot"
    assert trials_policy(v2) == {"scope": "snapshot", "pbo": {"min_trials": 10, "partitions": 16},
                                 "min_track_record": {"confidence": 0.95},
                                 "bootstrap": {"samples": 2000, "confidence": 0.95, "seed": 0, "block_bars": 10}}
    pbo = next(g for g in v2["gates"] if g["gate_id"] == "pbo")
    assert (pbo["metric"], pbo["operator"], pbo["threshold"]) == ("trials.pbo", "<=", 0.5)


def test_a_trials_section_overrides_only_what_it_names(policy_root):
    doc = _bundle("lineage")
    doc["trials"] = {"scope": "lineage", "pbo": {"partitions": 8}, "bootstrap": {"seed": 7}}
    (policy_root / "lineage.json").write_text(json.dumps(doc))

    settings = trials_policy(load_policy_bundle("lineage")[0])

    assert settings["scope"] == "lineage"
    assert settings["pbo"] == {"min_trials": 10, "partitions": 8}
    assert settings["bootstrap"] == {**TRIALS_DEFAULTS["bootstrap"], "seed": 7}
    assert settings["min_track_record"] == TRIALS_DEFAULTS["min_track_record"]


@pytest.mark.parametrize("trials, path", [
    ({"scope": "universe"}, "/trials/scope"),
    ({"pbo": {"partitions": 7}}, "/trials/pbo/partitions"),
    ({"pbo": {"min_trials": 1}}, "/trials/pbo/min_trials"),
    ({"min_track_record": {"confidence": 1}}, "/trials/min_track_record/confidence"),
    ({"bootstrap": {"samples": 10}}, "/trials/bootstrap/samples"),
    ({"n": 3}, "/trials/n"),
])
def test_a_trials_section_that_breaks_the_contract_is_refused(policy_root, trials, path):
    doc = _bundle("odd")
    doc["trials"] = trials
    (policy_root / "odd.json").write_text(json.dumps(doc))

    with pytest.raises(PolicyError, match="does not validate against policy_bundle_v1") as caught:
        load_policy_bundle("odd")

    assert caught.value.code == "policy_error"
    assert [e["path"] for e in caught.value.errors] == [path]
