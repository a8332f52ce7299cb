"""Agent reruns end to end: a reviewer asks through the API, the worker (in process) runs the rerun like a step, and
the events and files say what happened; nothing written before is ever touched, and every refusal writes nothing.
The model is a real HTTP server on loopback (tests/builders/model_server.py)."""
import json

import pytest
from django.core.management import call_command

from contracts import canonical_json, sha256_hex
from jobs.events import Actor, NewEvent
from jobs.models import JobEvent, JobState
from jobs.pipelines import EventType as E
from jobs.reruns import log_path, rerun_folder, state_path
from research.agents.inputs import strategy_spec_input
from research.artifacts import read_artifact
from workflow import claims
from workflow.executors import rerun as rerun_executor
from workflow.orchestrator import StepContext, run_pass

from ..builders import (
    TINY_SNAPSHOT, a_model_server, an_idea_for_tiny, append, approve_via_api, assert_error, client_for, idea_worker,
    make_people, new_blueprint_job, post_json, rule_based_answer, started, store_snapshot, stored_files,
    to_runspec_review, waiting_at, walk_idea_to_done,
)

pytestmark = pytest.mark.django_db
KEY = "sk-test-SECRET-rerun-4242"


def submit_idea(people) -> str:
    response = post_json(client_for(people.submitter), f"/jobs/idea?snapshot_id={TINY_SNAPSHOT}", an_idea_for_tiny())
    assert response.status_code == 201, response.content
    return response.json()["job_id"]


def at_blueprint(people) -> str:
    job_id = submit_idea(people)
    run_pass(idea_worker(), job_ids=[job_id])
    assert waiting_at(job_id)[:2] == ("waiting_approval", "blueprint")
    return job_id


def ask(people, job_id, by=None, **body):
    return post_json(client_for(by or people.reviewer), f"/jobs/{job_id}/rerun", body)


def on_the_model(settings, monkeypatch, server, *agents):
    monkeypatch.setenv("EAM_TEST_MODEL_KEY", KEY)
    settings.EAM_AGENT_PROVIDERS = {agent: {"provider": "openai_compatible", "base_url": server.url, "model": "m",
                                            "api_key_env": "EAM_TEST_MODEL_KEY", "backoff_seconds": 0.01,
                                            "read_timeout": 5} for agent in agents}


def answering_differently():
    """A model whose blueprint's fast window moves by one on each call to intent."""
    calls = []

    def answer(body):
        output = rule_based_answer(body)
        if "blueprint" in output and "families" in output:
            calls.append(1)
            params = output["blueprint"]["strategy"]["params"]
            params["fast"] = params["fast"] + len(calls) - 1
        return output
    return answer


def files(root, job_id) -> dict[str, str]:
    return {path: sha256_hex((root / path).read_bytes()) for path in stored_files(root)
            if path.startswith(f"jobs/{job_id}/") and "/outputs/reruns/" not in path}


def types(job_id) -> list[str]:
    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq").values_list("event_type", flat=True))


def test_three_reruns_of_intent_at_the_blueprint_checkpoint_append_and_put_each_new_output_under_review(
        artifact_root, tiny_snapshot, settings, monkeypatch):
    people = make_people()
    with a_model_server(answer=answering_differently()) as server:
        on_the_model(settings, monkeypatch, server, "intent")
        # given an idea job waiting at its blueprint checkpoint, the blueprint under review from the model's answer
        job_id = at_blueprint(people)
        first_sha = waiting_at(job_id)[2]
        seen = files(artifact_root, job_id)

        # when a reviewer asks for intent three times, and the worker runs each rerun
        for n in (1, 2, 3):
            response = ask(people, job_id, agent_id="intent", reason=f"the windows look arbitrary ({n})")
            assert response.status_code == 202, response.content
            assert response.json()["event_type"] == "RERUN_REQUESTED"
            run_pass(idea_worker(), job_ids=[job_id])
            # then nothing written before changed, and the rerun's files are new
            now = files(artifact_root, job_id)
            assert {path: now[path] for path in seen} == seen
            assert len(now) > len(seen)
            seen = now

    # three completions, each changed and announced again with its own blueprint under review
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=4).order_by("seq"))
    assert [row.event_type for row in rows] == ["RERUN_REQUESTED", "STEP_STARTED", "RERUN_COMPLETED",
                                                "WAITING_APPROVAL"] * 3
    completed = [row.payload for row in rows if row.event_type == "RERUN_COMPLETED"]
    assert [c["changed"] for c in completed] == [True, True, True]
    assert len({c["output_sha256"] for c in completed}) == 3
    announced = [row.payload for row in rows if row.event_type == "WAITING_APPROVAL"]
    status, step, under_review = waiting_at(job_id)
    assert (status, step, under_review) == ("waiting_approval", "blueprint", announced[-1]["artifact_sha256"])
    assert announced[-1]["artifact_path"] == f"{rerun_folder(job_id, 'intent', completed[-1]['rerun_id'])}/blueprint.json"
    for c in completed:  # each rerun's agent_run.json records the model exchange by sha256
        run = json.loads(read_artifact(f"{rerun_folder(job_id, 'intent', c['rerun_id'])}/agent_run.json"))
        assert run["provider"]["name"] == "openai_compatible" and set(run["exchange"]) == {"prompt", "request",
                                                                                          "response"}

    # rerun_log.jsonl: six lines (a request and a completion each), each chained to the one before
    lines = read_artifact(log_path(job_id)).splitlines(keepends=True)
    docs = [json.loads(line) for line in lines]
    assert [d["kind"] for d in docs] == ["request", "completion"] * 3
    assert [d["prev_line_sha256"] for d in docs] == ["0" * 64] + [sha256_hex(line) for line in lines[:-1]]

    # rerun_state.json is rebuilt from the events byte for byte, and written again when it is lost
    state_file = artifact_root / state_path(job_id)
    before = state_file.read_bytes()
    assert json.loads(before)["agents"]["intent"]["reruns"] == 3
    call_command("rebuild_rerun_state", job_id, stdout=(out := _Out()))
    assert "rerun_state.json identical, rerun_log.jsonl identical" in out.text
    state_file.unlink()
    call_command("rebuild_rerun_state", job_id, stdout=(out := _Out()))
    assert "rerun_state.json written" in out.text and state_file.read_bytes() == before

    # an approval of the first blueprint is stale and writes nothing; the one under review is approved
    reviewer = client_for(people.reviewer)
    stored = store_snapshot()
    assert_error(approve_via_api(reviewer, job_id, "blueprint", artifact_sha256=first_sha), 409, "stale_review")
    assert store_snapshot() == stored
    assert approve_via_api(reviewer, job_id, "blueprint", artifact_sha256=under_review).status_code == 200

    # and the next step reads the blueprint that was approved: the third rerun's
    run_pass(idea_worker(), job_ids=[job_id])
    approved_blueprint = json.loads(read_artifact(announced[-1]["artifact_path"]))
    spec_run = json.loads(read_artifact(f"jobs/{job_id}/outputs/agents/strategy_spec/agent_run.json"))
    job = JobState.objects.select_related("job").get(job_id=job_id).job
    assert spec_run["input_sha256"] == sha256_hex(canonical_json(strategy_spec_input(
        blueprint=approved_blueprint, snapshot_id=job.snapshot_id, policy_bundle_id=job.policy_bundle_id)))


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_a_rerun_with_the_same_inputs_prompt_and_rules_says_unchanged_and_earlier_approvals_stay_valid(
        artifact_root, tiny_snapshot):
    # given an idea job waiting at its blueprint checkpoint (rule-based agents)
    people = make_people()
    job_id = at_blueprint(people)
    sha = waiting_at(job_id)[2]

    # when intent is run again under the same prompt
    assert ask(people, job_id, agent_id="intent", reason="check it is stable").status_code == 202
    run_pass(idea_worker(), job_ids=[job_id])

    # then it says so, the checkpoint is not announced again, and an approval naming the sha256 seen passes
    assert types(job_id)[-3:] == ["RERUN_REQUESTED", "STEP_STARTED", "RERUN_COMPLETED"]
    completed = JobEvent.objects.get(job_id=job_id, event_type="RERUN_COMPLETED").payload
    assert completed["changed"] is False and completed["prompt_version"] == "v1"
    assert waiting_at(job_id) == ("waiting_approval", "blueprint", sha)
    response = approve_via_api(client_for(people.reviewer), job_id, "blueprint", artifact_sha256=sha)
    assert response.status_code == 200, response.content


def test_a_rerun_on_a_done_job_is_evidence_only(artifact_root, tiny_snapshot):
    # given an idea job that ran to its end
    people = make_people()
    job_id = submit_idea(people)
    walk_idea_to_done(job_id, client_for(people.reviewer))
    before = JobState.objects.get(job_id=job_id)

    # when the report and the improvements are asked for again and the worker runs them
    for agent_id in ("report", "improvements"):
        assert ask(people, job_id, agent_id=agent_id, reason="for the file").status_code == 202
    run_pass(idea_worker(), job_ids=[job_id])

    # then both completed, and nothing about the job's outcome moved
    assert types(job_id)[-6:] == ["RERUN_REQUESTED", "RERUN_REQUESTED", "STEP_STARTED", "RERUN_COMPLETED",
                                  "STEP_STARTED", "RERUN_COMPLETED"]
    after = JobState.objects.get(job_id=job_id)
    fields = ("status", "stage", "next_step", "waiting_step", "review_sha256", "verdict", "error", "reruns")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]
    assert after.status in ("done", "stopped_budget") and after.reruns is None


def refusal_cases(people, artifact_root):
    """(job_id, body, by, status, code) per refusal."""
    blueprint_job = new_blueprint_job()
    to_runspec_review(blueprint_job.job_id)
    waiting = at_blueprint(people)
    queued = submit_idea_with(people, title="A queued idea about momentum")
    running = submit_idea_with(people, title="A running idea about trends")
    run_pass(idea_worker(), job_ids=[running])
    assert approve_via_api(client_for(people.reviewer), running, "blueprint").status_code == 200
    append(running, started("strategy_spec"))
    return [
        (running, {"agent_id": "intent", "reason": "r"}, None, 409, "step_in_progress"),
        (blueprint_job.job_id, {"agent_id": "intent", "reason": "r"}, None, 409, "agent_not_in_pipeline"),
        (waiting, {"agent_id": "nobody", "reason": "r"}, None, 409, "agent_not_in_pipeline"),
        (waiting, {"agent_id": "report", "reason": "r"}, None, 409, "agent_not_run"),
        (queued, {"agent_id": "intent", "reason": "r"}, None, 409, "step_in_progress"),
        (waiting, {"agent_id": "intent", "reason": "r", "prompt_version": "v9"}, None, 400, "unknown_prompt_version"),
        (waiting, {"agent_id": "intent"}, None, 400, "reason_required"),
        (waiting, {"agent_id": "intent", "reason": "  "}, None, 400, "reason_required"),
        (waiting, {"reason": "r"}, None, 400, "invalid_agent_id"),
        (waiting, {"agent_id": "intent", "reason": "r"}, people.submitter, 403, "permission_denied"),
        ("0123456789ab", {"agent_id": "intent", "reason": "r"}, None, 404, "job_not_found"),
    ]


def submit_idea_with(people, **members) -> str:
    response = post_json(client_for(people.submitter), f"/jobs/idea?snapshot_id={TINY_SNAPSHOT}",
                         an_idea_for_tiny(**members))
    assert response.status_code == 201, response.content
    return response.json()["job_id"]


def test_each_refused_rerun_answers_its_code_and_writes_nothing(artifact_root, tiny_snapshot):
    people = make_people()
    for job_id, body, by, status, code in refusal_cases(people, artifact_root):
        stored, on_disk = store_snapshot(), stored_files(artifact_root)
        assert_error(ask(people, job_id, by=by, **body), status, code)
        assert store_snapshot() == stored, code
        assert stored_files(artifact_root) == on_disk, code


def test_a_second_rerun_of_a_pending_agent_and_an_approval_meanwhile_are_refused(artifact_root, tiny_snapshot):
    # given a rerun of intent asked for and not run yet
    people = make_people()
    job_id = at_blueprint(people)
    assert ask(people, job_id, agent_id="intent", reason="once").status_code == 202
    stored = store_snapshot()

    # when it is asked for again, or the checkpoint approved, then both are refused and nothing is written
    assert_error(ask(people, job_id, agent_id="intent", reason="twice"), 409, "rerun_pending")
    assert_error(approve_via_api(client_for(people.reviewer), job_id, "blueprint"), 409, "rerun_pending")
    assert store_snapshot() == stored


def test_a_rerun_is_refused_while_the_job_is_in_error(artifact_root, tiny_snapshot):
    people = make_people()
    job_id = at_blueprint(people)
    approve_via_api(client_for(people.reviewer), job_id, "blueprint")
    append(job_id, started("strategy_spec"), NewEvent(E.ERROR, Actor.worker("w"), step="strategy_spec", payload={
        "error_class": "Broken", "message": "for the test"}))
    stored = store_snapshot()
    assert_error(ask(people, job_id, agent_id="intent", reason="r"), 409, "job_in_error")
    assert store_snapshot() == stored


def test_a_rerun_attempt_that_wrote_its_files_is_not_asked_of_the_model_again(
        artifact_root, tiny_snapshot, settings, monkeypatch):
    people = make_people()
    with a_model_server() as server:
        on_the_model(settings, monkeypatch, server, "intent")
        job_id = at_blueprint(people)
        assert ask(people, job_id, agent_id="intent", reason="again").status_code == 202
        claim = claims.claim_next(worker_id="w-crash", lease_seconds=60, max_attempts=3, job_ids=[job_id])
        context = StepContext(job=claim.job, step="rerun", attempt=1, worker_id="w-crash")
        calls = len(server.requests)

        # when the rerun runs twice for one claim (its worker lost after writing its files, say)
        first = rerun_executor.execute(context)
        second = rerun_executor.execute(context)

    # then the model was called once, and the second run is the first one, file for file
    assert len(server.requests) == calls + 1
    assert (second.artifacts, second.summary["output_sha256"]) == (first.artifacts, first.summary["output_sha256"])


def test_an_idea_job_runs_to_its_end_with_intent_and_improvements_on_a_model(
        artifact_root, tiny_snapshot, settings, monkeypatch, caplog):
    caplog.set_level("DEBUG")
    people = make_people()
    with a_model_server() as server:
        on_the_model(settings, monkeypatch, server, "intent", "improvements")
        # given an idea job whose intent and improvements agents call a model over HTTP
        job_id = submit_idea(people)

        # when the worker runs it and a reviewer approves each checkpoint
        walk_idea_to_done(job_id, client_for(people.reviewer))

    # then it ended, the model answered both agents, with the bearer key on each request
    assert JobState.objects.get(job_id=job_id).status in ("done", "stopped_budget")
    systems = [r.body["messages"][0]["content"] for r in server.requests]
    assert len(systems) == 2
    assert "agent_intent_output_v1" in systems[0] and "agent_improvements_output_v1" in systems[1]
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    for agent_id in ("intent", "improvements"):
        run = json.loads(read_artifact(f"jobs/{job_id}/outputs/agents/{agent_id}/agent_run.json"))
        assert run["provider"] == {"name": "openai_compatible", "model": "m", "base_url": server.url}
        for ref in run["exchange"].values():
            assert sha256_hex(read_artifact(ref["path"])) == ref["sha256"]

    # and the key is in no event, no file and no log line
    events = json.dumps([row.payload for row in JobEvent.objects.filter(job_id=job_id)])
    assert KEY not in events
    assert all(KEY.encode() not in (artifact_root / path).read_bytes() for path in stored_files(artifact_root))
    assert KEY not in caplog.text


@pytest.mark.parametrize("reply, error_class, retryable", [
    ({"status": 400}, "http_status", False),
    ({"body": b'{"choices": [{"message": {"content": "not json"}}]}'}, "invalid_output", False),
])
def test_a_model_call_that_fails_records_its_class_status_attempt_and_path_and_writes_no_artifact(
        artifact_root, tiny_snapshot, settings, monkeypatch, reply, error_class, retryable):
    from ..builders import Reply

    people = make_people()
    with a_model_server(Reply(**reply)) as server:
        on_the_model(settings, monkeypatch, server, "intent")
        job_id = submit_idea(people)
        run_pass(idea_worker(), job_ids=[job_id])

    failed = JobEvent.objects.get(job_id=job_id, event_type="STEP_FAILED").payload
    assert (failed["error_class"], failed["retryable"]) == (error_class, retryable)
    assert failed["details"] == {"status": reply.get("status", 200), "attempt": 1, "path": "/v1/chat/completions"}
    assert types(job_id)[-2:] == ["STEP_FAILED", "ERROR"]
    assert not (artifact_root / f"jobs/{job_id}/outputs/agents/intent").exists()
