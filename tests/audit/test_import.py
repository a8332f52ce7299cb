"""`manage.py import_jobstore`: a hand-written store of the original file-based JobStore (unsigned job_event_v1
events) imports, derives the right state and re-exports; malformed stores are refused with the reason and write
nothing; a store already imported is skipped."""
import io
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.events import IMPORTER, PROVENANCE
from jobs.models import JobEvent, JobState
from tools.verify_bundle import verify_job

from ..builders import a_v1_store, client_for, exported, rewrite_events, session_client, store_snapshot, stored_files

pytestmark = pytest.mark.django_db


def import_jobstore(path) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("import_jobstore", str(path), stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_a_v1_file_store_imports_derives_its_state_and_re_exports(artifact_root, people, tmp_path):
    job_id, folder = a_v1_store(tmp_path / "store")

    code, report = import_jobstore(tmp_path / "store")

    assert code == 0 and f"{job_id}  imported  {job_id}: 12 events" in report, report
    state = JobState.objects.get(job_id=job_id)
    assert (state.status, state.verdict, state.last_seq) == ("done", "PASS", 12)
    rows = list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))
    first = rows[0].payload[PROVENANCE]
    assert first == {"source": "jobstore", "schema_version": "job_event_v1", "seq": 1,
                     "recorded_at": "2024-03-01T10:01:00Z", "actor": {"kind": "user", "id": "carla"},
                     "prev_hash": "0" * 64, "hash": first["hash"]}
    assert rows[4].payload[PROVENANCE]["actor"] == {"kind": "user", "id": "dmitri"}
    assert {row.actor["id"] for row in rows} == {IMPORTER.id} and all(row.signature for row in rows)
    assert (artifact_root / f"jobs/{job_id}/outputs/runspec.json").read_bytes() == \
        (folder / "outputs/runspec.json").read_bytes()
    detail = client_for(people.reviewer).get(f"/jobs/{job_id}").json()
    assert detail["imported"] is True

    # and it re-exports to a bundle that verifies
    files = exported([job_id])[job_id]
    report = verify_job(files, job_id)
    assert report.findings == [] and "state done" in report.summary

    # importing it again is skipped and writes nothing
    before, files_before = store_snapshot(), stored_files(artifact_root)
    code, report = import_jobstore(tmp_path / "store")
    assert code == 0 and "skipped" in report
    assert store_snapshot() == before and stored_files(artifact_root) == files_before


def test_a_job_born_here_is_not_marked_imported(artifact_root, people, tiny_snapshot):
    from ..builders import an_idea_job_at

    job_id = an_idea_job_at("blueprint", people)
    assert client_for(people.reviewer).get(f"/jobs/{job_id}").json()["imported"] is False


def gap(lines):
    return lines[:5] + lines[6:]


def unknown_type(lines):
    lines[3]["event_type"] = "TELEPORTED"
    return lines


@pytest.mark.parametrize("break_it, reason", [
    (lambda folder: rewrite_events(folder, gap), "seq gap or disorder: line 6 has seq 7, expected 6"),
    (lambda folder: folder.rename(folder.with_name("0123456789ab")), "bad id: the folder is named '0123456789ab'"),
    (lambda folder: rewrite_events(folder, unknown_type), "events.jsonl seq 4 (TELEPORTED): breaks job_event_v1"),
    (lambda folder: (folder / "outputs/runspec.json").write_bytes(b"{}\n"), "outputs/runspec.json: sha256"),
    (lambda folder: rewrite_events(folder, lambda ls: ls[:4] + ls[5:6] + [dict(ls[4], seq=6)] + ls[6:]),
     "seq gap or disorder: line 5 has seq 6"),
])
def test_a_malformed_store_is_refused_with_the_reason_and_nothing_is_written(artifact_root, tmp_path, break_it,
                                                                              reason):
    _, folder = a_v1_store(tmp_path / "store")
    break_it(folder)
    before, files_before = store_snapshot(), stored_files(artifact_root)

    code, report = import_jobstore(tmp_path / "store")

    assert code == 1 and "refused" in report and reason in report, report
    assert store_snapshot() == before and stored_files(artifact_root) == files_before


def test_a_different_history_under_a_present_id_is_refused(artifact_root, tmp_path):
    job_id, folder = a_v1_store(tmp_path / "store")
    assert import_jobstore(tmp_path / "store")[0] == 0
    other = tmp_path / "other"
    shutil.copytree(folder, other / job_id)

    def rejected(lines):
        lines[4] = dict(lines[4], event_type="REJECTED", payload={"reason": "no"})
        return lines[:5]

    rewrite_events(other / job_id, rejected, rehash=True)
    before, files_before = store_snapshot(), stored_files(artifact_root)
    code, report = import_jobstore(other)
    assert code == 1 and "already present with a different history" in report, report
    assert store_snapshot() == before and stored_files(artifact_root) == files_before


def test_a_bundle_that_does_not_verify_is_refused(artifact_root, tiny_snapshot, people, tmp_path):
    from ..builders import finished_jobs

    jobs = finished_jobs(people)
    job_id = jobs["blueprint"]
    call_command("export_job", job_id, "--root", str(tmp_path / "out"), stdout=io.StringIO())
    (tmp_path / "out" / job_id / "outputs" / "runspec.json").write_bytes(b"{}\n")
    before, files_before = store_snapshot(), stored_files(artifact_root)
    code, report = import_jobstore(tmp_path / "out")
    assert code == 1 and "the bundle does not verify: outputs/runspec.json seq 3: sha256" in report, report
    assert store_snapshot() == before and stored_files(artifact_root) == files_before


def test_each_job_of_a_store_is_imported_or_refused_on_its_own(artifact_root, tmp_path):
    good, _ = a_v1_store(tmp_path / "store", name="good")
    bad, bad_folder = a_v1_store(tmp_path / "store", name="bad")
    rewrite_events(bad_folder, gap)

    code, report = import_jobstore(tmp_path / "store")

    assert code == 1 and f"{good}  imported" in report and f"{bad}  refused" in report, report
    assert set(JobState.objects.values_list("job_id", flat=True)) == {good}
    assert not (artifact_root / "jobs" / bad).exists()


def test_an_imported_job_is_marked_on_its_pages_with_each_events_original_actor_and_time(artifact_root, people,
                                                                                         tmp_path):
    job_id, _ = a_v1_store(tmp_path / "store")
    assert import_jobstore(tmp_path / "store")[0] == 0

    page = session_client(people.reviewer).get(f"/ui/jobs/{job_id}").content.decode()
    assert "imported from a file store" in page
    assert "system:import_jobstore (originally user:dmitri at 2024-03-01T10:05:00Z)" in page
    admin = session_client(people.superuser).get(f"/admin/jobs/jobspec/{job_id}/change/").content.decode()
    assert "imported from a file-based job store" in admin and "originally user:carla" in admin
