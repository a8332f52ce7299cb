"""Reads: job list filters and cursors, detail, events, artifacts, runs (holdout hidden), registry, snapshots."""
import os

import pytest

from contracts import sha256_hex
from jobs import services
from jobs.events import Actor
from jobs.events import NewEvent
from jobs.pipelines import EventType as E
from research.artifacts import read_json_artifact
from research.dossier import dossier_root

from ..builders import (
    WORKER, append, assert_error, client_for, done_job, error_job, gated, job_with_events, ran_job, started, submitted,
    waiting_job,
)

pytestmark = pytest.mark.django_db


def test_list_filters_and_cursor_pages(people):
    # given jobs in several states
    jobs = [submitted(people.submitter, f"page-{i}") for i in range(5)]
    waiting = waiting_job(people.submitter, "filter-waiting")
    broken = error_job(people.submitter, "filter-error")
    client = client_for(people.reviewer)

    # when listing page by page, then every job comes once, in created order
    seen, cursor = [], None
    while True:
        page = client.get("/jobs", {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [j["job_id"] for j in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [j.job_id for j in jobs] + [waiting.job_id, broken.job_id]

    def ids(**query):
        return [j["job_id"] for j in client.get("/jobs", query).json()["results"]]

    assert ids(status="waiting_approval") == [waiting.job_id]
    assert ids(waiting_step="runspec") == [waiting.job_id]
    assert ids(status="error") == [broken.job_id]
    assert ids(kind="idea") == []
    assert ids(root_job_id=waiting.job_id) == [waiting.job_id]
    assert len(ids(snapshot_id="api_snap")) == 7
    assert ids(snapshot_id="other") == []


def test_detail_has_spec_state_lineage_and_recorded_artifacts(people):
    job = waiting_job(people.submitter, "detail", sha="c" * 64)
    body = client_for(people.reviewer).get(f"/jobs/{job.job_id}").json()
    assert body["job_id"] == job.job_id and body["kind"] == "blueprint"
    assert body["status"] == "waiting_approval" and body["waiting_step"] == "runspec"
    assert body["review_sha256"] == "c" * 64
    assert body["spec"] == job.spec and body["submitted_by"] == "sam"
    assert body["lineage"] == {"root_job_id": job.job_id, "parent_job_id": None, "generation": 0, "children": []}
    assert body["run_id"] == "0123456789ab"
    assert body["artifacts"] == [{"path": f"jobs/{job.job_id}/outputs/runspec.json", "sha256": "c" * 64,
                                  "bytes": 10, "seq": 3, "event_type": "RUNSPEC_COMPILED", "step": "compile"}]


def test_list_and_detail_show_the_gates_verdict(people):
    # given a job that passed its gates, one that failed them, and one the gates have not seen
    passed = done_job(people.submitter, "verdict-pass", verdict="PASS")
    failed = done_job(people.submitter, "verdict-fail", verdict="FAIL")
    waiting = waiting_job(people.submitter, "verdict-none")
    client = client_for(people.reviewer)

    listed = {j["job_id"]: j["verdict"] for j in client.get("/jobs").json()["results"]}
    assert listed == {passed.job_id: "PASS", failed.job_id: "FAIL", waiting.job_id: None}
    for job, verdict in ((passed, "PASS"), (failed, "FAIL"), (waiting, None)):
        assert client.get(f"/jobs/{job.job_id}").json()["verdict"] == verdict

    # when the waiting job is approved, run and gated, then both show its verdict at once
    services.approve(job_id=waiting.job_id, step="runspec", actor=Actor.user(people.reviewer))
    ran = NewEvent(E.RUN_COMPLETED, WORKER, step="run", payload={"artifacts": [], "summary": {}})
    append(waiting.job_id, started("run"), ran, started("gates"), gated("FAIL"))
    assert {j["job_id"]: j["verdict"] for j in client.get("/jobs").json()["results"]}[waiting.job_id] == "FAIL"
    assert client.get(f"/jobs/{waiting.job_id}").json()["verdict"] == "FAIL"


def test_events_after_seq(people):
    job = job_with_events(people.submitter, 20)
    client = client_for(people.operator)
    everything = client.get(f"/jobs/{job.job_id}/events").json()
    assert [e["seq"] for e in everything["events"]] == list(range(1, 21))
    assert everything["last_seq"] == 20 and everything["has_more"] is False
    first = everything["events"][0]
    assert first["event_type"] == "BLUEPRINT_SUBMITTED" and first["prev_hash"] == "0" * 64
    assert first["actor"] == {"kind": "user", "id": "sam"}
    later = client.get(f"/jobs/{job.job_id}/events", {"after_seq": 17, "limit": 2}).json()
    assert [e["seq"] for e in later["events"]] == [18, 19] and later["has_more"] is True
    assert client.get(f"/jobs/{job.job_id}/events", {"after_seq": 20}).json()["events"] == []


def test_artifacts_list_and_download_with_dossier(people):
    # given a job whose run completed
    job, run_id = ran_job(people.submitter, people.reviewer)
    client = client_for(people.operator)

    # when listing its artifacts
    listed = client.get(f"/jobs/{job.job_id}/artifacts").json()["artifacts"]
    by_path = {a["path"]: a for a in listed}

    # then the job's files and its run's dossier, each with sha256 and size
    assert "outputs/runspec.json" in by_path
    assert {"dossier/dossier.json", "dossier/metrics.json", "dossier/segments_summary.json"} <= set(by_path)
    assert by_path["dossier/metrics.json"]["storage_path"] == f"dossiers/{run_id}/metrics.json"
    assert not [p for p in by_path if p.startswith("dossier/segments/holdout/") and not p.endswith("metrics.json")]

    # and each downloads with its content type and the listed sha256
    runspec = client.get(f"/jobs/{job.job_id}/artifacts/outputs/runspec.json")
    assert runspec.status_code == 200 and runspec["Content-Type"] == "application/json"
    assert sha256_hex(runspec.content) == by_path["outputs/runspec.json"]["sha256"]
    test_segment = next(p for p in by_path if p.endswith("/curve.csv"))
    curve = client.get(f"/jobs/{job.job_id}/artifacts/{test_segment}")
    assert curve["Content-Type"].startswith("text/csv") and curve.content.startswith(b"date,equity")
    assert_error(client.get(f"/jobs/{job.job_id}/artifacts/dossier/segments/holdout/curve.csv"), 404, "holdout_hidden")
    assert_error(client.get(f"/jobs/{job.job_id}/artifacts/outputs/nothing.json"), 404, "artifact_not_found")


def test_run_segments_and_hidden_holdout(people):
    job, run_id = ran_job(people.submitter, people.reviewer, name="run view")
    client = client_for(people.nobody)

    run = client.get(f"/runs/{run_id}").json()
    roles = {s["segment_id"]: s["role"] for s in run["segments"]}
    assert "holdout" in roles.values() and "test" in roles.values()
    assert run["metrics"]["oos"] == read_json_artifact(f"{dossier_root(run_id)}/metrics.json")["oos"]
    assert run["trials"] == [{"job_id": job.job_id, "verdict": "PASS", "created_at": run["trials"][0]["created_at"]}]
    holdout = next(s for s, role in roles.items() if role == "holdout")
    test = next(s for s, role in roles.items() if role == "test")

    segment = client.get(f"/runs/{run_id}", {"segment": test}).json()
    assert set(segment) == {"run_id", "segment_id", "role", "metrics", "curve", "trades"}
    assert segment["curve"]["columns"][:2] == ["date", "equity"]
    assert isinstance(segment["curve"]["rows"][0][1], float)
    only_trades = client.get(f"/runs/{run_id}", {"segment": test, "part": "trades"}).json()
    assert set(only_trades) == {"run_id", "segment_id", "role", "trades"}

    hidden = client.get(f"/runs/{run_id}", {"segment": holdout}).json()
    assert set(hidden) == {"run_id", "segment_id", "role", "metrics"}
    for part in ("curve", "trades"):
        assert_error(client.get(f"/runs/{run_id}", {"segment": holdout, "part": part}), 404, "holdout_hidden")
    assert_error(client.get(f"/runs/{run_id}", {"segment": "seg_999"}), 404, "segment_not_found")

    registry = client.get("/registry", {"root_job_id": job.root_job_id}).json()["results"]
    assert [r["run_id"] for r in registry] == [run_id]
    assert client.get("/registry", {"family": "xs_momentum"}).json()["results"] == []
    snapshots = client.get("/snapshots").json()["results"]
    assert [s["snapshot_id"] for s in snapshots] == ["api_snap", "api_tiny"]
    policies = client.get("/policies").json()["results"]
    assert [(p["policy_bundle_id"], p["valid"], p["is_default"]) for p in policies] == [
        ("default_v1", True, False), ("default_v2", True, True), ("demo_budget_v1", True, False)]


def test_symlink_out_of_the_job_folder_is_not_served(people, tmp_path, artifact_root):
    job, _ = ran_job(people.submitter, people.reviewer, name="symlink")
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": true}')
    root = str(artifact_root)
    link = os.path.join(root, "jobs", job.job_id, "outputs", "leak.json")
    os.symlink(secret, link)
    other = waiting_job(people.submitter, "neighbour")
    os.makedirs(os.path.join(root, "jobs", other.job_id), exist_ok=True)
    os.symlink(os.path.join(root, "jobs", job.job_id, "outputs", "runspec.json"),
               os.path.join(root, "jobs", other.job_id, "borrowed.json"))
    client = client_for(people.reviewer)

    assert_error(client.get(f"/jobs/{job.job_id}/artifacts/outputs/leak.json"), 404, "artifact_not_found")
    assert "outputs/leak.json" not in {a["path"] for a in client.get(f"/jobs/{job.job_id}/artifacts").json()["artifacts"]}
    # a link to another job's folder stays inside the root, but not inside this job's folder
    assert_error(client.get(f"/jobs/{other.job_id}/artifacts/borrowed.json"), 404, "artifact_not_found")
    listed = client.get(f"/jobs/{other.job_id}/artifacts")
    assert listed.json()["artifacts"] == [] and b"borrowed" not in listed.content


def test_symlink_out_of_the_run_folder_is_not_served(people, tmp_path, artifact_root):
    # given a run whose test segment's metrics and curve are links: to a secret outside the root, and to
    # another run's folder
    job, run_id = ran_job(people.submitter, people.reviewer, name="run-symlink")
    root = str(artifact_root)
    segments = os.path.join(root, "dossiers", run_id, "segments")
    test = next(s["segment_id"] for s in client_for(people.reviewer).get(f"/runs/{run_id}").json()["segments"]
                if s["role"] == "test")
    secret = tmp_path / "metrics.json"
    secret.write_text('{"secret": true}')
    os.replace(os.path.join(segments, test, "metrics.json"), tmp_path / "moved.json")
    os.symlink(secret, os.path.join(segments, test, "metrics.json"))
    elsewhere = os.path.join(root, "dossiers", "0123456789ab")
    os.makedirs(elsewhere)
    os.replace(os.path.join(segments, test, "curve.csv"), os.path.join(elsewhere, "curve.csv"))
    os.symlink(os.path.join(elsewhere, "curve.csv"), os.path.join(segments, test, "curve.csv"))
    client = client_for(people.reviewer)

    dossier = f"/jobs/{job.job_id}/artifacts/dossier/segments/{test}"
    for url in (f"/runs/{run_id}?segment={test}&part=metrics", f"{dossier}/metrics.json"):
        response = client.get(url)
        assert_error(response, 404, "artifact_not_found")
        assert b"secret" not in response.content
    assert_error(client.get(f"/runs/{run_id}?segment={test}&part=curve"), 404, "artifact_not_found")
    assert_error(client.get(f"{dossier}/curve.csv"), 404, "artifact_not_found")
    listed = {a["path"] for a in client.get(f"/jobs/{job.job_id}/artifacts").json()["artifacts"]}
    assert f"dossier/segments/{test}/metrics.json" not in listed and f"dossier/segments/{test}/curve.csv" not in listed
