"""Artifacts are write-once, written atomically, and never read or written outside the storage root."""
import os
import threading

import pytest

from contracts import sha256_hex
from research.artifacts import (
    durable_together,
    json_bytes,
    list_artifacts,
    read_artifact,
    write_artifact,
    write_json_artifact,
)
from research.errors import ArtifactConflict, ArtifactNotFound, UnsafePath

from ..builders import stored_files


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


def _identity(path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


@pytest.fixture
def fsynced(monkeypatch) -> list[tuple[int, int]]:
    """The (device, inode) of every file or folder fsynced from now on, in order; each is still fsynced."""
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(_identity(fd))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_step_fsyncs_its_files_and_each_folder_that_gained_an_entry_once_when_it_ends(artifact_root, fsynced):
    # given a job folder that exists before the step
    write_artifact("jobs/abc/job_spec.json", b"{}")
    fsynced.clear()

    # when a step writes three files in new folders and one file that is already there
    with durable_together():
        write_artifact("jobs/abc/outputs/a.json", b"a")
        write_artifact("jobs/abc/outputs/b.json", b"b")
        write_artifact("jobs/abc/outputs/agents/x/run.json", b"x")
        write_artifact("jobs/abc/job_spec.json", b"{}")  # the same bytes: nothing written
        assert fsynced == []  # nothing before the block ends

    # then each file written and each folder that gained an entry is fsynced, once
    files = ["jobs/abc/outputs/a.json", "jobs/abc/outputs/b.json", "jobs/abc/outputs/agents/x/run.json"]
    folders = ["jobs/abc", "jobs/abc/outputs", "jobs/abc/outputs/agents", "jobs/abc/outputs/agents/x"]
    assert sorted(fsynced) == sorted(_identity(artifact_root / p) for p in files + folders)


def test_a_write_outside_a_step_is_durable_when_it_returns(artifact_root, fsynced):
    write_artifact("a/b/c.txt", b"c")

    assert sorted(fsynced) == sorted(_identity(p) for p in (artifact_root / "a/b/c.txt", artifact_root / "a/b",
                                                          artifact_root / "a", artifact_root))


def test_a_step_that_fails_fsyncs_nothing(artifact_root, fsynced):
    with pytest.raises(RuntimeError):
        with durable_together():
            write_artifact("jobs/abc/outputs/a.json", b"a")
            raise RuntimeError("the step failed")

    assert fsynced == []


def test_a_step_looks_at_each_folder_for_symlinks_once(artifact_root, tmp_path, monkeypatch):
    # given a dossier folder, and a link out of the root beside it
    write_artifact("dossiers/r/segments/s1/metrics.json", b"1")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", artifact_root / "dossiers/r/escape")
    looked, real_lstat = [], os.lstat

    def lstat(path, *args, **kwargs):
        looked.append(os.fspath(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)

    # when a step reads and writes many files in the same folders
    with durable_together():
        for segment in ("s1", "s2", "s3"):
            write_artifact(f"dossiers/r/segments/{segment}/curve.csv", b"c")
            write_artifact(f"dossiers/r/segments/{segment}/trades.csv", b"t")
            assert read_artifact(f"dossiers/r/segments/{segment}/curve.csv", within="dossiers/r") == b"c"
        seen = list(looked)
        # a link is looked at each time, never remembered as a folder
        for _ in range(2):
            with pytest.raises(UnsafePath, match="outside the artifact root"):
                write_artifact("dossiers/r/escape/new.txt", b"x")

    # then each folder was looked at once at most
    folders = [path for path in seen if os.path.isdir(path)]
    below_root = [path for path in folders if path.startswith(str(artifact_root) + os.sep)]
    assert sorted(below_root) == [str(artifact_root / p) for p in (
        "dossiers", "dossiers/r", "dossiers/r/segments",
        "dossiers/r/segments/s1", "dossiers/r/segments/s2", "dossiers/r/segments/s3",  # s2, s3: not there yet
    )]
    assert not (tmp_path / "outside/new.txt").exists()

    # and the next step looks again
    looked.clear()
    with durable_together():
        read_artifact("dossiers/r/segments/s2/curve.csv")
    assert str(artifact_root / "dossiers/r/segments") in looked


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
