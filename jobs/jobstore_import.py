"""Import of jobs kept as files: the original file-based JobStore's folders (job_spec.json, inputs/, events.jsonl
of `job_event_v1` or `job_event_v2` events, outputs/) and EAM's own audit bundles (jobs.bundles).

Each job is checked whole before anything is written: its id against its spec, its events' order and contracts,
their replay through the state rules, the artifact hashes outputs.json names (a bundle: everything
tools/verify_bundle.py checks, with this service's keys). Then, in one transaction, its events go through the one
append path (jobs.events): a bundle's verbatim, signed lines as they are; a file store's events appended anew,
each with its original actor, time, seq and hashes under `payload.provenance`. A job already present with the
same history is skipped, one with another history refused. Refused means nothing written, rows or files.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from contracts import CONTENT_ID, canonical_json, content_id, sha256_hex, validate, validate_event
from research.artifacts import check_path, read_artifact, write_artifact
from research.errors import ArtifactNotFound, UnsafePath
from tools import bundle_format as fmt
from tools.bundle_reader import read_folder
from tools.verify_bundle import verify_job

from . import events
from .errors import DomainError
from .models import JobEvent, JobSpec
from .pipelines import Kind
from .signing import keyring, public_bytes
from .state import IllegalTransition, derive_state, parse_time

SOURCE = "jobstore"
LEGACY_SCHEMAS = ("job_event_v1", "job_event_v2")
NOT_ARTIFACTS = (fmt.OUTPUTS_INDEX,)  # a file store's own index: rebuildable, EAM's export writes its own


class Refused(Exception):
    """Why a job is not imported."""


@dataclass(frozen=True)
class Outcome:
    folder: str
    job_id: str | None
    result: str  # imported | skipped | refused
    detail: str

    def __str__(self):
        return f"{self.folder}  {self.result}  {self.detail}"


@dataclass
class Plan:
    """Everything one job's import writes, worked out and checked before any write."""

    job_id: str
    spec: dict
    lines: list[dict]
    bundle: bool  # an EAM bundle (verbatim, signed) rather than a file store
    artifacts: dict[str, bytes]  # storage path -> bytes


def import_store(root: Path) -> list[Outcome]:
    """Import every job folder under `root` (or `root` itself, when it is one), each on its own."""
    if (root / fmt.JOB_SPEC).exists():
        return [import_job(root)]
    return [import_job(folder) for folder in sorted(root.iterdir()) if folder.is_dir() and not folder.is_symlink()]


def import_job(folder: Path) -> Outcome:
    try:
        plan = plan_job(folder)
        existing = JobSpec.objects.filter(job_id=plan.job_id).first()
        if existing is not None:
            if _history(plan.job_id, bundle=plan.bundle) != _expected_history(plan):
                raise Refused(f"job {plan.job_id} is already present with a different history")
            return Outcome(folder.name, plan.job_id, "skipped", f"{plan.job_id}: already present, same history")
        _write(plan)
    except Refused as exc:
        return Outcome(folder.name, None, "refused", str(exc))
    except DomainError as exc:  # the append path's own checks (contract, transition): nothing was committed
        return Outcome(folder.name, None, "refused", f"the append path refused it: {exc}")
    how = "inserted as signed" if plan.bundle else "appended again, originals under payload.provenance"
    return Outcome(folder.name, plan.job_id, "imported",
                   f"{plan.job_id}: {len(plan.lines)} events ({how}), {len(plan.artifacts)} artifacts")


# -- checking -----------------------------------------------------------------------------------------------------

def plan_job(folder: Path) -> Plan:
    files, found = read_folder(folder)
    if found:
        raise Refused(f"{found[0]}")
    spec = _json(files, fmt.JOB_SPEC)
    if not isinstance(spec, dict):
        raise Refused("job_spec.json is not a JSON object")
    job_id = content_id(spec)
    if not CONTENT_ID.fullmatch(folder.name) or folder.name != job_id:
        raise Refused(f"bad id: the folder is named {folder.name!r}, but its spec's content id is {job_id}")
    errors = validate("job_spec_v1", spec)
    if errors:
        raise Refused(f"job_spec.json breaks job_spec_v1: {errors[0]['path']} {errors[0]['message']}")
    member, inputs_path = fmt.INPUTS[spec["kind"]]
    if inputs_path in files and canonical_json(_json(files, inputs_path)) != canonical_json(spec[member]):
        raise Refused(f"{inputs_path} is not the spec's {member}")
    lines = _event_lines(files, job_id)
    bundle = fmt.STATE in files and all(line.get("signature") for line in lines)
    if bundle:
        artifacts = _bundle_artifacts(files, job_id, lines)
    else:
        _check_legacy(job_id, spec["kind"], lines)
        artifacts = _store_artifacts(files, job_id)
    for path, data in artifacts.items():
        try:
            check_path(path)
            if read_artifact(path) != data:
                raise Refused(f"artifact {path} already exists with other content")
        except ArtifactNotFound:
            continue
        except UnsafePath as exc:
            raise Refused(str(exc)) from None
    return Plan(job_id, spec, lines, bundle, artifacts)


def _json(files: dict, name: str):
    if name not in files:
        raise Refused(f"{name} is missing")
    try:
        return json.loads(files[name])
    except ValueError as exc:
        raise Refused(f"{name} is not JSON: {exc}") from None


def _event_lines(files: dict, job_id: str) -> list[dict]:
    """events.jsonl's events, in seq order from 1 without a gap, each one valid under its own contract."""
    if fmt.EVENTS not in files:
        raise Refused("events.jsonl is missing")
    lines = []
    for number, raw in enumerate(files[fmt.EVENTS].splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise Refused(f"events.jsonl line {number} is not JSON: {exc}") from None
        if not isinstance(line, dict):
            raise Refused(f"events.jsonl line {number} is not a JSON object")
        if line.get("seq") != number:
            raise Refused(f"events.jsonl: seq gap or disorder: line {number} has seq {line.get('seq')!r}, "
                          f"expected {number}")
        if line.get("job_id") != job_id:
            raise Refused(f"events.jsonl seq {number}: belongs to job {line.get('job_id')!r}, not {job_id}")
        schema = line.get("schema_version")
        if schema not in LEGACY_SCHEMAS:
            raise Refused(f"events.jsonl seq {number}: unknown event contract {schema!r}")
        errors = validate_event(schema, {k: v for k, v in line.items() if k not in ("key_id", "signature")})
        if errors:
            raise Refused(f"events.jsonl seq {number} ({line.get('event_type')}): breaks {schema}: "
                          f"{errors[0]['path']} {errors[0]['message']}")
        lines.append(line)
    if not lines:
        raise Refused("events.jsonl holds no event")
    return lines


def _check_legacy(job_id: str, kind: str, lines: list[dict]) -> None:
    """A file store's chain (where it recorded hashes) and the events' replay through the service's rules."""
    prev_hash = fmt.ZERO_HASH
    for line in lines:
        if "hash" in line:
            if line["prev_hash"] != prev_hash or fmt.chain_hash(line["prev_hash"], fmt.hashed_document(line)) \
                    != line["hash"]:
                raise Refused(f"events.jsonl seq {line['seq']}: its hash chain is broken (altered or removed events)")
            prev_hash = line["hash"]
    try:
        derive_state(lines, kind=Kind(kind))
    except (IllegalTransition, ValueError) as exc:
        raise Refused(f"events.jsonl: the events cannot be replayed: {exc}") from None


def _store_artifacts(files: dict, job_id: str) -> dict[str, bytes]:
    """A file store's spec, inputs and outputs, at their storage paths; the sha256 outputs.json names checked."""
    index = _json(files, fmt.OUTPUTS_INDEX) if fmt.OUTPUTS_INDEX in files else {}
    for ref in _named(index):
        path = ref["path"].removeprefix(f"jobs/{job_id}/")
        if path not in files:
            raise Refused(f"outputs.json names {path}, which the job's folder does not hold")
        if sha256_hex(files[path]) != ref["sha256"]:
            raise Refused(f"{path}: sha256 {sha256_hex(files[path])} is not the {ref['sha256']} outputs.json names")
    kept = [p for p in files if p == fmt.JOB_SPEC or p.startswith(("inputs/", "outputs/")) and p not in NOT_ARTIFACTS]
    return {f"jobs/{job_id}/{path}": files[path] for path in sorted(kept)}


def _named(doc) -> list[dict]:
    if isinstance(doc, dict):
        found = [doc] if isinstance(doc.get("path"), str) and isinstance(doc.get("sha256"), str) else []
        return found + [ref for value in doc.values() for ref in _named(value)]
    if isinstance(doc, list):
        return [ref for item in doc for ref in _named(item)]
    return []


def _bundle_artifacts(files: dict, job_id: str, lines: list[dict]) -> dict[str, bytes]:
    """An EAM bundle, verified as an auditor would with the keys this service knows; its files' storage paths."""
    keys = {key_id: public_bytes(key) for key_id, key in keyring(signing=False).public.items()}
    report = verify_job(files, job_id, auditor_keys=keys)
    if report.findings:
        raise Refused("the bundle does not verify: " + "; ".join(str(f) for f in report.findings[:3]))
    if json.loads(files[fmt.STATE])["events"]["from_seq"] != 1:
        raise Refused("the bundle is an incremental tail: import a whole bundle")
    run_id, recorded, _ = fmt.recorded_artifacts(job_id, lines)
    artifacts = {entry["storage_path"]: files[path] for path, entry in recorded.items()}
    for entry in json.loads(files[fmt.OUTPUTS_INDEX])["unrecorded"]:
        path = entry["path"]
        inner = path.removeprefix(f"{fmt.DOSSIER}/")
        artifacts[f"dossiers/{run_id}/{inner}" if inner != path else f"jobs/{job_id}/{path}"] = files[path]
    return dict(sorted(artifacts.items()))


# -- writing ------------------------------------------------------------------------------------------------------

def _write(plan: Plan) -> None:
    spec, lines = plan.spec, plan.lines
    lineage = (spec.get("extensions") or {}).get("lineage") or {}
    first = lines[0]
    created_at = parse_time(first["recorded_at"]) if plan.bundle else events.now()
    job = JobSpec(
        job_id=plan.job_id, kind=spec["kind"], spec=spec, spec_sha256=sha256_hex(canonical_json(spec)),
        snapshot_id=spec["snapshot_id"], policy_bundle_id=spec["policy_bundle_id"],
        root_job_id=lineage.get("root_job_id", plan.job_id), parent_job_id=lineage.get("parent_job_id"),
        generation=lineage.get("generation", 0), created_at=created_at,
        submitted_by=(first.get("payload") or {}).get("submitter") or first["actor"]["id"],
    )
    with transaction.atomic():
        if plan.bundle:
            events.create_job(spec=job, verbatim=first)
            if len(lines) > 1:
                events.append_events(job_id=plan.job_id, expected_seq=2, events=[], verbatim=lines[1:])
        else:
            reappended = [events.reappended(line, source=SOURCE) for line in lines]
            events.create_job(spec=job, submit_event=reappended[0])
            if len(lines) > 1:
                events.append_events(job_id=plan.job_id, expected_seq=2, events=reappended[1:])
        for path, data in plan.artifacts.items():  # checked above: each is new, or already these bytes
            write_artifact(path, data)


def _history(job_id: str, *, bundle: bool) -> list:
    """What the stored events say: a bundle's are compared by hash (it covers everything); a file store's by
    type, step and payload (their re-appended hashes are this database's own)."""
    rows = JobEvent.objects.filter(job_id=job_id).order_by("seq")
    if bundle:
        return [row.hash for row in rows]
    return [(row.event_type, row.step, {k: v for k, v in row.payload.items() if k != "trace"}) for row in rows]


def _expected_history(plan: Plan) -> list:
    if plan.bundle:
        return [line["hash"] for line in plan.lines]
    return [(str(new.event_type), new.step, new.payload)
            for new in (events.reappended(line, source=SOURCE) for line in plan.lines)]
