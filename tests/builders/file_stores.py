"""Jobs as the original file-based JobStore kept them, written by hand: job_spec.json, inputs/, events.jsonl of
unsigned `job_event_v1` events (chained by hash, as that store chained them), outputs/ with its outputs.json."""
import json
from pathlib import Path

from contracts import canonical_json, content_id, sha256_hex
from tools import bundle_format as fmt

from .documents import a_blueprint, a_job_spec

V1 = "job_event_v1"
USER = {"kind": "user", "id": "carla"}
REVIEWER = {"kind": "user", "id": "dmitri"}
WORKER = {"kind": "worker", "id": "legacy-worker"}
LEASE = "2024-03-01T10:30:00.000000Z"


def a_v1_store(root: Path, *, name: str = "from the file store", verdict: str = "PASS") -> tuple[str, Path]:
    """A finished blueprint job of the file store under `root`: (job id, its folder)."""
    blueprint = a_blueprint(name=name)
    spec = a_job_spec(blueprint)
    job_id = content_id(spec)
    folder = root / job_id
    runspec = json.dumps({"note": "compiled by the file store", "job_id": job_id}, indent=2).encode() + b"\n"
    policy_ref = b'{"policy_bundle_id": "default_v1"}\n'
    files = {"job_spec.json": fmt.json_bytes(spec), "inputs/blueprint.json": fmt.json_bytes(blueprint),
             "outputs/runspec.json": runspec, "outputs/policy_bundle_ref.json": policy_ref}
    ref = {"path": f"jobs/{job_id}/outputs/runspec.json", "sha256": sha256_hex(runspec), "bytes": len(runspec)}
    events = [
        ("BLUEPRINT_SUBMITTED", None, USER,
         {"submitter": "carla", "inputs_sha256": sha256_hex(canonical_json(blueprint))}),
        ("STEP_STARTED", "compile", WORKER, {"attempt": 1, "worker": "legacy-worker", "lease_expires_at": LEASE}),
        ("RUNSPEC_COMPILED", "compile", WORKER, {"artifacts": [ref], "summary": {"run_id": "0123456789ab"}}),
        ("WAITING_APPROVAL", "runspec", WORKER, {"artifact_sha256": ref["sha256"]}),
        ("APPROVED", "runspec", REVIEWER, {"comment": "fine", "artifact_sha256": ref["sha256"]}),
        ("STEP_STARTED", "run", WORKER, {"attempt": 1, "worker": "legacy-worker", "lease_expires_at": LEASE}),
        ("RUN_COMPLETED", "run", WORKER, {"artifacts": [], "summary": {"run_id": "0123456789ab"}}),
        ("STEP_STARTED", "gates", WORKER, {"attempt": 1, "worker": "legacy-worker", "lease_expires_at": LEASE}),
        ("GATES_COMPLETED", "gates", WORKER, {"artifacts": [], "summary": {"verdict": verdict}}),
        ("STEP_STARTED", "registry", WORKER, {"attempt": 1, "worker": "legacy-worker", "lease_expires_at": LEASE}),
        ("REGISTRY_UPDATED", "registry", WORKER, {"artifacts": [], "summary": {}}),
        ("DONE", None, WORKER, {}),
    ]
    lines, prev = [], fmt.ZERO_HASH
    for seq, (event_type, step, actor, payload) in enumerate(events, start=1):
        doc = {"schema_version": V1, "job_id": job_id, "seq": seq, "event_type": event_type, "step": step,
               "actor": actor, "payload": payload, "recorded_at": f"2024-03-01T10:{seq:02d}:00Z", "prev_hash": prev}
        prev = fmt.chain_hash(prev, doc)
        lines.append(json.dumps({**doc, "hash": prev}) + "\n")
    files["events.jsonl"] = "".join(lines).encode()
    files["outputs/outputs.json"] = json.dumps({"artifacts": [
        {"path": "outputs/runspec.json", "sha256": sha256_hex(runspec)},
        {"path": "outputs/policy_bundle_ref.json", "sha256": sha256_hex(policy_ref)}]}).encode()
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return job_id, folder


def rewrite_events(folder: Path, change, *, rehash: bool = False) -> None:
    """Rewrite events.jsonl with `change(list of event dicts)` applied; hashes left as they were, or with `rehash`
    chained anew (a consistent other history)."""
    path = folder / "events.jsonl"
    lines = change([json.loads(line) for line in path.read_text().splitlines()])
    if rehash:
        prev = fmt.ZERO_HASH
        for line in lines:
            line["prev_hash"] = prev
            line["hash"] = prev = fmt.chain_hash(prev, fmt.hashed_document(line))
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
