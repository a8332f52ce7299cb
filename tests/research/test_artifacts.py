"""Artifacts are write-once, written atomically, and never read or written outside the storage root."""
import os
import threading

import pytest

from contracts import sha256_hex
from research.artifacts import (
    json_bytes,
    list_artifacts,
    read_artifact,
    write_artifact,
    write_json_artifact,
)
from research.errors import ArtifactConflict, ArtifactNotFound, UnsafePath

from .builders import stored_files


def test_write_returns_the_reference_and_stores_the_bytes(artifact_root):
    ref = write_artifact("jobs/abc/outputs/x.txt", b"hello\n")

    assert (ref.path, ref.sha256, ref.bytes) == ("jobs/abc/outputs/x.txt", sha256_hex(b"hello\n"), 6)
    assert (artifact_root / "jobs/abc/outputs/x.txt").read_bytes() == b"hello\n"
    assert read_artifact("jobs/abc/outputs/x.txt") == b"hello\n"
    assert stored_files(artifact_root) == ["jobs/abc/outputs/x.txt"]  # no temporary file left behind


def test_same_bytes_again_is_a_no_op_and_other_bytes_conflict(artifact_root):
    first = write_artifact("a/b.txt", b"one")
    assert write_artifact("a/b.txt", b"one") == first

    with pytest.raises(ArtifactConflict, match="a/b.txt already exists with other content"):
        write_artifact("a/b.txt", b"two")

    assert read_artifact("a/b.txt") == b"one"
    assert stored_files(artifact_root) == ["a/b.txt"]


def test_json_artifacts_have_one_byte_form():
    doc = {"b": 1.5, "a": ["é", None, True]}

    assert json_bytes(doc) == b'{\n  "a": [\n    "\xc3\xa9",\n    null,\n    true\n  ],\n  "b": 1.5\n}\n'
    assert write_json_artifact("doc.json", doc).sha256 == sha256_hex(json_bytes({"a": ["é", None, True], "b": 1.5}))
    with pytest.raises(ValueError):
        json_bytes({"x": float("nan")})


@pytest.mark.parametrize(
    "path",
    ["", "../outside.txt", "a/../../outside.txt", "/etc/passwd", "a//b", "./a", "a/./b", "a\\b", "a\x00b",
     "C:/x", "a/b c"],
)
def test_unsafe_paths_are_refused_for_reading_and_writing(artifact_root, path):
    with pytest.raises(UnsafePath):
        write_artifact(path, b"x")
    with pytest.raises(UnsafePath):
        read_artifact(path)

    assert stored_files(artifact_root) == []


def test_a_symlink_leading_out_of_the_root_is_refused(artifact_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    os.symlink(outside, artifact_root / "escape")

    with pytest.raises(UnsafePath, match="outside the artifact root"):
        read_artifact("escape/secret.txt")
    with pytest.raises(UnsafePath, match="outside the artifact root"):
        write_artifact("escape/new.txt", b"x")

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_read_within_a_folder_stays_in_that_folder_through_symlinks(artifact_root, tmp_path):
    # given two job folders, a secret outside the root, and links from job A to both
    write_artifact("jobs/aaaaaaaaaaaa/outputs/runspec.json", b"mine")
    write_artifact("jobs/bbbbbbbbbbbb/outputs/runspec.json", b"theirs")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    outputs = artifact_root / "jobs/aaaaaaaaaaaa/outputs"
    os.symlink(artifact_root / "jobs/bbbbbbbbbbbb/outputs/runspec.json", outputs / "borrowed.json")
    os.symlink(tmp_path / "secret.txt", outputs / "leak.txt")
    os.symlink(outputs / "runspec.json", outputs / "latest.json")
    os.symlink(artifact_root / "jobs/bbbbbbbbbbbb", artifact_root / "jobs/cccccccccccc")
    mine = "jobs/aaaaaaaaaaaa"

    # then a link inside the folder is followed, and every way out of it is "not there"
    assert read_artifact(f"{mine}/outputs/latest.json", within=mine) == b"mine"
    for path, within in ((f"{mine}/outputs/borrowed.json", mine), (f"{mine}/outputs/leak.txt", mine),
                         ("jobs/cccccccccccc/outputs/runspec.json", "jobs/cccccccccccc"),
                         ("jobs/bbbbbbbbbbbb/outputs/runspec.json", mine)):
        with pytest.raises(ArtifactNotFound, match="outside"):
            read_artifact(path, within=within)
    # without a folder, only the root confines: another job's file is readable, the outside is not
    assert read_artifact(f"{mine}/outputs/borrowed.json") == b"theirs"
    with pytest.raises(UnsafePath, match="outside the artifact root"):
        read_artifact(f"{mine}/outputs/leak.txt")


def test_reading_a_missing_artifact_says_so():
    with pytest.raises(ArtifactNotFound, match="nothing/here.txt does not exist"):
        read_artifact("nothing/here.txt")


def _race(n_threads, payload_of):
    barrier = threading.Barrier(n_threads)
    outcomes = [None] * n_threads

    def worker(i):
        barrier.wait()
        try:
            outcomes[i] = write_artifact("race/file.bin", payload_of(i)).sha256
        except ArtifactConflict as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_writers_of_the_same_bytes_all_succeed(artifact_root):
    payload = os.urandom(1 << 20)

    outcomes = _race(8, lambda i: payload)

    assert outcomes == [sha256_hex(payload)] * 8
    assert read_artifact("race/file.bin") == payload
    assert stored_files(artifact_root) == ["race/file.bin"]


def test_concurrent_writers_of_different_bytes_one_wins_the_rest_conflict(artifact_root):
    payloads = [bytes([i]) * 4096 for i in range(8)]

    outcomes = _race(8, lambda i: payloads[i])

    winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, str)]
    assert len(winners) == 1
    assert all(isinstance(outcomes[i], ArtifactConflict) for i in range(8) if i not in winners)
    assert read_artifact("race/file.bin") == payloads[winners[0]]
    assert stored_files(artifact_root) == ["race/file.bin"]


def test_list_artifacts_walks_a_folder():
    write_artifact("d/x/1.txt", b"1")
    write_artifact("d/2.txt", b"2")

    assert list_artifacts("d") == ["d/2.txt", "d/x/1.txt"]
    assert list_artifacts("nothing") == []
