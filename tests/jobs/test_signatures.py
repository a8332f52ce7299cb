"""Every event is signed with a key outside the database: whoever holds only the database role can insert a
correctly hashed event and fix the projection to match, but `verify_events` names the event and its key."""
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs import signing
from jobs.audit import verify_events as audit
from jobs.models import JobEvent, JobState
from jobs.signing import EVENT_CONTEXT, KeyProblem, keyring

from ..builders import append, failed, forged_event, new_blueprint_job, started, to_runspec_review
from ..conftest import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def write_key(folder, name: str) -> tuple[str, str]:
    """(private key file, public key file) of a new Ed25519 key."""
    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(signing.public_pem(key.public_key()))
    return str(private), str(public)


def verify_command(process_env, python, *args) -> subprocess.CompletedProcess:
    return subprocess.run([python, "manage.py", "verify_events", *args], cwd=REPO_ROOT, env=process_env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def waiting():
    """A job waiting at its runspec checkpoint: seq 4 is WAITING_APPROVAL."""
    job = new_blueprint_job(fast=11)
    to_runspec_review(job.job_id)
    return job.job_id


def test_every_appended_event_is_signed_by_the_configured_key(waiting):
    keys = keyring(signing=False)
    rows = list(JobEvent.objects.filter(job_id=waiting).order_by("seq"))
    assert [row.key_id for row in rows] == [keys.signing_id] * 4
    for row in rows:
        assert keys.problem(EVENT_CONTEXT, row.hash.encode(), row.key_id, row.signature) is None
    assert audit([waiting]) == (1, [])


@pytest.mark.parametrize("signed_with", ["nothing", "another key under our key id", "another key id"])
def test_an_approval_forged_with_the_database_role_alone_is_named(process_env, python, waiting, signed_with):
    # given an APPROVED by a reviewer who never existed, hashed correctly, inserted with plain SQL, and the
    # projection moved to match it: what the application's role can do without the private key
    ours = keyring(signing=False).signing_id
    attacker = Ed25519PrivateKey.generate()
    head = JobState.objects.get(job_id=waiting)
    key_id = {"nothing": None, "another key under our key id": ours, "another key id": "mallory"}[signed_with]
    forged_event(waiting, "APPROVED", step="runspec", actor={"kind": "user", "id": "ghost"},
                 payload={"comment": "", "artifact_sha256": head.review_sha256}, key_id=key_id,
                 signer=attacker if key_id else None)
    assert JobState.objects.get(job_id=waiting).status == "queued"  # the forgery looks like a real approval

    # when verify_events runs, then it exits 1 naming the job, the seq and the key
    result = verify_command(process_env, python)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = {
        "nothing": "APPROVED: not signed",
        "another key under our key id": f"APPROVED: the signature does not verify with key {ours}",
        "another key id": "APPROVED: signed with key mallory, which is not a known public key",
    }[signed_with]
    assert f"FAIL job {waiting} seq 5: {expected}" in result.stdout
    assert result.stdout.count("FAIL") == 1, result.stdout


def test_keys_rotate_and_a_retired_key_verifies_with_its_public_half_alone(settings, tmp_path):
    # given a job whose events are signed by key one
    one, one_public = write_key(tmp_path, "one")
    two, _ = write_key(tmp_path, "two")
    settings.EAM_SIGNING_KEYS = {"one": one}
    waiting = new_blueprint_job(fast=12).job_id
    append(waiting, started("compile"))

    # when key two is added after it, then two signs and both verify
    settings.EAM_SIGNING_KEYS = {"one": one, "two": two}
    append(waiting, failed("compile", 1))
    signers = list(JobEvent.objects.filter(job_id=waiting).order_by("seq").values_list("key_id", flat=True))
    assert signers == ["one", "one", "two"]
    assert audit([waiting]) == (1, [])

    # when key one's private half is destroyed and only its public key is kept, then everything still verifies
    # and nothing can be signed with one any more
    settings.EAM_SIGNING_KEYS = {"two": two}
    settings.EAM_PUBLIC_KEYS = {"one": one_public}
    keys = keyring(signing=False)
    assert keys.signing_id == "two" and "one" in keys.public
    assert audit([waiting]) == (1, [])

    # when key one is forgotten altogether, then its event is reported as signed by an unknown key
    settings.EAM_PUBLIC_KEYS = {}
    problems = [str(f) for f in audit([waiting])[1]]
    assert problems == [f"job {waiting} seq {seq}: {kind}: signed with key one, which is not a known public key "
                        "(EAM_SIGNING_KEYS, EAM_PUBLIC_KEYS)" for seq, kind in ((1, "BLUEPRINT_SUBMITTED"),
                                                                                 (2, "STEP_STARTED"))]


def test_an_auditor_with_public_keys_only_verifies_and_cannot_sign(settings, tmp_path, waiting):
    # given the public key of the key that signed, and no private key and no development key
    public = tmp_path / "signer.pub.pem"
    public.write_bytes(signing.public_pem(keyring(signing=False).public[keyring(signing=False).signing_id]))
    signer = keyring(signing=False).signing_id
    settings.EAM_SIGNING_KEYS, settings.EAM_PUBLIC_KEYS = {}, {signer: str(public)}
    settings.EAM_KEY_DIR = str(tmp_path / "no-keys-here")

    keys = keyring(signing=False)
    assert keys.signing_key is None
    assert audit([waiting]) == (1, [])
    with pytest.raises(KeyProblem, match="no signing key"):
        keys.sign(EVENT_CONTEXT, b"anything")
    assert not (tmp_path / "no-keys-here").exists()  # a verifier never generates a key


def test_an_unreadable_signing_key_is_a_clear_error(settings, tmp_path):
    settings.EAM_SIGNING_KEYS = {"prod": str(tmp_path / "missing.pem")}
    with pytest.raises(KeyProblem, match=r"signing key prod: cannot read .*missing.pem"):
        keyring()
    not_ed25519 = tmp_path / "rsa.pem"
    not_ed25519.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings.EAM_SIGNING_KEYS = {"prod": str(not_ed25519)}
    with pytest.raises(KeyProblem, match="signing key prod"):
        keyring()


def test_the_development_key_is_generated_once_private_and_shared_by_processes_starting_together(tmp_path):
    # when four processes ask for the development key of an empty folder at the same moment
    script = ("import sys; from jobs.signing import development_key; "
              "print(development_key(sys.argv[1], create=True)[0])")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ids = {process.communicate(timeout=60)[0].strip() for process in processes}

    # then they agree on one key, kept in one file only the owner may read, and nothing else is left behind
    assert len(ids) == 1 and ids.pop().startswith("dev-")
    assert [p.name for p in tmp_path.iterdir()] == ["signing-dev.pem"]
    assert os.stat(tmp_path / "signing-dev.pem").st_mode & 0o777 == 0o600
