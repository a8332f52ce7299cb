"""Finished jobs exported as audit bundles and verified offline: the stand-alone script in a Python that has no
Django, the management command, determinism to the byte, an incremental tail, and the auditor's own keys."""
import io
import json
import tarfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs import reruns
from jobs.bundles import archive_bytes, bundle_files
from jobs.models import JobState
from tools import bundle_format as fmt
from tools import verify_bundle

from workflow.orchestrator import run_pass

from ..builders import as_actor, exported, finished_jobs, idea_worker
from .conftest import verify_offline

pytestmark = pytest.mark.django_db


def tree(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_finished_jobs_export_deterministically_and_verify_offline(artifact_root, tiny_snapshot, people, tmp_path,
                                                                  bare_python):
    # given a blueprint job run to DONE and an idea job with reruns and children, anchored
    jobs = finished_jobs(people)
    ids = sorted(jobs.values())

    # when each is exported twice to folders and twice to archives
    for name in ("one", "two"):
        call_command("export_job", *ids, "--root", str(tmp_path / name), stdout=io.StringIO())
        call_command("export_job", *ids, "--archive", str(tmp_path / f"{name}.tar.gz"), stdout=io.StringIO())

    # then the folders and the archives are byte-identical, and the archive holds the folders' files
    assert tree(tmp_path / "one") == tree(tmp_path / "two")
    archive = (tmp_path / "one.tar.gz").read_bytes()
    assert archive == (tmp_path / "two.tar.gz").read_bytes() == archive_bytes(exported(ids))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
        assert {m.name: tar.extractfile(m).read() for m in members if m.isfile()} == tree(tmp_path / "one")
    assert archive[4:8] == b"\0\0\0\0"  # gzip mtime 0

    # and the layout is the file store's, with the idea job's reruns and the holdout's metrics only
    idea = tree(tmp_path / "one" / jobs["idea"])
    for name in ("job_spec.json", "inputs/idea_spec.json", "events.jsonl", "outputs/policy_bundle_ref.json",
                 "outputs/runspec.json", "outputs/gate_results.json", "outputs/outputs.json",
                 "outputs/reruns/rerun_log.jsonl", "dossier/dossier.json", "dossier/segments/holdout/metrics.json",
                 "anchor.json", "keys.json", "state.json"):
        assert name in idea, name
    assert any(p.startswith("outputs/agents/report/reruns/") for p in idea)
    assert any(p.startswith("outputs/trace_preview/") for p in idea)
    assert not [p for p in idea if p.startswith("dossier/segments/holdout/") and not p.endswith("metrics.json")]
    lines = idea["events.jsonl"].splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert all(line == fmt.canonical_json(json.loads(line)) for line in lines)
    assert json.loads(idea["anchor.json"])["covered"] is True
    assert b"PRIVATE" not in idea["keys.json"]
    assert json.loads(idea["state.json"])["state"]["status"] == JobState.objects.get(job_id=jobs["idea"]).status

    # and the stand-alone script, in a Python without Django, passes both the folders and the archive
    for path in (tmp_path / "one", tmp_path / "one" / jobs["blueprint"], tmp_path / "one.tar.gz"):
        done = verify_offline(bare_python, path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(line.startswith("OK ") for line in done.stdout.splitlines()), done.stdout
    done = verify_offline(bare_python, tmp_path / "one.tar.gz")
    assert len(done.stdout.splitlines()) == 2 and "state done" in done.stdout

    # and so does the management command, which runs the same code
    out = io.StringIO()
    call_command("verify_bundle", str(tmp_path / "one.tar.gz"), stdout=out)
    assert out.getvalue().count("OK ") == 2


def test_an_incremental_tail_verifies_and_a_missing_anchor_is_said(artifact_root, tiny_snapshot, people, tmp_path):
    jobs = finished_jobs(people)
    job_id = jobs["blueprint"]
    call_command("export_job", job_id, "--root", str(tmp_path), "--since-seq", "5", stdout=io.StringIO())
    files = tree(tmp_path / job_id)
    assert [json.loads(line)["seq"] for line in files["events.jsonl"].splitlines()][0] == 6
    report = verify_bundle.verify_job(files, job_id)
    assert report.findings == [] and "seq 6-" in report.summary and "tail" in report.summary

    # a tail whose first event was dropped is refused
    files["events.jsonl"] = b"".join(files["events.jsonl"].splitlines(keepends=True)[1:])
    assert any(f.file == "events.jsonl" and f.seq == 6 for f in verify_bundle.verify_job(files, job_id).findings)

    with pytest.raises(CommandError):
        call_command("export_job", job_id, "--since-seq", "999", "--root", str(tmp_path), stdout=io.StringIO())

    # a tail that starts after the latest anchor's head: the anchor proves what came before it
    idea = jobs["idea"]
    anchored = JobState.objects.get(job_id=idea).last_seq
    reruns.request_rerun(job_id=idea, agent_id="report", actor=as_actor(people.operator), reason="later")
    run_pass(idea_worker(), job_ids=[idea])
    files = bundle_files(idea, since_seq=anchored)
    report = verify_bundle.verify_job(files, idea)
    assert report.findings == [] and f"proves seq {anchored}, before this tail" in report.summary


def test_a_job_no_anchor_covers_says_so(artifact_root, people, tmp_path):
    from ..builders import MONTH, SNAPSHOT, a_snapshot, done_job

    a_snapshot(SNAPSHOT, span=MONTH)
    job = done_job(people.submitter, "not anchored")
    files = exported([job.job_id])[job.job_id]
    assert json.loads(files["anchor.json"]) == {"bundle_schema": fmt.BUNDLE_SCHEMA, "covered": False,
                                                "reason": json.loads(files["anchor.json"])["reason"]}
    report = verify_bundle.verify_job(files, job.job_id)
    assert "runspec.json" in str(report.findings)  # done_job records a runspec it never wrote
    assert "no anchor covers this job" in report.summary


def test_the_auditors_keys_take_precedence_over_the_bundles(artifact_root, tiny_snapshot, people, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    jobs = finished_jobs(people)
    job_id = jobs["blueprint"]
    files = exported([job_id])[job_id]
    key_id, entry = next(iter(json.loads(files["keys.json"])["keys"].items()))
    (tmp_path / "mine.json").write_text(json.dumps({key_id: entry["public_key"]}))
    call_command("export_job", job_id, "--root", str(tmp_path / "b"), stdout=io.StringIO())
    assert verify_bundle.main([str(tmp_path / "b"), "--keys", str(tmp_path / "mine.json")], out=io.StringIO()) == 0

    # another key under the same id (in PEM, as an auditor may hold it): every event and the anchor fail
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    (tmp_path / "theirs.json").write_text(json.dumps({key_id: other}))
    out = io.StringIO()
    assert verify_bundle.main([str(tmp_path / "b"), "--keys", str(tmp_path / "theirs.json")], out=out) == 1
    report = out.getvalue()
    assert "keys.json" in report and "anchor.json" in report and "events.jsonl seq 1:" in report


def test_exporting_into_the_artifact_storages_jobs_folder_twice_gives_the_same_bundle(artifact_root, tiny_snapshot,
                                                                                    people, settings):
    # given the default export root: EAM_JOB_ROOT is the artifact storage's jobs/ folder, beside the artifacts
    settings.EAM_JOB_ROOT = str(artifact_root / "jobs")
    jobs = finished_jobs(people)
    job_id = jobs["idea"]

    # when the job is exported there twice
    call_command("export_job", job_id, stdout=io.StringIO())
    first = tree(artifact_root / "jobs" / job_id)
    call_command("export_job", job_id, stdout=io.StringIO())

    # then the bundle's own files are not read back as the job's, the second export is the first, and it verifies
    assert tree(artifact_root / "jobs" / job_id) == first
    assert exported([job_id])[job_id] == {path: data for path, data in first.items()}
    assert verify_bundle.main([str(artifact_root / "jobs" / job_id)], out=io.StringIO()) == 0


def test_verify_bundle_command_fails_with_the_report_on_a_changed_bundle(artifact_root, tiny_snapshot, people,
                                                                         tmp_path):
    jobs = finished_jobs(people)
    job_id = jobs["blueprint"]
    call_command("export_job", job_id, "--root", str(tmp_path), stdout=io.StringIO())
    (tmp_path / job_id / "outputs" / "gate_results.json").write_bytes(b"{}\n")
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_bundle", str(tmp_path / job_id), stdout=out)
    assert raised.value.returncode == 1
    assert f"FAIL {job_id}/outputs/gate_results.json seq " in out.getvalue()
