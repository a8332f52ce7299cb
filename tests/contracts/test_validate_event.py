"""validate_event checks only the rules of the event's own type, and reports exactly what validate reports."""
import pytest

from contracts import validate, validate_event

BASE = {
    "schema_version": "job_event_v2", "job_id": "0123456789ab", "seq": 2, "step": "compile",
    "actor": {"kind": "worker", "id": "w1"}, "recorded_at": "2026-01-01T00:00:00.000000Z", "prev_hash": "0" * 64,
}
CASES = [
    {**BASE, "event_type": "STEP_STARTED", "payload": {"attempt": 1, "worker": "w1",
                                                       "lease_expires_at": "2026-01-01T00:05:00.000000Z"}},
    {**BASE, "event_type": "STEP_STARTED", "payload": {"attempt": 0, "worker": "w1", "lease_expires_at": "soon"}},
    {**BASE, "event_type": "RUNSPEC_COMPILED", "payload": {"artifacts": [{"path": "x", "sha256": "a" * 64}]}},
    {**BASE, "event_type": "REJECTED", "step": "runspec", "payload": {"reason": "  "}},
    {**BASE, "event_type": "STOPPED_BUDGET", "step": "spawn", "payload": {"reason": "max", "limit": {}, "counters": {}}},
    {**BASE, "event_type": "NOT_A_TYPE", "payload": {}},
    {**BASE, "event_type": "DONE", "step": None, "payload": {}, "extra": 1},
    "not an object",
]


@pytest.mark.parametrize("event", CASES)
def test_validate_event_reports_what_the_full_contract_reports(event):
    assert validate_event("job_event_v2", event) == validate("job_event_v2", event)


def test_the_invalid_cases_are_invalid():
    assert validate_event("job_event_v2", CASES[0]) == []
    assert all(validate_event("job_event_v2", e) for e in CASES[1:4] + CASES[5:])
