"""Anchors: signed records, outside the database, of where every job's event log stood.

An anchor is a JSON file under `anchors/` in artifact storage. It lists every job's head — `(job_id, last seq,
last hash)` read from the events, never from the mutable projection — with the count of jobs, the Merkle root
over those heads, the path and sha256 of the anchor before it, and an Ed25519 signature (jobs.signing). Anchors
are write-once files and only ever added. Whoever can write to the database but not to the storage cannot
truncate a job's log, delete a job or rewrite a chain (even re-hashed) before an anchor without
`verify_events` reporting it.

The Merkle tree is RFC 6962's: leaves in job_id order, leaf = sha256(0x00 || canonical([job_id, seq, hash])),
node = sha256(0x01 || left || right), split at the largest power of two below the count; the empty tree's root
is sha256 of nothing. A single job's inclusion can so be proved without the other heads.
"""
import hashlib
import json
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from contracts import canonical_json, sha256_hex
from research.artifacts import list_artifacts, read_artifact, write_artifact
from research.errors import ArtifactNotFound

from .events import now
from .state import format_time
from .models import JobEvent
from .signing import ANCHOR_CONTEXT, keyring

ANCHOR_DIR = "anchors"
ANCHOR_SCHEMA = "eam_anchor_v1"
SIGNED_FIELDS = ("anchor_schema", "anchored_at", "jobs", "root", "heads", "previous")


def leaf_hash(job_id: str, seq: int, digest: str) -> bytes:
    return hashlib.sha256(b"\x00" + canonical_json([job_id, seq, digest])).digest()


def _tree_hash(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below the count
    return hashlib.sha256(b"\x01" + _tree_hash(leaves[:split]) + _tree_hash(leaves[split:])).digest()


def merkle_root(heads: list[list]) -> str:
    """The Merkle root of `heads` ([job_id, seq, hash] in job_id order), hex."""
    return _tree_hash([leaf_hash(*head) for head in heads]).hex()


def job_heads() -> list[list]:
    """[job_id, seq, hash] of every job's last event, in job_id order: one query."""
    last_seq = JobEvent.objects.filter(job_id=OuterRef("job_id")).order_by("-seq").values("seq")[:1]
    rows = JobEvent.objects.filter(seq=Subquery(last_seq)).order_by("job_id").values_list("job_id", "seq", "hash")
    return [list(row) for row in rows]


def _signed_part(doc: dict) -> bytes:
    return canonical_json({name: doc.get(name) for name in SIGNED_FIELDS})


@dataclass(frozen=True)
class Anchor:
    path: str
    doc: dict
    sha256: str

    @property
    def heads(self) -> dict[str, tuple[int, str]]:
        return {job_id: (seq, digest) for job_id, seq, digest in self.doc["heads"]}

    def problems(self) -> list[str]:
        """What is wrong with the anchor itself: its signature, its root, its count."""
        doc, found = self.doc, []
        if doc.get("anchor_schema") != ANCHOR_SCHEMA:
            return [f"is not an {ANCHOR_SCHEMA} document"]
        problem = keyring(signing=False).problem(ANCHOR_CONTEXT, _signed_part(doc), doc.get("key_id"),
                                                 doc.get("signature"))
        if problem:
            found.append(problem)
        if merkle_root(doc["heads"]) != doc["root"]:
            found.append("its Merkle root is not the root of the heads it lists")
        if doc["jobs"] != len(doc["heads"]):
            found.append(f"it counts {doc['jobs']} jobs but lists {len(doc['heads'])}")
        previous = doc.get("previous")
        if previous:
            try:
                if sha256_hex(read_artifact(previous["path"])) != previous["sha256"]:
                    found.append(f"the anchor before it, {previous['path']}, has changed")
            except ArtifactNotFound:
                found.append(f"the anchor before it, {previous['path']}, is missing")
        return found


def latest_anchor() -> Anchor | None:
    paths = [p for p in list_artifacts(ANCHOR_DIR) if p.endswith(".json")]
    if not paths:
        return None
    data = read_artifact(paths[-1])
    return Anchor(paths[-1], json.loads(data), sha256_hex(data))


def anchor_heads() -> tuple[Anchor, bool]:
    """Write an anchor of every job's head now, unless nothing moved since the latest: (anchor, written)."""
    heads = job_heads()
    root = merkle_root(heads)
    latest = latest_anchor()
    if latest is not None and latest.doc.get("root") == root:
        return latest, False
    moment = now()
    doc = {
        "anchor_schema": ANCHOR_SCHEMA, "anchored_at": format_time(moment), "jobs": len(heads), "root": root,
        "heads": heads, "previous": {"path": latest.path, "sha256": latest.sha256} if latest else None,
    }
    doc["key_id"], doc["signature"] = keyring().sign(ANCHOR_CONTEXT, _signed_part(doc))
    path = f"{ANCHOR_DIR}/{moment.strftime('%Y%m%dT%H%M%S%fZ')}-{root[:16]}.json"
    data = canonical_json(doc) + b"\n"
    write_artifact(path, data)
    return Anchor(path, doc, sha256_hex(data)), True
