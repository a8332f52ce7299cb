"""The compiled validator only ever says "valid" quickly: it must never pass a document the reference refuses.

Corpus: every document a real blueprint job validates on its way to DONE (specs, runspec, dossier, gate
results, policy bundle, each event), each mutated leaf by leaf and member by member.
"""
import copy

import pytest

import contracts
from contracts import _fast_check, _quickly_valid, validate, validate_event
from workflow.orchestrator import run_pass

from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_snapshot, approve_waiting, submitted
from ..workflow.test_pipeline import worker

EDGE_VALUES = [
    None, True, False, 0, -1, 1, 1.5, -0.0, 10**20, "", " ", "x", "x\n", "١٢", "２０２４-０１-０１", "2024-02-30",
    "2024-02-29", "2023-02-29", "../x", "a" * 64, "A" * 64, "0123456789ab\n", [], [1], {}, {"x": 1},
]


def _leaves(doc, path=()):
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _leaves(value, (*path, index))


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _mutants(doc):
    for path in _leaves(doc):
        if not path:
            continue
        parent_path, last = path[:-1], path[-1]
        original = _get(doc, path)
        values = list(EDGE_VALUES)
        if isinstance(original, str):
            values += [original + "\n", original + " ", original.upper(), original[:-1]]
        if isinstance(original, (int, float)) and not isinstance(original, bool):
            values += [original + 1, original - 1, -original, original * 1000, float(original)]
        for value in values:
            mutant = copy.deepcopy(doc)
            _get(mutant, parent_path)[last] = value
            yield mutant
        mutant = copy.deepcopy(doc)
        parent = _get(mutant, parent_path)
        if isinstance(parent, dict):
            del parent[last]
            yield mutant
            mutant = copy.deepcopy(doc)
            _get(mutant, parent_path)["unexpected_member"] = 1
            yield mutant
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
            yield mutant


@pytest.fixture
def validated_documents(db, monkeypatch):
    """Every (contract, event type, document) validated while a blueprint job runs to DONE."""
    seen = []
    real_validate, real_validate_event = contracts.validate, contracts.validate_event

    def recording_validate(name, doc):
        seen.append((name, None, copy.deepcopy(doc)))
        return real_validate(name, doc)

    def recording_validate_event(name, doc):
        seen.append((name, doc.get("event_type"), copy.deepcopy(doc)))
        return real_validate_event(name, doc)

    import jobs.events
    monkeypatch.setattr(contracts, "validate", recording_validate)
    monkeypatch.setattr(jobs.events, "validate_event", recording_validate_event)
    for module in ("jobs.services", "research.compiler", "research.dossier", "research.gates",
                   "research.policies", "research.registry"):
        imported = __import__(module, fromlist=["_"])
        if getattr(imported, "validate", None) is real_validate:
            monkeypatch.setattr(imported, "validate", recording_validate)
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    run_pass(worker())
    approve_waiting([job.job_id])
    run_pass(worker())
    return seen


@pytest.mark.django_db
def test_the_compiled_check_is_never_more_lenient_than_the_reference(validated_documents):
    # given every document a real job validated, and their mutants
    names = {name for name, _, _ in validated_documents}
    assert {"job_spec_v1", "runspec_v1", "dossier_v1", "gate_results_v1", "job_event_v2"} <= names
    checked = refused = 0
    for name, event_type, doc in validated_documents:
        reference = (lambda d: validate_event(name, d)) if event_type else (lambda d: validate(name, d))
        fast = _fast_check(name, event_type) if event_type else _fast_check(name)
        # then the originals are valid for both
        assert _quickly_valid(fast, doc) and reference(doc) == []
        for mutant in _mutants(doc):
            checked += 1
            if not _quickly_valid(fast, mutant):
                refused += 1
                continue
            # when the compiled check passes a mutant, then the reference passes it too
            reference_errors = contracts._errors(
                contracts._event_validator(name, event_type) if event_type else contracts._validator(name), mutant
            )
            assert reference_errors == [], (name, event_type, mutant)
    # the mutations are not all harmless: most of them are refused
    assert checked > 1000 and refused > checked / 2


def test_a_document_the_compiled_check_cannot_read_goes_to_the_reference():
    bad = {"schema_version": "blueprint_v1", "name": float("nan")}
    assert not _quickly_valid(_fast_check("blueprint_v1"), bad)
    assert any(e["message"] == "not a finite number" for e in validate("blueprint_v1", bad))
