"""Idea jobs end to end with the worker (in process) and the API only: submit, the five checkpoints, the agents'
artifacts, the spawn of child jobs within the budget, and what each refusal leaves unwritten."""
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from contracts import canonical_json, content_id, sha256_hex, validate_event
from jobs import services
from jobs.events import Actor
from jobs.models import JobEvent, JobSpec, JobState
from jobs.state import derive_state
from research.artifacts import read_artifact
from workflow.executors import spawn as spawn_executor
from workflow.orchestrator import run_pass

from ..builders import (
    IDEA_CHECKPOINTS, TINY_SNAPSHOT, a_budget_bundle, a_snapshot, an_idea_for_tiny, approve_via_api, assert_error,
    client_for, idea_worker, make_people, post_json, waiting_at, walk_idea_to_done,
)

IDEA_EVENTS = [
    "IDEA_SUBMITTED",
    "STEP_STARTED", "BLUEPRINT_PROPOSED", "WAITING_APPROVAL", "APPROVED",
    "STEP_STARTED", "STRATEGY_SPEC_PROPOSED", "WAITING_APPROVAL", "APPROVED",
    "STEP_STARTED", "RUNSPEC_COMPILED", "WAITING_APPROVAL", "APPROVED",
    "STEP_STARTED", "TRACE_PREVIEW_COMPLETED", "WAITING_APPROVAL", "APPROVED",
    "STEP_STARTED", "RUN_COMPLETED", "STEP_STARTED", "GATES_COMPLETED", "STEP_STARTED", "REGISTRY_UPDATED",
    "STEP_STARTED", "REPORT_COMPLETED", "STEP_STARTED", "IMPROVEMENTS_PROPOSED", "WAITING_APPROVAL", "APPROVED",
    "STEP_STARTED", "JOB_SPAWNED",
]
REVIEWED = {  # what each checkpoint reviews
    "blueprint": "outputs/blueprint.json",
    "strategy_spec": "outputs/agents/strategy_spec/output.json",
    "runspec": "outputs/runspec.json",
    "trace_preview": "outputs/trace_preview/trace.csv",
    "improvements": "outputs/agents/improvements/output.json",
}


def submit_via_api(people, idea=None, *, policy_bundle_id="default_v2"):
    response = post_json(client_for(people.submitter),
                         f"/jobs/idea?snapshot_id={TINY_SNAPSHOT}&policy_bundle_id={policy_bundle_id}",
                         idea or an_idea_for_tiny())
    assert response.status_code == 201, response.content
    return response.json()["job_id"]


def events_of(job_id):
    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))


def recorded_refs(job_id):
    refs = []
    for row in events_of(job_id):
        refs += row.payload.get("artifacts") or []
        if row.payload.get("prompt_pins"):
            refs.append(row.payload["prompt_pins"])
    return refs


@pytest.mark.django_db
def test_an_idea_job_goes_from_submit_to_done_through_its_five_checkpoints(artifact_root, tiny_snapshot):
    # given an idea submitted through the API
    people = make_people()
    job_id = submit_via_api(people)

    # when the worker runs and a reviewer approves each checkpoint through the API
    passed = walk_idea_to_done(job_id, client_for(people.reviewer))

    # then the job passed the five checkpoints and is done, with one child per proposal (default: all accepted)
    assert passed == list(IDEA_CHECKPOINTS)
    assert JobState.objects.get(job_id=job_id).status == "done"
    rows = events_of(job_id)
    assert [row.event_type for row in rows] == IDEA_EVENTS + ["DONE"]
    # every artifact is recorded with its sha256 and size, and every file is what its event says
    refs = recorded_refs(job_id)
    paths = {ref["path"] for ref in refs}
    for agent_id in ("intent", "strategy_spec", "report", "improvements"):
        assert {f"jobs/{job_id}/outputs/agents/{agent_id}/agent_run.json",
                f"jobs/{job_id}/outputs/agents/{agent_id}/output.json"} <= paths
    assert f"jobs/{job_id}/outputs/agents/prompt_pins.json" in paths
    for ref in refs:
        data = read_artifact(ref["path"])
        assert (sha256_hex(data), len(data)) == (ref["sha256"], ref["bytes"]), ref["path"]
    # each checkpoint reviewed its named artifact, and its approval names that sha256
    waits = [row for row in rows if row.event_type == "WAITING_APPROVAL"]
    approvals = [row for row in rows if row.event_type == "APPROVED"]
    for wait, approval in zip(waits, approvals):
        path = f"jobs/{job_id}/{REVIEWED[wait.step]}"
        assert wait.payload["artifact_path"] == path
        assert wait.payload["artifact_sha256"] == approval.payload["artifact_sha256"] == sha256_hex(read_artifact(path))
    # agent runs: prompt pinned at submit, output sha256, no duration in the file (it is in the event)
    pins = read_artifact(f"jobs/{job_id}/outputs/agents/prompt_pins.json")
    intent_run = json.loads(read_artifact(f"jobs/{job_id}/outputs/agents/intent/agent_run.json"))
    assert intent_run["prompt"]["sha256"] == json.loads(pins)["agents"]["intent"]["sha256"]
    assert intent_run["output_sha256"] == sha256_hex(canonical_json(intent_run["output"]))
    assert "duration_ms" not in intent_run
    assert "duration_ms" in rows[2].payload["summary"]
    # the children: one blueprint job each, queued, with its lineage
    spawned = rows[-2]
    accepted = approvals[-1].payload["accepted"]
    assert len(spawned.payload["child_job_ids"]) == len(accepted) >= 1
    for child_id in spawned.payload["child_job_ids"]:
        child = JobSpec.objects.get(job_id=child_id)
        lineage = (child.kind, child.root_job_id, child.parent_job_id, child.generation)
        assert lineage == ("blueprint", job_id, job_id, 1)
        assert child.spec["extensions"]["lineage"] == {"root_job_id": job_id, "parent_job_id": job_id,
                                                        "generation": 1, "iteration": 1}
        assert child.state.status == "queued"


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] in ("jobs", "dossiers")}


@pytest.mark.django_db(transaction=True)
def test_the_same_idea_on_a_fresh_database_gives_byte_identical_artifacts(tmp_path, settings):
    trees = []
    for name in ("first", "second"):
        root = tmp_path / name
        root.mkdir()
        settings.EAM_ARTIFACT_ROOT = str(root)
        settings.STORAGES = {**settings.STORAGES, "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}}}
        # given a fresh database and artifact root
        call_command("flush", interactive=False, verbosity=0)
        a_snapshot(TINY_SNAPSHOT)
        people = make_people()
        # when the same idea is submitted and walked to the end
        job_id = submit_via_api(people)
        walk_idea_to_done(job_id, client_for(people.reviewer))
        assert JobState.objects.get(job_id=job_id).status == "done"
        trees.append((job_id, _tree(root)))
    # then every artifact has the same bytes
    (first_id, first), (second_id, second) = trees
    assert first_id == second_id
    assert any(path.endswith("agent_run.json") for path in first)
    assert first.keys() == second.keys()
    assert [path for path in first if first[path] != second[path]] == []


@pytest.mark.django_db
def test_each_checkpoint_refuses_a_stale_review_its_submitter_and_a_second_decision(artifact_root, tiny_snapshot):
    people = make_people()
    job_id = submit_via_api(people)
    reviewer, submitter = client_for(people.reviewer), client_for(people.submitter)
    submitter.force_authenticate(people.submitter)
    for step in IDEA_CHECKPOINTS:
        run_pass(idea_worker(), job_ids=[job_id])
        status, waiting, sha256 = waiting_at(job_id)
        assert (status, waiting) == ("waiting_approval", step)
        before = JobEvent.objects.filter(job_id=job_id).count()
        # a stale sha256, the submitter's own approval: refused, nothing written
        assert_error(approve_via_api(reviewer, job_id, step, artifact_sha256="0" * 64), 409, "stale_review")
        people.submitter.groups.add(*people.reviewer.groups.all())  # a submitter who may also review
        assert_error(approve_via_api(submitter, job_id, step, artifact_sha256=sha256), 403, "four_eyes")
        assert JobEvent.objects.filter(job_id=job_id).count() == before
        # the decision, then a second one: refused, nothing written
        assert approve_via_api(reviewer, job_id, step, artifact_sha256=sha256).status_code == 200
        assert_error(approve_via_api(reviewer, job_id, step, artifact_sha256=sha256), 409, "not_waiting")
        assert JobEvent.objects.filter(job_id=job_id).count() == before + 1


@pytest.mark.django_db
def test_an_agent_output_that_breaks_its_contract_fails_the_step_writes_nothing_and_can_be_retried(
        artifact_root, tiny_snapshot, monkeypatch):
    # given an intent agent that returns a document its contract refuses
    from research.agents import intent

    people = make_people()
    job_id = submit_via_api(people)
    real_run = intent.run
    monkeypatch.setattr(intent, "run", lambda inputs, *, prompt: {**real_run(inputs, prompt=prompt), "blueprint": {}})
    # when the worker runs it
    run_pass(idea_worker(), job_ids=[job_id])
    # then the step is an ERROR `invalid_output` and no agent artifact was written
    state = JobState.objects.get(job_id=job_id)
    assert state.status == "error" and state.error["error_class"] == "invalid_output"
    assert events_of(job_id)[-1].event_type == "ERROR"
    assert not (artifact_root / "jobs" / job_id / "outputs" / "agents" / "intent").exists()
    assert not (artifact_root / "jobs" / job_id / "outputs" / "blueprint.json").exists()
    # and once the agent is fixed, a retry by an operator proposes the blueprint
    monkeypatch.setattr(intent, "run", real_run)
    services.retry(job_id=job_id, actor=Actor.user(people.operator), reason="agent fixed")
    run_pass(idea_worker(), job_ids=[job_id])
    assert waiting_at(job_id)[:2] == ("waiting_approval", "blueprint")


def _to_improvements(people, job_id):
    reviewer = client_for(people.reviewer)
    for step in IDEA_CHECKPOINTS[:-1]:
        run_pass(idea_worker(), job_ids=[job_id])
        assert approve_via_api(reviewer, job_id, step, artifact_sha256=waiting_at(job_id)[2]).status_code == 200
    run_pass(idea_worker(), job_ids=[job_id])
    assert waiting_at(job_id)[:2] == ("waiting_approval", "improvements")
    return reviewer


def _proposal_ids(job_id):
    return [p["proposal_id"] for p in json.loads(
        read_artifact(f"jobs/{job_id}/outputs/agents/improvements/output.json"))["proposals"]]


@pytest.mark.django_db
def test_approving_improvements_may_accept_a_subset_and_an_unknown_id_is_refused(artifact_root, tiny_snapshot):
    people = make_people()
    job_id = submit_via_api(people)
    reviewer = _to_improvements(people, job_id)
    ids = _proposal_ids(job_id)
    assert len(ids) >= 2
    before = JobEvent.objects.filter(job_id=job_id).count()
    # an unknown id, and `accept` at another checkpoint: 400, nothing written
    body = assert_error(approve_via_api(reviewer, job_id, "improvements", accept=[ids[0], "nope"]), 400,
                        "unknown_proposal")
    assert body["errors"][0]["path"] == "/accept/1"
    assert_error(approve_via_api(reviewer, job_id, "runspec", accept=[ids[0]]), 400, "accept_not_allowed")
    assert JobEvent.objects.filter(job_id=job_id).count() == before
    # accepting the second proposal only
    response = approve_via_api(reviewer, job_id, "improvements", accept=[ids[1]])
    assert response.status_code == 200
    assert response.json()["payload"]["accepted"] == [ids[1]]
    run_pass(idea_worker(), job_ids=[job_id])
    assert JobState.objects.get(job_id=job_id).status == "done"
    children = JobSpec.objects.filter(parent_job_id=job_id)
    assert children.count() == 1
    improvements = json.loads(read_artifact(f"jobs/{job_id}/outputs/agents/improvements/output.json"))
    assert children.get().spec["blueprint"] == improvements["proposals"][1]["blueprint"]


@pytest.mark.django_db
def test_rejecting_improvements_ends_the_job_without_children(artifact_root, tiny_snapshot):
    people = make_people()
    job_id = submit_via_api(people)
    reviewer = _to_improvements(people, job_id)
    assert post_json(reviewer, f"/jobs/{job_id}/reject?step=improvements", {"reason": "not now"}).status_code == 200
    run_pass(idea_worker(), job_ids=[job_id])
    assert JobState.objects.get(job_id=job_id).status == "rejected"
    assert not JobSpec.objects.filter(parent_job_id=job_id).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("budget, reason, spawned", [
    ({"max_jobs_per_root": 2}, "max_jobs_per_root", 1),
    ({"max_children_per_job": 3, "max_generations": 0}, "max_generations", 0),
], ids=["jobs_per_root", "generations"])
def test_a_small_budget_spawns_what_fits_and_stops_once_with_the_counters_the_database_holds(
        artifact_root, tiny_snapshot, policy_root, budget, reason, spawned):
    # given an idea under a bundle whose budget leaves room for fewer children than proposed
    bundle = a_budget_bundle(policy_root, "small_budget", **budget)
    people = make_people()
    job_id = submit_via_api(people, policy_bundle_id=bundle)
    # when it is walked to the end, all proposals accepted
    walk_idea_to_done(job_id, client_for(people.reviewer))
    # then the children that fit exist, and one STOPPED_BUDGET ends the job with the database's counters
    state = JobState.objects.get(job_id=job_id)
    assert state.status == "stopped_budget"
    rows = events_of(job_id)
    assert [row.event_type for row in rows][-2:] == ["JOB_SPAWNED", "STOPPED_BUDGET"]
    assert [row.event_type for row in rows].count("STOPPED_BUDGET") == 1
    stop = rows[-1].payload
    assert stop["reason"] == reason and reason in stop["limit"]
    assert len(rows[-2].payload["child_job_ids"]) == spawned
    assert stop["counters"]["children_of_parent"] == JobSpec.objects.filter(parent_job_id=job_id).count() == spawned
    assert stop["counters"]["jobs_in_root"] == JobSpec.objects.filter(root_job_id=job_id).count() == 1 + spawned


def cancelling_spawn(context):
    """The spawn step, with the job cancelled while it runs: its result (and its children) must be fenced."""
    services.cancel(job_id=context.job.job_id, actor=Actor("user", "otto"), reason="stop it")
    return spawn_executor.execute(context)


@pytest.mark.django_db
def test_a_fenced_spawn_leaves_no_child_behind(artifact_root, tiny_snapshot, settings):
    people = make_people()
    job_id = submit_via_api(people)
    reviewer = _to_improvements(people, job_id)
    assert approve_via_api(reviewer, job_id, "improvements").status_code == 200
    settings.EAM_STEP_EXECUTORS = {"spawn": f"{__name__}.cancelling_spawn"}
    summary = run_pass(idea_worker(), job_ids=[job_id])
    assert [s.outcome for s in summary.steps] == ["fenced"]
    assert JobState.objects.get(job_id=job_id).status == "cancelled"
    assert not JobSpec.objects.filter(parent_job_id=job_id).exists()
    assert "JOB_SPAWNED" not in [row.event_type for row in events_of(job_id)]


@pytest.mark.django_db
def test_prompt_pins_from_extensions_are_recorded_and_an_unknown_version_is_refused(artifact_root, tiny_snapshot):
    spec = {"schema_version": "job_spec_v1", "kind": "idea", "snapshot_id": TINY_SNAPSHOT,
            "policy_bundle_id": "default_v2", "idea": an_idea_for_tiny(),
            "extensions": {"prompt_pins": {"report": "v1"}}}
    job, created = services.submit_job_spec(spec=spec, actor=Actor("user", "sam"))
    assert created
    pins = json.loads(read_artifact(f"jobs/{job.job_id}/outputs/agents/prompt_pins.json"))
    assert pins["agents"]["report"]["source"] == "extensions" and pins["agents"]["intent"]["source"] == "default"
    before = JobEvent.objects.count()
    bad = {**spec, "extensions": {"prompt_pins": {"report": "v999"}}}
    with pytest.raises(services.InvalidInput) as caught:
        services.submit_job_spec(spec=bad, actor=Actor("user", "sam"))
    assert caught.value.code == "invalid_prompt_pins"
    assert JobEvent.objects.count() == before and not JobSpec.objects.filter(job_id=content_id(bad)).exists()


LEASE = {"attempt": 1, "worker": "w", "lease_expires_at": "2024-01-01T00:00:00.000000Z"}


def test_a_history_of_job_event_v1_events_still_replays():
    # given a blueprint job's events as job_event_v1 wrote them (no STOPPED_BUDGET existed then)
    history = [("BLUEPRINT_SUBMITTED", None, {"submitter": "sam", "inputs_sha256": "a" * 64}),
               ("STEP_STARTED", "compile", LEASE),
               ("RUNSPEC_COMPILED", "compile", {"artifacts": [], "summary": {}}),
               ("WAITING_APPROVAL", "runspec", {"artifact_sha256": "b" * 64}),
               ("APPROVED", "runspec", {"comment": "", "artifact_sha256": "b" * 64})]
    for step in ("run", "gates", "registry"):
        result = {"run": "RUN_COMPLETED", "gates": "GATES_COMPLETED", "registry": "REGISTRY_UPDATED"}[step]
        history += [("STEP_STARTED", step, LEASE),
                    (result, step, {"artifacts": [], "summary": {"verdict": "PASS"} if step == "gates" else {}})]
    history.append(("DONE", None, {}))
    documents = []
    for seq, (event_type, step, payload) in enumerate(history, start=1):
        doc = {"schema_version": "job_event_v1", "job_id": "0123456789ab", "seq": seq, "event_type": event_type,
               "step": step, "actor": {"kind": "worker", "id": "w"}, "payload": payload,
               "recorded_at": "2024-01-01T00:00:00.000000Z", "prev_hash": "0" * 64}
        assert validate_event("job_event_v1", doc) == [], event_type
        documents.append(doc)
    # when the state is derived, then it replays to done
    state = derive_state(documents)
    assert (state.status, state.verdict, state.last_seq) == ("done", "PASS", len(history))
