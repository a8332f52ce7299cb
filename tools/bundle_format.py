"""The audit bundle's format (docs/audit.md), shared by the export (jobs.bundles) and the stand-alone verifier:
file names, the byte form of each file, the hash chain, the Merkle tree of anchors and the mapping from the
artifact storage's paths to the bundle's. Standard library only: an auditor runs it without Django.

The hash and tree constructions repeat jobs/events.py and jobs/anchors.py on purpose (those import Django);
tests/audit checks that both give the same bytes on real jobs.
"""
import hashlib
import json
import re
from dataclasses import fields
from enum import Enum

BUNDLE_SCHEMA = "eam_bundle_v1"
JOB_SPEC = "job_spec.json"
EVENTS = "events.jsonl"
OUTPUTS_INDEX = "outputs/outputs.json"
ANCHOR = "anchor.json"
KEYS = "keys.json"
STATE = "state.json"
DOSSIER = "dossier"
TOP_FILES = (JOB_SPEC, EVENTS, OUTPUTS_INDEX, ANCHOR, KEYS, STATE)
# Each kind's input: the spec's member and the file it is exported to.
INPUTS = {"blueprint": ("blueprint", "inputs/blueprint.json"), "idea": ("idea", "inputs/idea_spec.json")}
# What a signature covers is told apart by a prefix (jobs.signing).
EVENT_CONTEXT = b"eam-event-v1:"
ANCHOR_CONTEXT = b"eam-anchor-v1:"
ANCHOR_SIGNED_FIELDS = ("anchor_schema", "anchored_at", "jobs", "root", "heads", "previous")
ZERO_HASH = "0" * 64
HEX = re.compile(r"(?:[0-9a-f]{2})*")
# The members of an event line that its hash does not cover: the hash itself and the signature over it.
UNHASHED = ("hash", "key_id", "signature")
# The members of each JSON file the export writes (besides `bundle_schema`): nothing else may be in them.
KEYS_MEMBERS = ("keys",)
STATE_MEMBERS = ("job_id", "kind", "events", "state")
SPAN_MEMBERS = ("from_seq", "to_seq", "prev_hash", "last_hash")
ANCHOR_MEMBERS = ("covered", "path", "sha256", "anchor", "proof")
PROOF_MEMBERS = ("head", "index", "size", "path")
NOT_COVERED = {"covered": False, "reason": "no anchor lists this job yet (manage.py anchor_heads writes one)"}
# Tar members: fixed metadata, so that the same files always make the same archive.
ARCHIVE_MTIME = 0
ARCHIVE_MODE = 0o644
ARCHIVE_DIR_MODE = 0o755


def canonical_json(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def json_bytes(doc) -> bytes:
    """The byte form of the bundle's JSON files: sorted keys, indent 2, UTF-8, trailing newline."""
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_id(doc) -> str:
    return sha256_hex(canonical_json(doc))[:12]


def chain_hash(prev_hash: str, document: dict) -> str:
    return sha256_hex(prev_hash.encode() + canonical_json(document))


def event_line(document: dict, digest: str, key_id, signature) -> bytes:
    """One line of events.jsonl: the hashed document with its hash and signature, canonical JSON."""
    return canonical_json({**document, "hash": digest, "key_id": key_id, "signature": signature}) + b"\n"


def hashed_document(line: dict) -> dict:
    return {name: value for name, value in line.items() if name not in UNHASHED}


# -- anchors: RFC 6962's Merkle tree over [job_id, seq, hash] heads -------------------------------------------

def leaf_hash(job_id: str, seq: int, digest: str) -> bytes:
    return hashlib.sha256(b"\x00" + canonical_json([job_id, seq, digest])).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    return 1 << ((size - 1).bit_length() - 1)  # the largest power of two below size


def tree_hash(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def audit_path(leaves: list[bytes], index: int) -> list[bytes]:
    """The inclusion proof of leaf `index`, bottom up (RFC 6962, 2.1.1)."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return audit_path(leaves[:k], index) + [tree_hash(leaves[k:])]
    return audit_path(leaves[k:], index - k) + [tree_hash(leaves[:k])]


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root that `path` proves `leaf` at `index` of a tree of `size` leaves to be under; None if it cannot."""
    if not 0 <= index < size:
        return None
    if size == 1:
        return leaf if not path else None
    if not path:
        return None
    k = _split(size)
    if index < k:
        below = root_from_path(leaf, index, k, path[:-1])
        return None if below is None else node_hash(below, path[-1])
    below = root_from_path(leaf, index - k, size - k, path[:-1])
    return None if below is None else node_hash(path[-1], below)


def anchor_path(doc: dict) -> str:
    """Where an anchor is stored (jobs.anchors): its time without separators and the start of its root."""
    stamp = str(doc.get("anchored_at")).replace("-", "").replace(":", "").replace(".", "")
    return f"anchors/{stamp}-{str(doc.get('root'))[:16]}.json"


def anchor_signed_part(doc: dict) -> bytes:
    return canonical_json({name: doc.get(name) for name in ANCHOR_SIGNED_FIELDS})


# -- where a recorded artifact goes in the bundle -------------------------------------------------------------

def bundle_path(job_id: str, run_id: str | None, storage_path: str) -> str | None:
    """The bundle's path of an artifact stored at `storage_path`: the job's own folder becomes the bundle's root,
    its run's dossier `dossier/`; None for a file outside both (the bundle does not carry it)."""
    own = f"jobs/{job_id}/"
    if storage_path.startswith(own):
        return storage_path[len(own):]
    if run_id and storage_path.startswith(f"dossiers/{run_id}/"):
        return f"{DOSSIER}/{storage_path[len(f'dossiers/{run_id}/'):]}"
    return None


def recorded_refs(payload) -> list[dict]:
    """Every artifact reference ({path, sha256, bytes}) anywhere in an event's payload, in document order."""
    found = []
    if isinstance(payload, dict):
        if isinstance(payload.get("path"), str) and isinstance(payload.get("sha256"), str) and "bytes" in payload:
            found.append(payload)
        for key in sorted(payload):
            found += recorded_refs(payload[key])
    elif isinstance(payload, list):
        for item in payload:
            found += recorded_refs(item)
    return found


def run_id_of(lines: list[dict]) -> str | None:
    """The job's run: the one whose dossier files its events record (the dossier the bundle carries)."""
    for line in lines:
        for ref in recorded_refs(line.get("payload")):
            parts = ref["path"].split("/")
            if len(parts) > 2 and parts[0] == "dossiers":
                return parts[1]
    return None


def recorded_artifacts(job_id: str, lines: list[dict]) -> tuple[str | None, dict[str, dict], list[dict]]:
    """What the events record: (the run id, {bundle path: entry} of the files the bundle carries, the entries of
    files it does not carry); each entry {storage_path, sha256, bytes, seq} of the last event that recorded it."""
    run_id = run_id_of(lines)
    recorded, external = {}, []
    for line in lines:
        for ref in recorded_refs(line.get("payload")):
            path = bundle_path(job_id, run_id, ref["path"])
            entry = {"storage_path": ref["path"], "sha256": ref["sha256"], "bytes": ref.get("bytes"),
                     "seq": line.get("seq")}
            if path is None:
                external.append(entry)
            else:
                recorded[path] = entry
    return run_id, recorded, external


def outputs_index(job_id: str, run_id: str | None, recorded: dict[str, dict], unrecorded: dict[str, bytes],
                  external: list[dict]) -> bytes:
    """outputs/outputs.json: every artifact the events record (path in the bundle, storage path, sha256, bytes,
    seq), the job's other files (derived ones no event records), and recorded files the bundle does not carry."""
    return json_bytes({
        "bundle_schema": BUNDLE_SCHEMA, "job_id": job_id, "run_id": run_id,
        "artifacts": [{"path": path, **entry} for path, entry in sorted(recorded.items())],
        "unrecorded": [{"path": path, "sha256": sha256_hex(data), "bytes": len(data)}
                       for path, data in sorted(unrecorded.items())],
        "external": external,
    })


def state_document(state) -> dict:
    """A derived state (jobs.state.DerivedState) as plain JSON: every field, enums as their values."""
    return json.loads(json.dumps({f.name: _plain(getattr(state, f.name)) for f in fields(state)}))


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
