"""The stand-alone verifier's own foundations: its Ed25519 against the `cryptography` package's signatures, its
hash and tree constructions against the service's, and that it imports nothing outside the standard library,
its own folder and the service's pure state rules."""
import io
import json
import os
import random
import subprocess
import tarfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs import anchors, signing
from tools import bundle_format as fmt
from tools.ed25519_verify import public_key_from_pem, verify

from ..conftest import REPO_ROOT


def raw(public) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_ed25519_verify_accepts_every_real_signature_and_refuses_every_altered_one():
    chance = random.Random(19)
    for round_ in range(60):
        key = Ed25519PrivateKey.generate()
        public = raw(key.public_key())
        message = chance.randbytes(chance.randrange(0, 200))
        signature = key.sign(message)
        assert verify(public, message, signature), round_
        flipped = bytearray(signature)
        flipped[chance.randrange(64)] ^= 1 << chance.randrange(8)
        assert not verify(public, message, bytes(flipped))
        assert not verify(public, message + b"x", signature)
        assert not verify(raw(Ed25519PrivateKey.generate().public_key()), message, signature)
    assert not verify(public, message, signature[:63])
    # s >= L (a malleated signature) is refused
    s = int.from_bytes(signature[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    assert s < 2**256 and not verify(public, message, signature[:32] + s.to_bytes(32, "little"))


def test_public_keys_in_pem_are_read_as_the_raw_key():
    key = Ed25519PrivateKey.generate().public_key()
    assert public_key_from_pem(signing.public_pem(key).decode()) == raw(key)


def test_the_format_repeats_the_services_constants_and_trees():
    assert (fmt.EVENT_CONTEXT, fmt.ANCHOR_CONTEXT) == (signing.EVENT_CONTEXT, signing.ANCHOR_CONTEXT)
    assert fmt.ANCHOR_SIGNED_FIELDS == anchors.SIGNED_FIELDS
    for size in (1, 2, 3, 5, 8, 13):
        heads = [[f"{i:012x}", i + 1, f"{i:064x}"] for i in range(size)]
        leaves = [fmt.leaf_hash(*head) for head in heads]
        assert fmt.tree_hash(leaves).hex() == anchors.merkle_root(heads)
        for index in range(size):
            path = fmt.audit_path(leaves, index)
            assert fmt.root_from_path(leaves[index], index, size, path).hex() == anchors.merkle_root(heads)
            assert fmt.root_from_path(leaves[(index + 1) % size], index, size, path).hex() != \
                anchors.merkle_root(heads) or size == 1


def test_the_verifier_imports_only_the_standard_library_its_folder_and_the_pure_state_rules(bare_python):
    probe = (
        "import json, sys, sysconfig\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "before = set(sys.modules)\n"
        "import tools.verify_bundle\n"
        "print(json.dumps({'stdlib': sysconfig.get_paths()['stdlib'], 'modules': sorted("
        "(name, getattr(m, '__file__', None)) for name, m in sys.modules.items() if name not in before)}))\n"
    )
    done = subprocess.run([str(bare_python), "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for name, path in found["modules"]:
        if path is None or path.startswith(found["stdlib"] + os.sep):
            continue  # built in, or the standard library's
        folder = os.path.dirname(path)
        assert folder == str(REPO_ROOT / "tools") or (folder == str(REPO_ROOT / "jobs") and name in (
            "jobs", "jobs.state", "jobs.pipelines")), (name, path)
    assert {"jobs.state", "jobs.pipelines"} <= {name for name, _ in found["modules"]}


def test_paths_outside_the_bundle_links_and_odd_members_are_findings(tmp_path):
    # given a job folder with a symlink in it, and an archive with a `..` member, an absolute one and a link
    from tools import verify_bundle

    folder = tmp_path / "folder" / "0123456789ab"
    folder.mkdir(parents=True)
    (folder / "job_spec.json").write_text("{}\n")
    (tmp_path / "secret").write_text("outside")
    (folder / "outputs").mkdir()
    (folder / "outputs" / "runspec.json").symlink_to(tmp_path / "secret")
    archive = tmp_path / "odd.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, kind in (("0123456789ab/job_spec.json", tarfile.REGTYPE),
                           ("0123456789ab/../../evil", tarfile.REGTYPE), ("/0123456789ab/abs", tarfile.REGTYPE),
                           ("0123456789ab/link", tarfile.SYMTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            data = b"{}\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    # when each is verified
    out = io.StringIO()
    assert verify_bundle.main([str(folder)], out=out) == 1
    assert "FAIL 0123456789ab/outputs/runspec.json: is a symbolic link" in out.getvalue()
    out = io.StringIO()
    assert verify_bundle.main([str(archive)], out=out) == 1

    # then each is named, and nothing was extracted
    report = out.getvalue()
    assert "0123456789ab/../../evil: archive member with a path with an empty, '.' or '..' component" in report
    assert "/0123456789ab/abs: archive member with an absolute or malformed path" in report
    assert "0123456789ab/link: is a link" in report
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
