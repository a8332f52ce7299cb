"""No /ui page answers 500: every page, for a job in every status, as every kind of person, and bad ids."""
import os
import re

import pytest

from jobs.models import JobEvent

from ..builders import (
    ADMIN, done_job_with_run, jobs_at_each_rule_state, jobs_in_every_status, run_id_of, session_client, waiting_job,
)

pytestmark = pytest.mark.django_db

# The name of each job in every status: their content ids stay the ones these tests always had.
NAMES = {"queued": "queued", "running": "running", "waiting_approval": "waiting", "done": "ui run", "error": "error",
         "rejected": "rejected", "cancelled": "cancelled", "stopped_budget": "budget", "idea_waiting": "ui idea"}
BAD_IDS = ["../x", "..%2Fx", "0123456789abc", "0123456789a", "0123456789AB", "0123456789aé", "ジョブ", "%00", " "]


def pages_of(jobs) -> list[str]:
    urls = ["/ui/", "/ui/jobs", "/ui/jobs/waiting-for-me", "/ui/login", "/ui/logout"]
    urls += [f"/ui/jobs?status={status}" for status in jobs if status != "idea_waiting"]
    urls += [f"/ui/jobs/{job.job_id}" for job in jobs.values()]
    return urls


def run_pages(run_id: str, client) -> list[str]:
    segments = [s["segment_id"] for s in client.get(f"/runs/{run_id}").json()["segments"]]
    assert "holdout" in segments and len(segments) >= 2
    return [f"/ui/runs/{run_id}"] + [f"/ui/runs/{run_id}?segment={s}" for s in segments]


def walk(client, urls) -> dict[str, int]:
    return {url: client.get(url).status_code for url in urls}


def test_every_page_for_every_status_and_person(people, settings):
    # given a job in every status and a real run
    jobs = jobs_in_every_status(people, NAMES, real_run=True, idea_snapshot="ui_tiny")
    run_id = run_id_of(jobs["done"])
    urls = pages_of(jobs) + run_pages(run_id, session_client(people.reviewer))
    before = JobEvent.objects.count()

    # when each person opens every page, then every page answers (the logout page asks to confirm)
    for person in (people.reviewer, people.submitter, people.operator, people.superuser, people.nobody):
        statuses = walk(session_client(person), urls)
        expected = {url: 302 if url == "/ui/" or url == "/ui/login" else 200 for url in urls}
        assert statuses == expected, person.username

    # anonymous: every read sends to the login page; the login page itself answers
    statuses = walk(session_client(), urls)
    assert statuses == {url: 200 if url in ("/ui/login", "/ui/logout") else 302 for url in urls}

    # with public reads on, anonymous reads work except the personal queue
    settings.EAM_PUBLIC_READ = True
    statuses = walk(session_client(), urls)
    assert statuses == {url: 302 if url in ("/ui/", "/ui/jobs/waiting-for-me") else 200 for url in urls}
    assert JobEvent.objects.count() == before


def test_every_page_for_each_state_an_approval_rule_adds_and_the_newer_pages(people, policy_root, settings):
    # given jobs under rules: partly approved, escalated, reminded, rejected by a deadline, overridden
    jobs = jobs_at_each_rule_state(people, policy_root)
    states = {job.job_id: job.state.status for job in jobs.values()}
    assert sorted(states.values()) == ["queued", "rejected", "waiting_approval", "waiting_approval", "waiting_approval"]
    urls = [f"/ui/jobs/{job.job_id}" for job in jobs.values()] + [
        "/ui/jobs?status=waiting_approval", "/ui/jobs/waiting-for-me", "/ui/registry", "/ui/snapshots",
        "/ui/settings/notifications"]
    before = JobEvent.objects.count()

    # when each person opens every page (and the admin's page of each job, for the superuser), then none fails
    for person in (people.reviewer, people.submitter, people.operator, people.superuser, people.nobody):
        assert walk(session_client(person), urls) == {url: 200 for url in urls}, person.username
    admin_pages = [f"{ADMIN}{job.job_id}/change/" for job in jobs.values()]
    assert walk(session_client(people.superuser), admin_pages) == {url: 200 for url in admin_pages}
    assert JobEvent.objects.count() == before


def test_bad_ids_unknown_segments_and_filters_are_not_found_or_refused(people):
    jobs = jobs_in_every_status(people, NAMES, real_run=True, idea_snapshot="ui_tiny")
    client = session_client(people.reviewer)
    run_id = run_id_of(jobs["done"])
    before = JobEvent.objects.count()
    for bad in BAD_IDS:
        for url in (f"/ui/jobs/{bad}", f"/ui/runs/{bad}", f"/ui/jobs/{bad}/approve", f"/ui/jobs/{bad}/reject"):
            response = client.post(url) if url.endswith(("approve", "reject")) else client.get(url)
            assert response.status_code == 404, (url, response.status_code)
    # a well-formed id nobody has, a run that was compiled but never ran, a segment the run does not have
    assert client.get("/ui/jobs/0123456789ab").status_code == 404
    assert client.get(f"/ui/runs/{run_id_of(jobs['waiting_approval'])}").status_code == 404
    for segment in ("nope", "../holdout", "seg_999", ""):
        status = client.get(f"/ui/runs/{run_id}", {"segment": segment}).status_code
        assert status == (200 if segment == "" else 404), segment
    # an unknown status filter or a forged cursor is a 400 page that says why
    response = client.get("/ui/jobs", {"status": "nope"})
    assert response.status_code == 400 and b"unknown status" in response.content
    assert client.get("/ui/jobs", {"cursor": "not-a-cursor"}).status_code == 400
    assert client.get("/ui/jobs/waiting-for-me", {"cursor": "bm9wZQ"}).status_code == 400
    assert JobEvent.objects.count() == before


def test_artifact_links_of_the_job_page_download_with_the_session(people):
    job = done_job_with_run(people.submitter)
    client = session_client(people.reviewer)
    page = client.get(f"/ui/jobs/{job.job_id}").content.decode()
    links = re.findall(rf'href="(/jobs/{job.job_id}/artifacts/[^"]+)"', page)
    assert f"/jobs/{job.job_id}/artifacts/outputs/gate_results.json" in links
    assert f"/jobs/{job.job_id}/artifacts/dossier/segments/seg_001/curve.csv" in links
    assert not [link for link in links if "holdout/curve" in link or "holdout/trades" in link]
    for link in links:
        assert client.get(link).status_code == 200, link


@pytest.mark.parametrize("target", ["another job's folder", "outside the root"])
def test_gate_results_behind_a_symlink_out_of_the_job_folder_are_not_shown(people, tmp_path, artifact_root, target):
    # given a done job whose gate_results.json was replaced by a link to the same bytes elsewhere (so even
    # the recorded sha256 would match)
    job = done_job_with_run(people.submitter)
    root = str(artifact_root)
    path = os.path.join(root, "jobs", job.job_id, "outputs", "gate_results.json")
    neighbour = os.path.join(root, "jobs", waiting_job(people.submitter, "neighbour").job_id)
    elsewhere = neighbour if target.startswith("another") else str(tmp_path)
    os.makedirs(elsewhere, exist_ok=True)
    moved = os.path.join(elsewhere, "gate_results.json")
    os.replace(path, moved)
    os.symlink(moved, path)

    # then the job page says it cannot read them, and shows none of their content
    page = session_client(people.reviewer).get(f"/ui/jobs/{job.job_id}")
    assert page.status_code == 200
    text = page.content.decode()
    assert "cannot read outputs/gate_results.json" in text and "resolves outside" in text
    assert 'class="gates"' not in text


def test_public_reads_show_no_decision_forms(people, settings):
    settings.EAM_PUBLIC_READ = True
    job = waiting_job(people.submitter, "public")
    page = session_client().get(f"/ui/jobs/{job.job_id}").content.decode()
    assert "Review: runspec" in page and "as a reviewer to decide" in page
    assert "<form" not in page.replace('action="/ui/logout"', "")
