"""Artifacts in an S3 bucket (a local S3 server): write-once, checked on read, confined, logs only appended to."""
import os
import subprocess
import sys
import threading

import pytest

from contracts import sha256_hex
from research import s3_artifacts
from research.artifacts import (
    artifact_storage,
    extend_artifact,
    list_artifacts,
    read_artifact,
    read_json_artifact,
    replace_derived,
    write_artifact,
    write_json_artifact,
)
from research.errors import ArtifactConflict, ArtifactNotFound, IntegrityFailure, UnsafePath

from ..conftest import REPO_ROOT


def settings_in_a_process(**env) -> subprocess.CompletedProcess:
    """eam_site.settings loaded in a fresh process with `env`: its artifact storage printed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EAM_S3_", "EAM_ARTIFACT_STORAGE"))}
    code = "from eam_site import settings; print(settings.STORAGES['artifacts'])"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**base, "SECRET_KEY": "x", **env},
                          capture_output=True, text=True, timeout=60)


def test_the_settings_put_artifacts_in_the_bucket_the_environment_names():
    chosen = settings_in_a_process(EAM_ARTIFACT_STORAGE="s3", EAM_S3_BUCKET="b1", EAM_S3_PREFIX="prod",
                                   EAM_S3_ENDPOINT_URL="http://127.0.0.1:9")
    assert chosen.returncode == 0, chosen.stderr
    assert "storages.backends.s3.S3Storage" in chosen.stdout and "'bucket_name': 'b1'" in chosen.stdout, chosen.stdout
    assert "'location': 'prod'" in chosen.stdout and "secret" not in chosen.stdout.lower(), chosen.stdout

    for env, said in (({"EAM_ARTIFACT_STORAGE": "s3"}, "EAM_S3_BUCKET"),
                      ({"EAM_ARTIFACT_STORAGE": "ftp"}, "filesystem or s3")):
        refused = settings_in_a_process(**env)
        assert refused.returncode != 0, refused.stdout
        assert "ImproperlyConfigured" in refused.stderr and said in refused.stderr, refused.stderr[-2000:]


def test_the_artifact_storage_is_the_bucket(s3_bucket):
    assert s3_artifacts.handles(artifact_storage())


def test_write_stores_the_bytes_under_the_prefix_and_returns_the_reference(s3_bucket):
    ref = write_artifact("jobs/abc/outputs/x.txt", b"hello\n")

    assert (ref.path, ref.sha256, ref.bytes) == ("jobs/abc/outputs/x.txt", sha256_hex(b"hello\n"), 6)
    assert s3_bucket.get("jobs/abc/outputs/x.txt") == b"hello\n"
    assert read_artifact("jobs/abc/outputs/x.txt") == b"hello\n"
    assert s3_bucket.keys() == ["jobs/abc/outputs/x.txt"]


def test_same_bytes_again_is_a_no_op_and_other_bytes_conflict(s3_bucket):
    first = write_artifact("a/b.txt", b"one")
    assert write_artifact("a/b.txt", b"one") == first

    with pytest.raises(ArtifactConflict, match="a/b.txt already exists with other content"):
        write_artifact("a/b.txt", b"two")

    assert s3_bucket.get("a/b.txt") == b"one"
    assert s3_bucket.keys() == ["a/b.txt"]  # no renamed copy beside it


def test_an_object_created_by_another_writer_first_is_never_overwritten(s3_bucket):
    # given another writer created the key first (a racing worker, say)
    s3_bucket.put("race/file.bin", b"theirs")

    # when a conditional create comes second, it creates nothing and reports what is there
    assert s3_artifacts.create(artifact_storage(), "race/file.bin", b"mine") == b"theirs"
    with pytest.raises(ArtifactConflict):
        write_artifact("race/file.bin", b"mine")

    # then the first writer's bytes stay
    assert s3_bucket.get("race/file.bin") == b"theirs"


def test_concurrent_writers_of_the_same_bytes_all_succeed(s3_bucket):
    payload = b"x" * 10_000
    barrier, outcomes = threading.Barrier(4), [None] * 4

    def worker(i):
        barrier.wait()
        try:
            outcomes[i] = write_artifact("race/same.bin", payload).sha256
        except ArtifactConflict as error:
            outcomes[i] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [sha256_hex(payload)] * 4
    assert s3_bucket.keys() == ["race/same.bin"]


def test_an_object_changed_behind_the_storage_s_back_fails_the_sha256_check(s3_bucket):
    ref = write_json_artifact("jobs/abc/outputs/runspec.json", {"fast": 10})
    s3_bucket.put("jobs/abc/outputs/runspec.json", b'{"fast": 11}\n')

    with pytest.raises(IntegrityFailure, match="has changed since it was recorded"):
        read_json_artifact("jobs/abc/outputs/runspec.json", sha256=ref.sha256)


@pytest.mark.parametrize(
    "path",
    ["", "../outside.txt", "a/../../outside.txt", "jobs/x/../y", "/etc/passwd", "a//b", "./a", "a/./b", "a\\b",
     "a\x00b", "C:/x", "a/b c", "a/"],
)
def test_unsafe_paths_are_refused_for_reading_and_writing(s3_bucket, path):
    for write in (write_artifact, extend_artifact, replace_derived):
        with pytest.raises(UnsafePath):
            write(path, b"x")
    with pytest.raises(UnsafePath):
        read_artifact(path)

    assert s3_bucket.keys() == []


def test_a_read_within_a_folder_stays_in_that_folder(s3_bucket):
    write_artifact("jobs/bbbbbbbbbbbb/outputs/runspec.json", b"theirs")

    with pytest.raises(ArtifactNotFound, match="outside"):
        read_artifact("jobs/bbbbbbbbbbbb/outputs/runspec.json", within="jobs/aaaaaaaaaaaa")
    with pytest.raises(ArtifactNotFound, match="does not exist"):
        read_artifact("jobs/aaaaaaaaaaaa/outputs/runspec.json", within="jobs/aaaaaaaaaaaa")


def test_an_object_outside_the_prefix_is_not_an_artifact(s3_bucket):
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="elsewhere/secret.txt", Body=b"secret")

    with pytest.raises(ArtifactNotFound):
        read_artifact("elsewhere/secret.txt")
    assert list_artifacts("elsewhere") == []


def test_a_log_is_only_appended_to(s3_bucket):
    extend_artifact("jobs/abc/rerun_log.jsonl", b"1\n")
    extend_artifact("jobs/abc/rerun_log.jsonl", b"1\n2\n")
    extend_artifact("jobs/abc/rerun_log.jsonl", b"1\n2\n")  # nothing missing: nothing written
    assert s3_bucket.get("jobs/abc/rerun_log.jsonl") == b"1\n2\n"

    # a log changed behind the storage's back (not only appended to) is refused, and left as it is
    s3_bucket.put("jobs/abc/rerun_log.jsonl", b"1\nX\n")
    with pytest.raises(ArtifactConflict, match="it was changed, not only appended to"):
        extend_artifact("jobs/abc/rerun_log.jsonl", b"1\n2\n3\n")
    assert s3_bucket.get("jobs/abc/rerun_log.jsonl") == b"1\nX\n"


def test_an_append_raced_by_another_writer_is_checked_again_before_it_replaces_anything(s3_bucket):
    # given a log, and another writer that appends its own line while ours checks the log
    extend_artifact("log.jsonl", b"1\n")
    looked = []

    def check(existing):
        looked.append(existing)
        if len(looked) == 1:
            s3_bucket.put("log.jsonl", b"1\nTHEIRS\n")
        if not b"1\nOURS\n".startswith(existing):
            raise ArtifactConflict("changed")

    # when ours tries to append after that, its PUT (if the object is still the one it read) fails
    with pytest.raises(ArtifactConflict):
        s3_artifacts.extend(artifact_storage(), "log.jsonl", b"1\nOURS\n", check)

    # then it read the log again, refused, and the other writer's line stays
    assert looked == [b"1\n", b"1\nTHEIRS\n"]
    assert s3_bucket.get("log.jsonl") == b"1\nTHEIRS\n"


def test_a_derived_file_is_replaced(s3_bucket):
    replace_derived("jobs/abc/rerun_state.json", b"{}\n")
    replace_derived("jobs/abc/rerun_state.json", b'{"n": 1}\n')

    assert read_artifact("jobs/abc/rerun_state.json") == b'{"n": 1}\n'
    assert s3_bucket.keys() == ["jobs/abc/rerun_state.json"]


def test_list_artifacts_walks_a_folder(s3_bucket):
    write_artifact("d/x/1.txt", b"1")
    write_artifact("d/2.txt", b"2")
    write_artifact("dd/3.txt", b"3")
    s3_bucket.put("d/.tmp-abc.part", b"partial")

    assert list_artifacts("d") == ["d/2.txt", "d/x/1.txt"]
    assert list_artifacts("nothing") == []


def test_reading_a_missing_artifact_says_so(s3_bucket):
    with pytest.raises(ArtifactNotFound, match="nothing/here.txt does not exist"):
        read_artifact("nothing/here.txt")
