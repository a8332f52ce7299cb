"""Titles in every list and on a job's page; the job list newest first, searched and narrowed to my jobs; the
queue the longest waiting first with how long each has waited; the navigation's count of jobs waiting for me."""
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from jobs import selectors, services
from jobs.models import JobState

from ..api.test_query_counts import queries_for
from ..builders import (
    ADMIN, SNAPSHOT, TINY_SYMBOLS, an_idea, append, as_actor, client_for, idea_waiting, rerun, session_client,
    submitted, to_runspec_review, waiting_job,
)

pytestmark = pytest.mark.django_db


def listed(html: str) -> list[str]:
    """Job ids in the order a list page shows them."""
    return re.findall(r'class="job-link" href="/ui/jobs/([0-9a-f]{12})"', html)


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def an_idea_preferring(by, title: str, family: str):
    idea = {**an_idea(title, symbols=TINY_SYMBOLS), "preferred_families": [family]}
    job, _ = services.submit_idea(idea=idea, actor=as_actor(by), snapshot_id=SNAPSHOT)
    return job


def test_every_list_the_job_page_the_admin_and_the_api_show_the_title(people):
    # given a blueprint job and an idea job, both waiting for a decision
    blueprint = waiting_job(people.submitter, "Crossover on the tiny pair")
    idea = idea_waiting(people.submitter, "Momentum in large caps")
    reviewer = session_client(people.reviewer)

    # then the list, the queue, each job's page heading, the admin's list and the API name them
    for url in ("/ui/jobs", "/ui/jobs/waiting-for-me"):
        html = page(reviewer, url)
        assert '<td class="title">Crossover on the tiny pair</td>' in html, url
        assert '<td class="title">Momentum in large caps</td>' in html, url
    heading = re.search(r"<h1>.*?</h1>", page(reviewer, f"/ui/jobs/{idea.job_id}"), re.S).group(0)
    assert f"Job <code>{idea.job_id}</code>" in heading and "Momentum in large caps" in heading

    admin = session_client(people.superuser).get(ADMIN)
    assert [row.spec_title for row in admin.context["cl"].result_list] == [
        "Momentum in large caps", "Crossover on the tiny pair"]
    assert re.search(r'<td class="field-title">Crossover on the tiny pair</td>', admin.content.decode())

    api = client_for(people.reviewer)
    titles = {job["job_id"]: job["title"] for job in api.get("/jobs").json()["results"]}
    assert titles == {blueprint.job_id: "Crossover on the tiny pair", idea.job_id: "Momentum in large caps"}
    assert api.get(f"/jobs/{blueprint.job_id}").json()["title"] == "Crossover on the tiny pair"
    schema = api.get("/api/schema", {"format": "json"}).json()["components"]["schemas"]
    assert schema["JobSummary"]["properties"]["title"]["type"] == ["string", "null"]
    assert "title" in schema["JobDetail"]["properties"]


def test_the_list_is_newest_first_and_the_queue_longest_waiting_first(people, monkeypatch):
    # given three jobs created in turn (first, second, third) that began to wait in another order (second,
    # third, first), and a later event on the second (a rerun asked for) that moves its updated_at
    first = submitted(people.submitter, "first created")
    second = waiting_job(people.submitter, "second created")
    third = submitted(people.submitter, "third created")
    to_runspec_review(third.job_id)
    to_runspec_review(first.job_id)
    append(second.job_id, rerun("r", 1))
    assert JobState.objects.get(job_id=second.job_id).updated_at > JobState.objects.get(job_id=first.job_id).updated_at
    client = session_client(people.reviewer)

    # then the list is newest first
    assert listed(page(client, "/ui/jobs")) == [third.job_id, second.job_id, first.job_id]

    # and the queue, read two hours and five minutes later, the longest waiting first, each saying for how long
    later = timezone.now() + timedelta(hours=2, minutes=5)
    monkeypatch.setattr("ui.selectors.timezone", SimpleNamespace(now=lambda: later))
    html = page(client, "/ui/jobs/waiting-for-me")
    assert listed(html) == [second.job_id, third.job_id, first.job_id]
    assert html.count("for 2\xa0hours, 5\xa0minutes") == 3 and html.count("(since ") == 3
    assert "longest waiting first" in html


@pytest.mark.parametrize("q, expected", [
    ("crossover", ["Tiny crossover", "Crossover by rita"]),  # title, ignoring case
    ("RITA", ["Crossover by rita", "Trend by rita"]),  # submitter
    ("ts_momentum", ["Trend by rita"]),  # a blueprint's family
    ("rsi_mean", ["Quiet reversal"]),  # an idea's first preferred family
    ("no such thing", []),
])
def test_search_by_title_submitter_and_family(people, q, expected):
    submitted(people.submitter, "Tiny crossover")
    an_idea_preferring(people.submitter, "Quiet reversal", "rsi_mean_reversion")
    submitted(people.reviewer, "Crossover by rita")
    submitted(people.reviewer, "Trend by rita", family="ts_momentum")
    html = page(session_client(people.nobody), f"/ui/jobs?q={q}")
    titles = re.findall(r'<td class="title">([^<]+)</td>', html)
    assert sorted(titles) == sorted(expected)
    assert f'value="{q}"' in html  # the search box keeps the search
    if not expected:
        assert "No jobs here matching" in html


def test_my_jobs_lists_what_i_submitted(people):
    mine = [submitted(people.reviewer, f"mine {i}").job_id for i in range(2)]
    submitted(people.submitter, "not mine")
    client = session_client(people.reviewer)
    html = page(client, "/ui/jobs?mine=1")
    assert listed(html) == mine[::-1]
    assert "<h1>My jobs</h1>" in html and 'href="/ui/jobs?mine=1" aria-current="page"' in html
    assert listed(page(client, "/ui/jobs?mine=1&q=mine 1")) == [mine[1]]
    # anonymous readers have no jobs of their own: they are asked to sign in
    assert session_client().get("/ui/jobs?mine=1").status_code == 302


def test_paging_keeps_the_search_and_the_status(people, monkeypatch):
    monkeypatch.setattr("ui.selectors.PAGE_SIZE", 2)
    matching = [submitted(people.submitter, f"paged alpha {i}").job_id for i in range(5)]
    for i in range(3):
        submitted(people.submitter, f"paged beta {i}")
    waiting_job(people.submitter, "paged alpha waiting")
    client = session_client(people.reviewer)
    pages, url = [], "/ui/jobs?status=queued&q=ALPHA"
    while url:
        html = page(client, url)
        pages.append(listed(html))
        link = re.search(r'href="\?([^"]+)" rel="next"', html)
        url = "/ui/jobs?" + link.group(1).replace("&amp;", "&") if link else None
        if link:
            assert "status=queued" in url and "q=ALPHA" in url
    newest = matching[::-1]
    assert pages == [newest[0:2], newest[2:4], newest[4:5]]
    # the status counts are those of the search
    assert re.search(r'queued <span class="count">5</span>', html)
    assert queries_for(client, "/ui/jobs?q=alpha&mine=1") == queries_for(client, "/ui/jobs")
    assert client.get("/ui/jobs", {"q": "x" * 201}).status_code == 400


def test_the_navigation_counts_the_jobs_waiting_for_me(people):
    # given two jobs of sam's waiting, one of rita's (four eyes: not hers to decide) and one queued
    waiting_job(people.submitter, "sam's first")
    idea_waiting(people.submitter, "sam's idea")
    own = waiting_job(people.reviewer, "rita's own")
    submitted(people.submitter, "sam's queued")

    def nav_count(user, url="/ui/jobs"):
        html = page(session_client(user), url)
        found = re.search(r'class="waiting-count">\((\d+)', html)
        return int(found.group(1)) if found else 0

    def decidable(user):
        return sum(selectors.job_detail(job_id=s.job_id, user=user)["can_approve"] for s in JobState.objects.all())

    for person in (people.reviewer, people.superuser, people.submitter, people.nobody):
        assert nav_count(person) == decidable(person), person.username
    assert nav_count(people.reviewer) == 2 and nav_count(people.superuser) == 3
    # on every page, the same count
    assert nav_count(people.reviewer, f"/ui/jobs/{own.job_id}") == 2
    assert nav_count(people.reviewer, "/ui/jobs/waiting-for-me") == 2
    assert nav_count(people.reviewer, "/ui/registry") == 2
    # an anonymous reader sees no count (public reads)
    assert "waiting-count" not in page(session_client(), "/ui/login")
