"""GET /metrics: what it reports is what the database holds (through the test client and through two real server
processes), and who may read it (token, allowlist, loopback), each refusal writing nothing."""
import time
import urllib.request
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.events import NewEvent
from jobs.metrics import STEPS
from jobs.models import JobEvent, JobState
from jobs.pipelines import CHECKPOINT_NAMES, EventType, Kind, Status

from ..builders import (
    WORKER, append, compiled, failed, idea_waiting, new_blueprint_job, rerun, started, store_snapshot, to_done,
    to_error, waiting,
)
from .conftest import serving

TOKEN = "metrics-test-token"


def families(text: str) -> dict:
    """{family name: {(sample name, frozenset of labels): value}}"""
    parsed = {}
    for family in text_string_to_metric_families(text):
        parsed[family.name] = {(s.name, frozenset(s.labels.items())): s.value for s in family.samples}
    return parsed


def job_gauges(parsed: dict) -> dict[tuple[str, str], int]:
    return {(dict(labels)["status"], dict(labels)["kind"]): int(value)
            for (_, labels), value in parsed["eam_jobs"].items()}


def jobs_in_database() -> dict[tuple[str, str], int]:
    counts = {(str(s), str(k)): 0 for s in Status for k in Kind}
    for row in JobState.objects.values("status", "kind").annotate(n=Count("pk")):
        counts[row["status"], row["kind"]] = row["n"]
    return counts


def by_label(parsed: dict, family: str, sample: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (name, labels), value in parsed[family].items() if name == sample}


@pytest.fixture
def a_store(people):
    """queued, waiting at runspec (compile took at least 0.2 s; an agent rerun pending), done, running after a failed
    attempt with an expired lease, error, and an idea waiting at blueprint."""
    queued = new_blueprint_job(fast=10)
    slow = new_blueprint_job(fast=11)
    append(slow.job_id, started("compile"))
    time.sleep(0.2)
    append(slow.job_id, compiled(slow.job_id), waiting("runspec"))
    append(slow.job_id, rerun("r", 1))
    done = new_blueprint_job(fast=12)
    to_done(done.job_id)
    running = new_blueprint_job(fast=13)
    append(running.job_id, started("compile"), failed("compile", 1), started("compile", 2))
    JobState.objects.filter(job_id=running.job_id).update(lease_owner="gone-worker",
                                                          lease_expires_at=timezone.now() - timedelta(minutes=5))
    broken = new_blueprint_job(fast=14)
    to_error(broken.job_id)
    idea = idea_waiting(people.submitter)
    return {"queued": queued, "slow": slow, "done": done, "running": running, "error": broken, "idea": idea}


def test_the_metrics_are_what_the_database_holds(a_store, client, django_assert_num_queries):
    with django_assert_num_queries(8):  # one per metric, whatever the number of jobs and events
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    parsed = families(response.content.decode())

    assert job_gauges(parsed) == jobs_in_database()
    assert job_gauges(parsed)["waiting_approval", "blueprint"] == 1
    assert job_gauges(parsed)["waiting_approval", "idea"] == 1

    waiting_now = by_label(parsed, "eam_jobs_waiting", "eam_jobs_waiting", "checkpoint")
    assert waiting_now == {c: (1.0 if c in ("runspec", "blueprint") else 0.0) for c in CHECKPOINT_NAMES}
    oldest = by_label(parsed, "eam_jobs_waiting_oldest_seconds", "eam_jobs_waiting_oldest_seconds", "checkpoint")
    assert oldest["runspec"] > 0 and oldest["blueprint"] > 0
    assert oldest["strategy_spec"] == 0

    assert parsed["eam_leases_expired"][("eam_leases_expired", frozenset())] == 1
    assert parsed["eam_agent_reruns_pending"][("eam_agent_reruns_pending", frozenset())] == 1

    outcomes = {(dict(labels)["step"], dict(labels)["outcome"]): int(value)
                for (_, labels), value in parsed["eam_step_outcomes"].items() if value}
    assert outcomes == {
        ("compile", "completed"): 2, ("compile", "failed"): 1, ("compile", "error"): 1,
        ("run", "completed"): 1, ("gates", "completed"): 1, ("registry", "completed"): 1,
        ("intent", "completed"): 1,
    }

    buckets = {dict(labels)["le"]: value for (name, labels), value in parsed["eam_step_duration_seconds"].items()
               if name == "eam_step_duration_seconds_bucket" and dict(labels)["step"] == "compile"}
    compile_sum = by_label(parsed, "eam_step_duration_seconds", "eam_step_duration_seconds_sum", "step")["compile"]
    # Four compile attempts ended; three within one append (no time between start and end), one after 0.2 s.
    assert buckets["+Inf"] == 4 and buckets["0.1"] == 3
    assert compile_sum >= 0.2
    assert by_label(parsed, "eam_step_duration_seconds", "eam_step_duration_seconds_count", "step")["run"] == 1

    assert parsed["eam_events"][("eam_events_total", frozenset())] == JobEvent.objects.count()


def test_an_attempt_taken_over_is_counted_once(client):
    """Given a compile whose worker died and whose step another worker took over and finished, when scraped, then
    one compile attempt is measured (the second) and one completed."""
    job = new_blueprint_job(fast=20)
    takeover = NewEvent(EventType.STEP_STARTED, WORKER, step="compile",
                        payload={**started("compile", 2).payload, "recovered_from": "worker-0"})
    append(job.job_id, started("compile"))
    append(job.job_id, takeover)
    append(job.job_id, compiled(job.job_id))
    parsed = families(client.get("/metrics").content.decode())
    counts = by_label(parsed, "eam_step_duration_seconds", "eam_step_duration_seconds_count", "step")
    assert counts["compile"] == 1
    assert parsed["eam_step_outcomes"][("eam_step_outcomes_total",
                                        frozenset({("step", "compile"), ("outcome", "completed")}))] == 1


@pytest.mark.slow
def test_every_server_process_reports_the_database(a_store, process_env, tmp_path):
    """Real server processes, none of which wrote anything (runserver; gunicorn as WSGI and with a uvicorn worker, as
    production serves): the same job counts, the database's."""
    env = {**process_env, "EAM_METRICS_TOKEN": TOKEN}
    answers = []
    for kind in ("runserver", "gunicorn", "gunicorn-asgi"):
        with serving(kind, env, tmp_path) as base:
            request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                answers.append(job_gauges(families(response.read().decode())))
    assert answers[0] == answers[1] == answers[2] == jobs_in_database()


@pytest.mark.parametrize(("given", "status", "code"), [
    ({}, 401, "metrics_token_required"),
    ({"HTTP_AUTHORIZATION": "Token " + TOKEN}, 401, "metrics_token_required"),
    ({"HTTP_AUTHORIZATION": "Bearer wrong-token"}, 403, "metrics_token_invalid"),
    ({"HTTP_AUTHORIZATION": "Bearer " + TOKEN}, 200, None),
])
def test_the_token_when_set(a_store, client, settings, given, status, code):
    settings.EAM_METRICS_TOKEN = TOKEN
    before = store_snapshot()
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", **given)
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert store_snapshot() == before


@pytest.mark.parametrize(("allow", "address", "status"), [
    ([], "127.0.0.1", 200),
    ([], "::1", 200),
    ([], "::ffff:127.0.0.1", 200),
    ([], "10.1.2.3", 403),
    (["10.0.0.0/8", "192.0.2.7"], "10.1.2.3", 200),
    (["10.0.0.0/8", "192.0.2.7"], "192.0.2.7", 200),
    (["10.0.0.0/8", "192.0.2.7"], "192.0.2.8", 403),
    (["10.0.0.0/8"], "127.0.0.1", 403),  # an allowlist replaces the loopback default
])
def test_the_allowlist_and_the_loopback_default(a_store, client, settings, allow, address, status):
    settings.EAM_METRICS_ALLOW = allow
    before = store_snapshot()
    response = client.get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "metrics_forbidden"
    assert store_snapshot() == before


def test_token_and_allowlist_together_need_both(a_store, client, settings):
    settings.EAM_METRICS_TOKEN, settings.EAM_METRICS_ALLOW = TOKEN, ["10.0.0.0/8"]
    right = {"HTTP_AUTHORIZATION": "Bearer " + TOKEN}
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", **right).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", **right).json()["code"] == "metrics_forbidden"
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_only_get_and_head(a_store, client, method):
    before = store_snapshot()
    response = getattr(client, method)("/metrics", data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
    assert client.head("/metrics").status_code == 200
    assert store_snapshot() == before


def test_an_empty_store_reports_zeros(client):
    parsed = families(client.get("/metrics").content.decode())
    assert set(job_gauges(parsed).values()) == {0}
    assert set(by_label(parsed, "eam_jobs_waiting_oldest_seconds", "eam_jobs_waiting_oldest_seconds",
                        "checkpoint").values()) == {0}
    assert parsed["eam_events"][("eam_events_total", frozenset())] == 0
    counts = by_label(parsed, "eam_step_duration_seconds", "eam_step_duration_seconds_count", "step")
    assert counts == dict.fromkeys(STEPS, 0)  # every step's histogram, empty
