"""Audit of the event log: recompute every hash chain and check every signature, find gaps, altered, forged
and removed rows, compare the log with the latest anchor, and find drift between the events and the JobState
projection."""
from dataclasses import dataclass

from contracts import canonical_json, content_id, sha256_hex, validate_event

from .anchors import Anchor, latest_anchor
from .events import chain_hash, document_of
from .models import JobEvent, JobSpec, JobState
from .signing import EVENT_CONTEXT, Keyring, keyring
from .state import ZERO_HASH, DerivedState, IllegalTransition, apply_event, initial_state, projection_fields


@dataclass(frozen=True)
class Finding:
    job_id: str | None  # None: a finding about an anchor, not a job
    seq: int | None
    problem: str

    def __str__(self):
        if self.job_id is None:
            return self.problem
        where = f"job {self.job_id}" + (f" seq {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.problem}"


def _events_by_job(job_ids):
    rows = JobEvent.objects.order_by("job_id", "seq")
    if job_ids is not None:
        rows = rows.filter(job_id__in=job_ids)
    current, batch = None, []
    for row in rows.iterator(chunk_size=2000):
        if row.job_id != current and batch:
            yield current, batch
            batch = []
        current = row.job_id
        batch.append(row)
    if batch:
        yield current, batch


def verify_chain(job_id: str, rows: list[JobEvent], state_row: JobState | None,
                 keys: Keyring | None = None) -> list[Finding]:
    """Findings for one job's events, in seq order; empty when the chain is intact and every event is signed
    by a known key."""
    keys = keys or keyring(signing=False)
    findings = []
    prev_hash = ZERO_HASH
    for expected_seq, row in enumerate(rows, start=1):
        if row.seq != expected_seq:
            findings.append(Finding(job_id, expected_seq, f"missing event (next stored seq is {row.seq})"))
            break
        if row.prev_hash != prev_hash:
            findings.append(Finding(job_id, row.seq, "prev_hash does not match the previous event (row removed or altered)"))
        document = document_of(row)
        if chain_hash(row.prev_hash, document) != row.hash:
            findings.append(Finding(job_id, row.seq, "hash does not match the row's content (row modified)"))
        unsigned = keys.problem(EVENT_CONTEXT, row.hash.encode(), row.key_id, row.signature)
        if unsigned:
            findings.append(Finding(job_id, row.seq, f"{row.event_type}: {unsigned}"))
        errors = validate_event(row.schema_version, document) if row.schema_version.startswith("job_event_v") else []
        if errors:
            findings.append(Finding(job_id, row.seq, f"breaks {row.schema_version}: {errors[0]['path']} {errors[0]['message']}"))
        prev_hash = row.hash
    if state_row is not None and not findings:
        last = rows[-1] if rows else None
        if last is None or state_row.last_seq != last.seq or state_row.last_hash != last.hash:
            findings.append(
                Finding(job_id, state_row.last_seq,
                        f"the projection records seq {state_row.last_seq} as the last event, but the log ends at "
                        f"seq {last.seq if last else 0} (row removed)")
            )
    return findings


def replay(job_id: str, kind: str, rows: list[JobEvent]) -> tuple[DerivedState | None, Finding | None]:
    """The state the events lead to through the state machine, or the finding of the first that cannot follow."""
    derived = initial_state(kind)
    for row in rows:
        try:
            derived = apply_event(derived, {"event_type": row.event_type, "step": row.step, "payload": row.payload,
                                            "seq": row.seq, "hash": row.hash})
        except IllegalTransition as exc:
            return None, Finding(job_id, row.seq, f"events cannot be replayed: {exc}")
    return derived, None


def verify_job(job_id: str) -> list[Finding]:
    """Findings for one job's chain, signatures, replay and projection: what a worker checks before it acts on
    what the log records (an approval, an artifact's sha256)."""
    rows = list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))
    state_row = JobState.objects.filter(job_id=job_id).first()
    findings = verify_chain(job_id, rows, state_row)
    if findings or state_row is None:
        return findings
    derived, finding = replay(job_id, state_row.kind, rows)
    if finding:
        return [finding]
    return [Finding(job_id, None, f"the projection's {name} is {getattr(state_row, name)!r}, the events say {value!r}")
            for name, value in projection_fields(derived).items() if getattr(state_row, name) != value]


def verify_spec(spec: JobSpec, submit: JobEvent | None) -> list[Finding]:
    """Findings for a job's spec: its id, its recorded sha256 and, against the submit event, its input's."""
    findings = []
    canonical = canonical_json(spec.spec)
    if content_id(spec.spec) != spec.job_id:
        findings.append(Finding(spec.job_id, None, f"job_id is not the content id of its spec ({content_id(spec.spec)}): "
                                                   "the spec was rewritten"))
    if sha256_hex(canonical) != spec.spec_sha256:
        findings.append(Finding(spec.job_id, None, "spec_sha256 is not the sha256 of the spec"))
    member = (spec.spec or {}).get(spec.kind) if isinstance(spec.spec, dict) else None
    recorded = (submit.payload or {}).get("inputs_sha256") if submit is not None else None
    if submit is not None and member is not None and recorded != sha256_hex(canonical_json(member)):
        findings.append(Finding(spec.job_id, submit.seq, f"the submit event records inputs sha256 {recorded}, "
                                                        f"not the sha256 of the spec's {spec.kind}"))
    return findings


def against_anchor(anchor: Anchor, job_id: str, rows: list[JobEvent]) -> list[Finding]:
    """Findings for one job's events against the head the anchor recorded for it."""
    if job_id not in anchor.heads:
        return []
    seq, digest = anchor.heads[job_id]
    if len(rows) < seq:
        last = rows[-1].seq if rows else 0
        return [Finding(job_id, seq, f"the log ends at seq {last}, but anchor {anchor.path} recorded seq {seq} "
                                     "(events removed)")]
    if rows[seq - 1].seq == seq and rows[seq - 1].hash != digest:
        return [Finding(job_id, seq, f"the event's hash is not the one anchor {anchor.path} recorded "
                                     "(the chain was rewritten)")]
    return []


def verify_anchor(anchor: Anchor | None, job_ids, seen: set[str]) -> list[Finding]:
    """Findings about the anchor itself and about anchored jobs that have no events any more."""
    if anchor is None:
        return []
    findings = [Finding(None, None, f"anchor {anchor.path}: {problem}") for problem in anchor.problems()]
    wanted = anchor.heads.keys() if job_ids is None else set(job_ids) & anchor.heads.keys()
    for job_id in sorted(set(wanted) - seen):
        findings.append(Finding(job_id, None, f"anchor {anchor.path} recorded this job at seq "
                                              f"{anchor.heads[job_id][0]}, but it is not in the database (deleted)"))
    return findings


def verify_events(job_ids: list[str] | None = None) -> tuple[int, list[Finding]]:
    """(number of jobs checked, findings) over all jobs or the given ones: each spec against its id and
    recorded hashes, each chain and its signatures, each projection's last event, and the latest anchor."""
    specs = {s.job_id: s for s in (JobSpec.objects.all() if job_ids is None else JobSpec.objects.filter(job_id__in=job_ids))}
    spec_ids = set(specs)
    states = {s.job_id: s for s in JobState.objects.filter(job_id__in=spec_ids)}
    keys, anchor = keyring(signing=False), latest_anchor()
    findings, seen = [], set()
    for job_id, rows in _events_by_job(job_ids):
        seen.add(job_id)
        if job_id in specs:
            findings += verify_spec(specs[job_id], rows[0] if rows[0].seq == 1 else None)
        findings += verify_chain(job_id, rows, states.get(job_id), keys)
        if anchor is not None:
            findings += against_anchor(anchor, job_id, rows)
    for job_id in sorted(spec_ids - seen):
        findings.append(Finding(job_id, 1, "job has no events (its submit event was removed)"))
    findings += verify_anchor(anchor, job_ids, seen)
    return len(spec_ids), findings


def rebuild_states(job_ids: list[str] | None = None, *, apply: bool = True) -> tuple[int, list[Finding]]:
    """Recompute each JobState from its events; report every column that drifted and fix it if `apply`."""
    specs = {s.job_id: s for s in (JobSpec.objects.all() if job_ids is None else JobSpec.objects.filter(job_id__in=job_ids))}
    states = {s.job_id: s for s in JobState.objects.filter(job_id__in=list(specs))}
    drift = []
    for job_id, rows in _events_by_job(job_ids):
        spec = specs[job_id]
        derived, finding = replay(job_id, spec.kind, rows)
        if finding:
            drift.append(finding)
            continue
        fields = projection_fields(derived)
        row = states.get(job_id)
        if row is None:
            drift.append(Finding(job_id, None, "projection row missing"))
            if apply:
                JobState.objects.create(job_id=job_id, created_at=spec.created_at, updated_at=spec.created_at, **fields)
            continue
        changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
        for name, value in changed.items():
            drift.append(Finding(job_id, None, f"{name}: stored {getattr(row, name)!r}, events say {value!r}"))
        if changed and apply:
            JobState.objects.filter(job_id=job_id).update(**changed)
    return len(specs), drift
