"""Idea jobs for the engine tests: an idea that runs quickly on the tiny snapshot, a policy bundle with a small
budget, and the walk of an idea job through its checkpoints with the worker and the API."""
import copy
import json

from jobs.models import JobState
from workflow.orchestrator import WorkerConfig, run_pass

from .clients import post_json
from .documents import TINY_SYMBOLS

# Yearly windows on the tiny snapshot (a warm-up, two test years, a holdout year), a trend idea.
TINY_IDEA = {
    "schema_version": "idea_spec_v1",
    "title": "Trend following in two symbols",
    "hypothesis": "A fast moving average crossing above a slow one marks a trend that persists.",
    "universe": {"symbols": list(TINY_SYMBOLS)},
    "preferred_families": ["sma_crossover"],
    "costs": {"fee_bps": 5, "slippage_bps": 5},
    "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
}
IDEA_CHECKPOINTS = ("blueprint", "strategy_spec", "runspec", "trace_preview", "improvements")


def an_idea_for_tiny(**members) -> dict:
    idea = copy.deepcopy(TINY_IDEA)
    idea.update(copy.deepcopy(members))
    return idea


def a_budget_bundle(policy_root, bundle_id: str, **budget) -> str:
    """A copy of default_v2 named `bundle_id` in `policy_root` (a test's own copy of policies/), with `budget`
    over its own limits."""
    doc = json.loads((policy_root / "default_v2.json").read_text())
    doc["policy_bundle_id"] = bundle_id
    doc["budget"] = {**doc["budget"], **budget}
    (policy_root / f"{bundle_id}.json").write_text(json.dumps(doc))
    return bundle_id


def idea_worker(name: str = "w-idea") -> WorkerConfig:
    return WorkerConfig(worker_id=name, lease_seconds=600, max_attempts=3, retry_backoff_seconds=0)


def waiting_at(job_id: str) -> tuple[str, str | None, str | None]:
    state = JobState.objects.get(job_id=job_id)
    return state.status, state.waiting_step, state.review_sha256


def approve_via_api(client, job_id: str, step: str, **body):
    return post_json(client, f"/jobs/{job_id}/approve?step={step}", body)


def walk_idea_to_done(job_id: str, reviewer_client, *, accept=None) -> list[str]:
    """Run the worker and approve each checkpoint through the API with the sha256 under review, until the job
    ends; the checkpoints passed, in order."""
    passed = []
    for _ in range(len(IDEA_CHECKPOINTS) + 1):
        run_pass(idea_worker(), job_ids=[job_id])
        status, step, sha256 = waiting_at(job_id)
        if status != "waiting_approval":
            break
        body = {"artifact_sha256": sha256}
        if step == "improvements" and accept is not None:
            body["accept"] = accept
        response = approve_via_api(reviewer_client, job_id, step, **body)
        assert response.status_code == 200, response.content
        passed.append(step)
    return passed
