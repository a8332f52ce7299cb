"""Anchors, outside the database, catch what the event log alone cannot: a job's last events truncated, a whole
job deleted, a chain rewritten consistently (even re-hashed and re-signed by someone holding the key)."""
import io
import json
import subprocess

import pytest
from django.core.management import call_command

from jobs.anchors import ANCHOR_DIR, anchor_heads, job_heads, latest_anchor, merkle_root
from jobs.audit import verify_events as audit
from jobs.events import chain_hash, document_of
from jobs.models import JobEvent, JobState
from jobs.signing import EVENT_CONTEXT, keyring
from jobs.state import apply_event, initial_state, projection_fields

from ..builders import append, failed, guard_off, insert_rows, new_blueprint_job, started, to_runspec_review
from ..conftest import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def anchored(artifact_root):
    """Job A (4 events) and job B (3 events), anchored; each test has its own artifact root."""
    a = new_blueprint_job(fast=13)
    to_runspec_review(a.job_id)
    b = new_blueprint_job(fast=14)
    append(b.job_id, started("compile"), failed("compile", 1))
    anchor, written = anchor_heads()
    assert written
    return a.job_id, b.job_id, anchor


def verify_command(process_env, python) -> subprocess.CompletedProcess:
    return subprocess.run([python, "manage.py", "verify_events"], cwd=REPO_ROOT, env=process_env,
                          capture_output=True, text=True, timeout=120)


def reproject(job_id: str) -> None:
    """Move the projection to whatever the events now say, as an attacker covering their tracks would."""
    state = initial_state("blueprint")
    for row in JobEvent.objects.filter(job_id=job_id).order_by("seq"):
        state = apply_event(state, {"event_type": row.event_type, "step": row.step, "payload": row.payload,
                                    "seq": row.seq, "hash": row.hash})
    JobState.objects.filter(job_id=job_id).update(**projection_fields(state))


def test_an_anchor_lists_every_head_and_is_written_only_when_something_moved(anchored):
    a, b, anchor = anchored
    assert anchor.path.startswith(f"{ANCHOR_DIR}/") and anchor.path.endswith(".json")
    assert anchor.doc["jobs"] == 2 and anchor.doc["previous"] is None
    heads = {job_id: (seq, digest) for job_id, seq, digest in job_heads()}
    assert anchor.heads == heads and heads[a][0] == 4 and heads[b][0] == 3
    assert anchor.doc["root"] == merkle_root(sorted([job_id, *head] for job_id, head in heads.items()))
    assert anchor.problems() == []

    # nothing moved: no new anchor
    assert anchor_heads() == (latest_anchor(), False)

    # job B moved: a new anchor that names the one before it
    append(b, started("compile", 2))
    out = io.StringIO()
    call_command("anchor_heads", stdout=out)
    newer = latest_anchor()
    assert out.getvalue().startswith(f"wrote {newer.path}: 2 job(s), root {newer.doc['root']}")
    assert newer.path > anchor.path and newer.heads[b][0] == 4
    assert newer.doc["previous"] == {"path": anchor.path, "sha256": anchor.sha256}
    assert audit() == (2, [])


def test_merkle_root_follows_rfc_6962():
    # the tree of three leaves is ((l0, l1), l2); of none, sha256 of nothing
    import hashlib
    from jobs.anchors import leaf_hash

    heads = [["aaaaaaaaaaaa", 1, "1" * 64], ["bbbbbbbbbbbb", 2, "2" * 64], ["cccccccccccc", 3, "3" * 64]]
    l0, l1, l2 = (leaf_hash(*head) for head in heads)
    left = hashlib.sha256(b"\x01" + l0 + l1).digest()
    assert merkle_root(heads) == hashlib.sha256(b"\x01" + left + l2).hexdigest()
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()


def test_a_truncated_tail_is_reported_though_the_projection_was_fixed_to_match(artifact_root, process_env, python, anchored):
    # given job A's last two events deleted and its projection moved back to match
    a, b, anchor = anchored
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE job_id = %s AND seq > 2", [a])
    reproject(a)

    result = verify_command(process_env, python)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAIL job {a} seq 4: the log ends at seq 2, but anchor {anchor.path} recorded seq 4 (events removed)"
            in result.stdout)
    assert result.stdout.count("FAIL") == 1 and b not in result.stdout


def test_a_deleted_job_is_reported(artifact_root, process_env, python, anchored):
    # given job B removed altogether: events, projection and spec
    a, b, anchor = anchored
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE job_id = %s", [b])
    JobState.objects.filter(job_id=b).delete()
    with guard_off("no_delete", "jobs_jobspec") as cursor:
        cursor.execute("DELETE FROM jobs_jobspec WHERE job_id = %s", [b])

    result = verify_command(process_env, python)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAIL job {b}: anchor {anchor.path} recorded this job at seq 3, but it is not in the database "
            "(deleted)" in result.stdout)
    assert result.stdout.count("FAIL") == 1


def test_a_consistent_rewrite_re_hashed_and_re_signed_is_reported_by_the_anchor_alone(artifact_root, process_env, python, anchored):
    # given job A's seq 2 rewritten and every later event re-hashed and re-signed with the real key, the
    # projection moved to match: the chain, the signatures and the projection are all consistent again
    a, _, anchor = anchored
    rows = list(JobEvent.objects.filter(job_id=a).order_by("seq"))
    rows[1].payload = {**rows[1].payload, "worker": "mallory"}
    keys = keyring()
    for previous, row in zip([None, *rows], rows):
        if previous is not None:
            row.prev_hash = previous.hash
        row.hash = chain_hash(row.prev_hash, document_of(row))
        row.key_id, row.signature = keys.sign(EVENT_CONTEXT, row.hash.encode())
    with guard_off("no_delete") as cursor:
        cursor.execute("DELETE FROM jobs_jobevent WHERE job_id = %s AND seq >= 2", [a])
    insert_rows(rows[1:])
    reproject(a)
    assert [str(f) for f in audit([a])[1] if "anchor" not in f.problem] == []

    result = verify_command(process_env, python)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"FAIL job {a} seq 4: the event's hash is not the one anchor {anchor.path} recorded (the chain was "
            "rewritten)" in result.stdout)
    assert result.stdout.count("FAIL") == 1


@pytest.mark.parametrize("change", ["heads", "signature", "previous"])
def test_an_altered_anchor_is_reported(anchored, artifact_root, change):
    a, b, anchor = anchored
    append(b, started("compile", 2))
    newer, _ = anchor_heads()
    path = artifact_root / newer.path
    doc = json.loads(path.read_text())
    if change == "heads":  # the attacker's truncation, written into the anchor too
        doc["heads"] = [head for head in doc["heads"] if head[0] != a]
        doc["jobs"] = 1
    elif change == "signature":
        doc["signature"] = "00" * 64
    else:
        (artifact_root / anchor.path).write_text("{}")
    path.write_text(json.dumps(doc))

    problems = [str(f) for f in audit()[1] if f.job_id is None]

    expected = {
        "heads": "the signature does not verify",
        "signature": "the signature does not verify",
        "previous": f"the anchor before it, {anchor.path}, has changed",
    }[change]
    assert any(expected in p for p in problems), problems


def test_verify_events_says_which_anchor_agreed(artifact_root, process_env, python, anchored):
    _, _, anchor = anchored
    result = verify_command(process_env, python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"every hash chain intact and signed; anchor {anchor.path} (2 job(s)) agrees" in result.stdout
