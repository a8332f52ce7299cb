"""Events another EAM database recorded (an audit bundle's lines, jobs/jobstore_import.py), checked and turned into
rows that `events.append_events(verbatim=…)` and `events.create_job(verbatim=…)` insert through the one append
statement: the same contract, chain and transition checks as an event built here, and a signature by a key this
service knows instead of a new one."""
from contracts import validate_event

from . import signing
from .errors import InvalidInput
from .events import chain_hash, event_row, fold
from .state import DerivedState, format_time, parse_time

VERBATIM_DOCUMENT = ("schema_version", "job_id", "seq", "event_type", "step", "actor", "payload", "recorded_at",
                     "prev_hash")  # the members of `event_document`


def verbatim_rows(job_id: str, state: DerivedState, lines: list[dict]):
    """Rows of events another EAM database recorded (an audit bundle's lines), inserted as they are: each checked as
    `_build_rows` checks its own (contract, chain, transition) and signed by a key this service knows."""
    rows, keys = [], signing.keyring(signing=False)
    for line in lines:
        doc = {name: line.get(name) for name in VERBATIM_DOCUMENT}
        seq = state.last_seq + 1
        if doc["job_id"] != job_id or doc["seq"] != seq or doc["prev_hash"] != state.last_hash:
            raise InvalidInput(f"event seq {doc['seq']!r} does not follow seq {state.last_seq} of job {job_id}",
                               code="invalid_event")
        try:  # stored as a timestamp, so only the one text form of one comes back as the same bytes
            moment = parse_time(doc["recorded_at"])
        except (TypeError, ValueError):
            moment = None
        if moment is None or format_time(moment) != doc["recorded_at"]:
            raise InvalidInput(f"event seq {seq} of job {job_id}: recorded_at {doc['recorded_at']!r} is not a time "
                               "in the form the service writes", code="invalid_event")
        errors = validate_event(str(doc["schema_version"]), doc)
        if errors:
            problem = f"breaks {doc['schema_version']}: {errors[0]['path']} {errors[0]['message']}"
        elif chain_hash(doc["prev_hash"], doc) != line.get("hash"):
            problem = "its hash is not the hash of its content"
        else:
            problem = keys.problem(signing.EVENT_CONTEXT, line["hash"].encode(), line.get("key_id"),
                                   line.get("signature"))
        if problem:
            raise InvalidInput(f"event seq {seq} of job {job_id} cannot be inserted as it is: {problem}",
                               code="invalid_event", errors=errors)
        state = fold(state, doc, line["hash"])
        rows.append(event_row(doc, moment, line["hash"], line["key_id"], line["signature"]))
    return rows, state
