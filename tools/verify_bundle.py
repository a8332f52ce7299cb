#!/usr/bin/env python3
"""Verify an EAM audit bundle with the Python standard library alone: no Django, no database, no network.

    python tools/verify_bundle.py PATH [--keys FILE]

PATH is a job's folder (<job_id>/ with job_spec.json), a folder of such folders, or a .tar.gz of them. Exit 0
with one summary line per job when every check passes; exit 1 with a report naming each file (and seq) at fault.
The job's state is re-derived with the service's own rules (jobs/state.py, jobs/pipelines.py: standard library
only, imported from the repository this script sits in). docs/audit.md says what a pass proves.
"""
import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jobs.state import IllegalTransition, derive_state  # noqa: E402  (standard library only)
from tools import bundle_format as fmt  # noqa: E402
from tools.bundle_reader import Finding, read_bundles  # noqa: E402
from tools.ed25519_verify import public_key_from_pem, verify  # noqa: E402


@dataclass
class Report:
    job: str
    findings: list[Finding] = field(default_factory=list)
    summary: str = ""

    def add(self, file: str, problem: str, seq: int | None = None) -> None:
        self.findings.append(Finding(file, problem, seq))


# -- keys -----------------------------------------------------------------------------------------------------

def parse_keys(data: bytes, source: str, report: Report) -> dict[str, bytes]:
    """{key id: 32 raw public key bytes} from a keys.json document (or {key id: PEM} as an auditor may hold)."""
    try:
        doc = json.loads(data)
        entries = doc["keys"] if isinstance(doc, dict) and "keys" in doc else doc
        keys = {}
        for key_id, value in entries.items():
            if isinstance(value, dict):
                if set(value) != {"algorithm", "public_key"} or value["algorithm"] != "Ed25519":
                    raise ValueError(f"key {key_id} is not an entry {{algorithm: Ed25519, public_key}}")
                value = value["public_key"]
            keys[key_id] = public_key_from_pem(value) if value.lstrip().startswith("-----") else _hex(value, 32)
        return keys
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        report.add(source, f"cannot be read as public keys: {exc}")
        return {}


# -- the checks -----------------------------------------------------------------------------------------------

def _json(files: dict, name: str, report: Report, *, exact: bool = True):
    """The JSON document `name`; with `exact`, its bytes must be the bundle's byte form of it (any edit shows)."""
    if name not in files:
        report.add(name, "is missing")
        return None
    try:
        doc = json.loads(files[name])
        if exact and fmt.json_bytes(doc) != files[name]:
            report.add(name, "is not in the bundle's byte form (altered)")
        return doc
    except ValueError as exc:
        report.add(name, f"is not JSON: {exc}")
        return None


def _members(report: Report, file: str, doc, members: tuple, *, schema: bool = True) -> bool:
    """Whether `doc` is an object with exactly `members` (and `bundle_schema` when `schema`); a finding if not."""
    expected = set(members) | ({"bundle_schema"} if schema else set())
    if not isinstance(doc, dict) or set(doc) != expected:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        report.add(file, f"holds {found}, not the members {sorted(expected)}")
        return False
    if schema and doc["bundle_schema"] != fmt.BUNDLE_SCHEMA:
        report.add(file, f"is not an {fmt.BUNDLE_SCHEMA} document")
    return True


def _hex(text, size: int | None = None) -> bytes:
    """Lowercase hex only, as the service writes it (so that no two spellings name the same bytes)."""
    if not isinstance(text, str) or not fmt.HEX.fullmatch(text) or (size is not None and len(text) != 2 * size):
        raise ValueError(f"{text!r:.80} is not {'' if size is None else f'{size} bytes of '}lowercase hex")
    return bytes.fromhex(text)


def check_spec(files: dict, folder: str, recorded: set[str], report: Report) -> dict | None:
    """The spec and its inputs file: in the bundle's byte form, unless an event recorded their bytes (then the
    sha256 check of the artifacts covers them)."""
    spec = _json(files, fmt.JOB_SPEC, report, exact=fmt.JOB_SPEC not in recorded)
    if not isinstance(spec, dict):
        return None
    if fmt.content_id(spec) != folder:
        report.add(fmt.JOB_SPEC, f"its content id is {fmt.content_id(spec)}, not the job id {folder}")
    member, path = fmt.INPUTS.get(spec.get("kind"), (None, None))
    if member is None:
        report.add(fmt.JOB_SPEC, f"unknown kind {spec.get('kind')!r}")
        return spec
    inputs = _json(files, path, report, exact=path not in recorded)
    if inputs is not None and fmt.canonical_json(inputs) != fmt.canonical_json(spec.get(member)):
        report.add(path, f"is not the spec's {member}")
    return spec


def check_events(files: dict, folder: str, keys: dict[str, bytes], state_doc: dict, report: Report) -> list[dict]:
    """The events, each line's canonical form, seq, chain and signature checked; [] if unreadable."""
    if fmt.EVENTS not in files:
        report.add(fmt.EVENTS, "is missing")
        return []
    span = (state_doc or {}).get("events") or {}
    expected_seq = span.get("from_seq") if isinstance(span.get("from_seq"), int) else 1
    prev_hash = span.get("prev_hash", fmt.ZERO_HASH)
    lines = []
    raw_lines = files[fmt.EVENTS].split(b"\n")
    if raw_lines[-1] != b"":
        report.add(fmt.EVENTS, "does not end with a newline")
    for number, raw in enumerate(raw_lines[:-1] if raw_lines[-1] == b"" else raw_lines, start=1):
        try:
            line = json.loads(raw)
            if not isinstance(line, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            report.add(fmt.EVENTS, f"line {number} is not a JSON event: {exc}", expected_seq)
            expected_seq += 1
            continue
        seq, at = line.get("seq"), expected_seq  # findings name the seq this line should have
        try:
            canonical = fmt.canonical_json(line)
        except ValueError:
            canonical = None
        if canonical != raw:
            report.add(fmt.EVENTS, "the line is not in canonical form (altered)", at)
        if seq != expected_seq:
            report.add(fmt.EVENTS, f"expected seq {expected_seq} here, found seq {seq!r} (an event missing, moved or "
                                   "repeated)", at)
        if line.get("job_id") != folder:
            report.add(fmt.EVENTS, f"belongs to job {line.get('job_id')}, not {folder}", at)
        if line.get("prev_hash") != prev_hash:
            report.add(fmt.EVENTS, "prev_hash is not the hash of the event before", at)
        digest = line.get("hash")
        try:
            recomputed = fmt.chain_hash(str(line.get("prev_hash")), fmt.hashed_document(line))
        except ValueError:
            recomputed = None
        if recomputed != digest:
            report.add(fmt.EVENTS, "hash does not match the event's content (altered)", at)
        problem = _signature_problem(keys, line.get("key_id"), line.get("signature"), fmt.EVENT_CONTEXT,
                                     str(digest).encode())
        if problem:
            report.add(fmt.EVENTS, f"{line.get('event_type')}: {problem}", at)
        lines.append(line)
        prev_hash, expected_seq = digest, (seq if isinstance(seq, int) else expected_seq) + 1
    return lines


def _signature_problem(keys: dict, key_id, signature, context: bytes, message: bytes) -> str | None:
    if not key_id or not signature:
        return "not signed"
    key = keys.get(key_id)
    if key is None:
        return f"signed with key {key_id}, which is not among the public keys"
    try:
        ok = verify(key, context + message, _hex(signature, 64))
    except (ValueError, TypeError):
        ok = False
    return None if ok else f"the signature does not verify with key {key_id} (forged or altered)"


def check_inputs_recorded(files: dict, spec: dict | None, lines: list[dict], report: Report) -> None:
    if not spec or not lines or lines[0].get("seq") != 1:
        return
    member, path = fmt.INPUTS.get(spec.get("kind"), (None, None))
    recorded = (lines[0].get("payload") or {}).get("inputs_sha256")
    if member and recorded != fmt.sha256_hex(fmt.canonical_json(spec.get(member))):
        report.add(fmt.JOB_SPEC, f"the submit event records inputs sha256 {recorded}, not the sha256 of the "
                                 f"spec's {member}", 1)


def check_span(spec: dict | None, lines: list[dict], state_doc: dict | None, report: Report) -> None:
    """state.json's own claims about the bundle: the job's kind, where events.jsonl starts and what it chains to."""
    if not isinstance(state_doc, dict):
        return
    span = state_doc["events"]
    if spec and state_doc["kind"] != spec.get("kind"):
        report.add(fmt.STATE, f"records kind {state_doc['kind']!r}, the spec says {spec.get('kind')!r}")
    if span["from_seq"] == 1 and span["prev_hash"] != fmt.ZERO_HASH:
        report.add(fmt.STATE, "records a prev_hash before seq 1")
    if not lines or lines[0].get("seq") != span["from_seq"]:
        report.add(fmt.STATE, f"records events from seq {span['from_seq']!r}, events.jsonl starts at "
                              f"{lines[0].get('seq') if lines else None!r}")


def check_state(spec: dict | None, lines: list[dict], state_doc: dict | None, report: Report) -> str | None:
    """Re-derive the state with the service's rules and compare it with state.json; the status, or None."""
    if not isinstance(state_doc, dict) or not spec or report.findings:
        return None  # a broken chain is reported already; its replay would say nothing more
    span = state_doc.get("events") or {}
    last = lines[-1] if lines else {}
    if span.get("to_seq") != last.get("seq") or span.get("last_hash") != last.get("hash"):
        wanted = span.get("to_seq") if isinstance(span.get("to_seq"), int) else None
        report.add(fmt.EVENTS, f"ends at seq {last.get('seq')}, but state.json records seq {span.get('to_seq')} "
                               "as the last event (events removed or added)", wanted)
        report.add(fmt.STATE, f"records seq {span.get('to_seq')} as the last event, events.jsonl ends at seq "
                              f"{last.get('seq')}")
        return None
    if span.get("from_seq", 1) != 1:
        return None  # an incremental tail: the state before it is not in the bundle
    try:
        derived = derive_state(lines, kind=spec.get("kind"))
    except (IllegalTransition, ValueError, KeyError, TypeError) as exc:
        report.add(fmt.EVENTS, f"the events cannot be replayed: {exc}", _failing_seq(spec, lines))
        return None
    derived_doc = fmt.state_document(derived)
    recorded_doc = state_doc.get("state")
    if not isinstance(recorded_doc, dict) or set(recorded_doc) != set(derived_doc):
        report.add(fmt.STATE, f"records the members {sorted(recorded_doc or {})}, a state has {sorted(derived_doc)}")
        return None
    for name in sorted(set(derived_doc) | set(state_doc.get("state") or {})):
        recorded = (state_doc.get("state") or {}).get(name)
        if derived_doc.get(name) != recorded:
            report.add(fmt.STATE, f"records {name} {recorded!r}, the events say {derived_doc.get(name)!r}")
    return derived_doc.get("status")


def _failing_seq(spec: dict, lines: list[dict]) -> int | None:
    for count in range(1, len(lines) + 1):
        try:
            derive_state(lines[:count], kind=spec.get("kind"))
        except (IllegalTransition, ValueError, KeyError, TypeError):
            return lines[count - 1].get("seq")
    return None


def check_artifacts(files: dict, folder: str, lines: list[dict], report: Report) -> int:
    """Every artifact the events record against its bytes; every other file listed by outputs.json, which must be
    exactly the index of both; no file the bundle may not hold."""
    run_id, recorded, external = fmt.recorded_artifacts(folder, lines)
    for path, entry in sorted(recorded.items()):
        if path not in files:
            report.add(path, f"recorded by the event at seq {entry['seq']} but missing from the bundle", entry["seq"])
        elif fmt.sha256_hex(files[path]) != entry["sha256"]:
            report.add(path, f"sha256 {fmt.sha256_hex(files[path])} is not the {entry['sha256']} the event at seq "
                             f"{entry['seq']} recorded (altered)", entry["seq"])
    index = _json(files, fmt.OUTPUTS_INDEX, report, exact=False)
    listed = {}
    for entry in (index.get("unrecorded") if isinstance(index, dict) else None) or []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            listed[entry["path"]] = entry
    inputs = {path for _, path in fmt.INPUTS.values()}
    others = {path for path in files if path not in recorded and path not in fmt.TOP_FILES and path not in inputs}
    for path in sorted(others - set(listed)):
        report.add(path, "is a file that neither the events nor outputs.json name")
    for path, entry in sorted(listed.items()):
        if path not in files:
            report.add(path, "outputs.json lists it, but the bundle does not hold it")
        elif path in others and fmt.sha256_hex(files[path]) != entry.get("sha256"):
            report.add(path, "is not the file outputs.json lists (altered)")
    unrecorded = {path: files[path] for path in others & set(listed)}
    if index is not None and files[fmt.OUTPUTS_INDEX] != fmt.outputs_index(folder, run_id, recorded, unrecorded,
                                                                           external):
        report.add(fmt.OUTPUTS_INDEX, "is not the index of what the events record and the bundle holds (altered)")
    check_holdout(files, report)
    return len(recorded)


def check_holdout(files: dict, report: Report) -> None:
    """No curve or trades of a holdout segment, and no file at all of one other than its metrics."""
    roles = {}
    for name in (f"{fmt.DOSSIER}/dossier.json", "outputs/runspec.json"):
        try:
            doc = json.loads(files[name]) if name in files else {}
            segments = doc.get("segments")
            segments = segments.get("list") if isinstance(segments, dict) else segments
            roles.update({s.get("segment_id") or s.get("id"): s.get("role") for s in segments or []})
        except (ValueError, AttributeError, TypeError):
            continue
    for path in sorted(files):
        parts = path.split("/")
        if len(parts) == 4 and parts[:2] == [fmt.DOSSIER, "segments"] and parts[3] != "metrics.json":
            if roles.get(parts[2]) == "holdout" or parts[3] in ("curve.csv", "trades.csv") and parts[2] not in roles:
                report.add(path, "a holdout segment's curve or trades: the holdout shows its metrics only")


def check_anchor(files: dict, folder: str, keys: dict, lines: list[dict], report: Report) -> str:
    doc = _json(files, fmt.ANCHOR, report)
    if not isinstance(doc, dict):
        return "anchor unreadable"
    if doc.get("covered") is False:
        if doc != {"bundle_schema": fmt.BUNDLE_SCHEMA, **fmt.NOT_COVERED}:
            report.add(fmt.ANCHOR, "is not the statement that no anchor covers the job (altered)")
        return f"no anchor covers this job ({doc.get('reason')})"
    if not _members(report, fmt.ANCHOR, doc, fmt.ANCHOR_MEMBERS) or doc["covered"] is not True \
            or not _members(report, fmt.ANCHOR, doc["proof"], fmt.PROOF_MEMBERS, schema=False):
        return "anchor malformed"
    anchor, proof = doc.get("anchor") or {}, doc.get("proof") or {}
    try:
        head, index, size = proof["head"], proof["index"], proof["size"]
        path = [_hex(h, 32) for h in proof["path"]]
        heads = anchor["heads"]
    except (KeyError, TypeError, ValueError) as exc:
        report.add(fmt.ANCHOR, f"is not a complete anchor with its proof: {exc}")
        return "anchor malformed"
    if fmt.sha256_hex(fmt.canonical_json(anchor) + b"\n") != doc.get("sha256"):
        report.add(fmt.ANCHOR, "the anchor document is not the one whose sha256 it names")
    if doc["path"] != fmt.anchor_path(anchor):
        report.add(fmt.ANCHOR, f"the anchor's path is {fmt.anchor_path(anchor)}, not {doc['path']}")
    problem = _signature_problem(keys, anchor.get("key_id"), anchor.get("signature"), fmt.ANCHOR_CONTEXT,
                                 fmt.anchor_signed_part(anchor))
    if problem:
        report.add(fmt.ANCHOR, f"anchor signature: {problem}")
    leaves = [fmt.leaf_hash(*h) for h in heads] if all(isinstance(h, list) and len(h) == 3 for h in heads) else []
    if fmt.tree_hash(leaves).hex() != anchor.get("root") or anchor.get("jobs") != len(heads):
        report.add(fmt.ANCHOR, "the anchor's root or count is not that of the heads it lists")
    if not isinstance(head, list) or len(head) != 3 or head[0] != folder:
        report.add(fmt.ANCHOR, f"the proof is about {head!r}, not job {folder}")
        return "anchor proof malformed"
    try:
        root = fmt.root_from_path(fmt.leaf_hash(*head), index, size, path)
    except TypeError:
        root = None
    if root is None or root.hex() != anchor.get("root") or size != len(heads) or heads[index] != head:
        report.add(fmt.ANCHOR, "the Merkle proof does not lead from the job's head to the anchor's root")
    seq, digest = head[1], head[2]
    at = next((line for line in lines if line.get("seq") == seq), None)
    if at is None and lines and isinstance(seq, int) and isinstance(lines[0].get("seq"), int) \
            and seq < lines[0]["seq"]:
        return f"anchor {doc.get('path')} proves seq {seq}, before this tail"
    if at is None:
        report.add(fmt.EVENTS, f"the anchor recorded seq {seq}, which events.jsonl does not hold (truncated)", seq)
    elif at.get("hash") != digest:
        report.add(fmt.EVENTS, "the event's hash is not the one the anchor recorded (chain rewritten)", seq)
    return f"anchor {doc.get('path')} proves seq {seq}"


MALFORMED = (TypeError, KeyError, AttributeError, ValueError, IndexError)


def _guarded(report: Report, file: str, default, check, *args):
    """Run one check; a document too malformed for it (a list where an object belongs, …) is a finding about
    `file`, not a crash."""
    try:
        return check(*args)
    except MALFORMED as exc:
        report.add(file, f"is malformed: {type(exc).__name__}: {exc}")
        return default


def verify_job(files: dict[str, bytes], folder: str, *, auditor_keys: dict[str, bytes] | None = None,
               found: list[Finding] = ()) -> Report:
    report = Report(folder, list(found))
    keys_doc = files.get(fmt.KEYS)
    keys_json = _json(files, fmt.KEYS, report)
    bundle_keys = parse_keys(keys_doc, fmt.KEYS, report) if _members(report, fmt.KEYS, keys_json,
                                                                      fmt.KEYS_MEMBERS) else {}
    keys = bundle_keys
    if auditor_keys is not None:
        keys = auditor_keys  # the keys the auditor holds decide; the bundle's own are only compared
        for key_id in sorted(set(bundle_keys) & set(auditor_keys)):
            if bundle_keys[key_id] != auditor_keys[key_id]:
                report.add(fmt.KEYS, f"key {key_id} is not the public key the auditor holds under that id")
    state_doc = _json(files, fmt.STATE, report)
    if not (_members(report, fmt.STATE, state_doc, fmt.STATE_MEMBERS)
            and _members(report, fmt.STATE, state_doc["events"], fmt.SPAN_MEMBERS, schema=False)):
        state_doc = None
    elif state_doc["job_id"] != folder:
        report.add(fmt.STATE, f"is about job {state_doc.get('job_id')}, not {folder}")
    lines = _guarded(report, fmt.EVENTS, [], check_events, files, folder, keys,
                     state_doc if isinstance(state_doc, dict) else {}, report)
    spec = _guarded(report, fmt.JOB_SPEC, None, lambda: check_spec(
        files, folder, set(fmt.recorded_artifacts(folder, lines)[1]), report))
    _guarded(report, fmt.JOB_SPEC, None, check_inputs_recorded, files, spec, lines, report)
    artifacts = _guarded(report, fmt.OUTPUTS_INDEX, 0, check_artifacts, files, folder, lines, report)
    anchored = _guarded(report, fmt.ANCHOR, "anchor malformed", check_anchor, files, folder, keys, lines, report)
    _guarded(report, fmt.STATE, None, check_span, spec, lines, state_doc, report)
    status = _guarded(report, fmt.STATE, None, check_state, spec, lines, state_doc, report)
    first, last = (lines[0].get("seq"), lines[-1].get("seq")) if lines else (0, 0)
    signers = sorted({line.get("key_id") for line in lines if isinstance(line.get("key_id"), str)})
    report.summary = (f"OK {folder}: {len(lines)} events (seq {first}-{last}) chained and signed by "
                      f"{', '.join(signers) or 'no key'}; state {status or 'not re-derived (tail)'}; "
                      f"{artifacts} recorded artifacts match; {anchored}")
    return report


def verify_path(path: Path, auditor_keys: dict[str, bytes] | None = None) -> list[Report]:
    return [verify_job(files, folder, auditor_keys=auditor_keys, found=found)
            for folder, (files, found) in sorted(read_bundles(path).items())]


def main(argv=None, out=sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a job's bundle folder, a folder of them, or a .tar.gz")
    parser.add_argument("--keys", type=Path, help="public keys the auditor holds (JSON: key id -> hex or PEM); "
                                                 "they replace the bundle's keys.json")
    args = parser.parse_args(argv)
    for given in (args.path, args.keys):
        if given is not None and not given.exists():
            parser.error(f"{given} does not exist")
    auditor_keys = None
    if args.keys:
        holder = Report("--keys")
        auditor_keys = parse_keys(args.keys.read_bytes(), str(args.keys), holder)
        if holder.findings:
            out.write(f"FAIL {holder.findings[0]}" + "\n")
            return 1
    reports = verify_path(args.path, auditor_keys)
    if not reports:
        out.write(f"FAIL {args.path}: no job bundle found" + "\n")
        return 1
    failed = [r for r in reports if r.findings]
    for report in reports:
        if report.findings:
            for finding in report.findings:
                out.write(f"FAIL {report.job}/{finding}" + "\n")
        else:
            out.write(report.summary + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
