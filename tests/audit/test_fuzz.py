"""Single edits to exported bundles, well over a thousand of them: a byte in an event, an event removed,
reordered or duplicated, an artifact changed or removed, the spec changed, the anchor's proof altered, a holdout
curve added. The verifier detects every one and names the file (and, for events, the seq) at fault. Most run in
process through the verifier's own functions; a handful through the script in a Python without Django."""
import json
import random
import tarfile
import io

import pytest

from tools import bundle_format as fmt
from tools.verify_bundle import verify_job

from ..builders import exported, finished_jobs
from .conftest import verify_offline

pytestmark = pytest.mark.django_db
EDITS_PER_JOB = 660


def event_lines(files) -> list[bytes]:
    return files[fmt.EVENTS].splitlines(keepends=True)


def with_events(files, lines) -> dict:
    return {**files, fmt.EVENTS: b"".join(lines)}


def flip(data: bytes, chance: random.Random, start: int = 0, end: int | None = None) -> tuple[bytes, int]:
    end = len(data) if end is None else end
    at = chance.randrange(start, end)
    new = chance.choice([b for b in range(256) if b != data[at]])
    return data[:at] + bytes([new]) + data[at + 1:], at


def edits(files: dict, chance: random.Random):
    """Yield (what, edited files, file at fault, the seqs a report may name for it or None)."""
    lines = event_lines(files)
    index = json.loads(files[fmt.OUTPUTS_INDEX])
    recorded = [entry["path"] for entry in index["artifacts"] if entry["path"] in files]
    holdout = [s["segment_id"] for s in json.loads(files["dossier/dossier.json"])["segments"] if s["role"] == "holdout"]
    kinds = (["event byte"] * 200 + ["event removed"] * 60 + ["events reordered"] * 60 + ["event duplicated"] * 60
             + ["artifact changed"] * 50 + ["artifact removed"] * 30 + ["spec changed"] * 40
             + ["anchor proof altered"] * 30 + ["holdout curve added"] * 20 + ["state or index byte"] * 10
             + ["any byte of any file"] * 100)
    assert len(kinds) == EDITS_PER_JOB
    for kind in kinds:
        k = chance.randrange(len(lines))
        if kind == "event byte":
            line, _ = flip(lines[k], chance, 0, len(lines[k]) - 1)
            yield kind, with_events(files, lines[:k] + [line] + lines[k + 1:]), fmt.EVENTS, {k + 1}
        elif kind == "event removed":
            yield kind, with_events(files, lines[:k] + lines[k + 1:]), fmt.EVENTS, {k + 1}
        elif kind == "events reordered":
            j = chance.choice([i for i in range(len(lines)) if i != k])
            swapped = list(lines)
            swapped[k], swapped[j] = swapped[j], swapped[k]
            yield kind, with_events(files, swapped), fmt.EVENTS, {min(j, k) + 1}
        elif kind == "event duplicated":
            yield kind, with_events(files, lines[:k + 1] + [lines[k]] + lines[k + 1:]), fmt.EVENTS, {k + 1, k + 2}
        elif kind == "artifact changed":
            path = chance.choice(recorded + [e["path"] for e in index["unrecorded"]])
            yield kind, {**files, path: flip(files[path], chance)[0]}, path, None
        elif kind == "artifact removed":
            path = chance.choice(recorded)
            yield kind, {p: d for p, d in files.items() if p != path}, path, None
        elif kind == "spec changed":
            if chance.random() < 0.5:
                yield kind, {**files, fmt.JOB_SPEC: flip(files[fmt.JOB_SPEC], chance)[0]}, fmt.JOB_SPEC, None
            else:
                spec = json.loads(files[fmt.JOB_SPEC])
                spec.setdefault("extensions", {})["note"] = f"edited {chance.random()}"
                yield kind, {**files, fmt.JOB_SPEC: fmt.json_bytes(spec)}, fmt.JOB_SPEC, None
        elif kind == "anchor proof altered":
            anchor = json.loads(files[fmt.ANCHOR])
            proof = anchor["proof"]
            choice = chance.randrange(4)
            if choice == 0 and proof["path"]:
                i = chance.randrange(len(proof["path"]))
                node = bytearray.fromhex(proof["path"][i])
                node[chance.randrange(32)] ^= 1 << chance.randrange(8)
                proof["path"][i] = node.hex()
            elif choice == 1:
                proof["index"] = (proof["index"] + chance.randrange(1, proof["size"] + 1)) % (proof["size"] + 1)
            elif choice == 2:
                proof["head"] = [proof["head"][0], proof["head"][1] - chance.randrange(1, 4), proof["head"][2]]
            else:
                anchor["anchor"]["root"] = f"{chance.getrandbits(256):064x}"
            yield kind, {**files, fmt.ANCHOR: fmt.json_bytes(anchor)}, fmt.ANCHOR, None
        elif kind == "holdout curve added":
            name = chance.choice(["curve.csv", "trades.csv"])
            path = f"dossier/segments/{holdout[0]}/{name}"
            yield kind, {**files, path: b"date,equity\n2022-01-03,1.0\n"}, path, None
        elif kind == "state or index byte":
            path = chance.choice([fmt.STATE, fmt.OUTPUTS_INDEX])
            yield kind, {**files, path: flip(files[path], chance)[0]}, path, None
        else:  # detected, but not always named by this file: a changed public key fails the signatures it checks
            path = chance.choice(sorted(files))
            yield kind, {**files, path: flip(files[path], chance)[0]}, None, None


def test_every_single_edit_is_detected_and_named(artifact_root, tiny_snapshot, people, tmp_path, bare_python):
    jobs = finished_jobs(people)
    bundles = exported(jobs.values())
    chance = random.Random(1919)
    missed, count, samples = [], 0, []
    for job_id, files in bundles.items():
        assert verify_job(files, job_id).findings == []
        for what, edited, at_fault, seqs in edits(files, chance):
            count += 1
            findings = verify_job(edited, job_id).findings
            named = [f for f in findings if at_fault is None or f.file == at_fault and (seqs is None or f.seq in seqs)]
            if not named:
                missed.append((job_id, what, at_fault, seqs, [str(f) for f in findings][:3]))
            elif len(samples) < 6 and at_fault and what not in [s[1] for s in samples]:
                samples.append((job_id, what, edited, at_fault))
    assert count >= 1000
    assert not missed, f"{len(missed)} of {count} edits not detected or not named: {missed[:5]}"

    # a handful again through the stand-alone script, as an auditor runs it
    for job_id, what, edited, at_fault in samples:
        archive = tmp_path / f"{what.replace(' ', '_')}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path, data in edited.items():
                info = tarfile.TarInfo(f"{job_id}/{path}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        done = verify_offline(bare_python, archive)
        assert done.returncode == 1, (what, done.stdout)
        assert f"FAIL {job_id}/{at_fault}" in done.stdout, (what, done.stdout)
