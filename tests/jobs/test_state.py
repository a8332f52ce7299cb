"""State derivation as a pure function: no database, event dicts built by small builders.

Every event type of DESIGN §4.5 moves the state as documented, both pipelines run to DONE, and every
illegal sequence raises IllegalTransition.
"""
from dataclasses import replace

import pytest

from jobs.pipelines import (
    BLUEPRINT_PIPELINE,
    IDEA_PIPELINE,
    PIPELINES,
    Checkpoint,
    EventType as E,
    Kind,
    Status,
    Step,
)
from jobs.state import ZERO_HASH, IllegalTransition, apply_event, derive_state, initial_state

SHA_A = "a" * 64
SHA_B = "b" * 64


# --- builders --------------------------------------------------------------------------------------


def event(event_type, step=None, *, seq=None, hash=None, **payload) -> dict:
    """One event as the state machine sees it; seq is filled in by `numbered` unless given."""
    doc = {"event_type": str(event_type), "step": step, "payload": payload}
    if seq is not None:
        doc["seq"] = seq
    if hash is not None:
        doc["hash"] = hash
    return doc


def numbered(events: list[dict]) -> list[dict]:
    return [{**e, "seq": e.get("seq", i)} for i, e in enumerate(events, start=1)]


def submitted(kind: Kind = Kind.BLUEPRINT) -> dict:
    etype = E.BLUEPRINT_SUBMITTED if kind == Kind.BLUEPRINT else E.IDEA_SUBMITTED
    return event(etype, submitter="alice", inputs_sha256=SHA_A)


def started(step, attempt=1, recovered_from=None) -> dict:
    payload = {"attempt": attempt, "worker": "w1", "lease_expires_at": "2030-01-01T00:00:00.000000Z"}
    if recovered_from:
        payload["recovered_from"] = recovered_from
    return event(E.STEP_STARTED, step, **payload)


def result_of(step_name: str) -> dict:
    step = next(s for p in PIPELINES.values() for s in p if isinstance(s, Step) and s.name == step_name)
    return event(step.result_event, step_name, artifacts=[], summary={})


def waiting(checkpoint, sha=SHA_A) -> dict:
    return event(E.WAITING_APPROVAL, checkpoint, artifact_sha256=sha)


def approved(checkpoint, sha=SHA_A) -> dict:
    return event(E.APPROVED, checkpoint, comment="looks right", artifact_sha256=sha)


def rejected(checkpoint) -> dict:
    return event(E.REJECTED, checkpoint, reason="wrong universe")


def step_failed(step, attempt=1, retry_at="2030-01-01T00:05:00.000000Z") -> dict:
    return event(E.STEP_FAILED, step, attempt=attempt, error_class="Timeout", message="slow", retryable=True,
                 retry_at=retry_at)


def error(step) -> dict:
    return event(E.ERROR, step, error_class="CompileError", message="bad params")


def retry_requested() -> dict:
    return event(E.RETRY_REQUESTED, reason="fixed the data", operator="ops")


def cancelled() -> dict:
    return event(E.CANCELLED, reason="not needed", operator="ops")


def rerun(etype=E.RERUN_REQUESTED, agent_id="intent", rerun_id="r1") -> dict:
    return event(etype, "rerun", agent_id=agent_id, rerun_id=rerun_id, prompt_version="v1", artifacts=[])


def rerun_started(rerun_id="r1", attempt=1, recovered_from=None) -> dict:
    return {**started("rerun", attempt, recovered_from), "payload": {
        **started("rerun", attempt, recovered_from)["payload"], "rerun_id": rerun_id}}


def rerun_failed(retryable: bool, attempt=1) -> dict:
    return event(E.STEP_FAILED, "rerun", attempt=attempt, error_class="timeout", message="slow", retryable=retryable,
                 retry_at="2030-01-01T00:05:00.000000Z" if retryable else None)


def a_whole_rerun(agent_id="intent", rerun_id="r1") -> list[dict]:
    return [rerun(agent_id=agent_id, rerun_id=rerun_id), rerun_started(rerun_id),
            rerun(E.RERUN_COMPLETED, agent_id, rerun_id)]


def stopped_budget(step="spawn") -> dict:
    return event(E.STOPPED_BUDGET, step, reason="max_jobs_per_root", limit={"max": 10}, counters={"jobs": 10})


def done() -> dict:
    return event(E.DONE)


def through(kind: Kind, stages: int) -> list[dict]:
    """Events that carry a job of `kind` through its first `stages` pipeline stages, every one successful."""
    events = [submitted(kind)]
    for stage in PIPELINES[kind][:stages]:
        if isinstance(stage, Step):
            events += [started(stage.name), result_of(stage.name)]
        else:
            events += [waiting(stage.name), approved(stage.name)]
    return events


def stage_index(kind: Kind, name: str, cls) -> int:
    return next(i for i, s in enumerate(PIPELINES[kind]) if isinstance(s, cls) and s.name == name)


def state_of(events: list[dict], kind=None):
    return derive_state(numbered(events), kind)


def then_illegal(events: list[dict], kind=None, match=None):
    with pytest.raises(IllegalTransition, match=match):
        state_of(events, kind)


def compiling() -> list[dict]:
    return [submitted(), started("compile")]


def at_runspec_review() -> list[dict]:
    return [submitted(), started("compile"), result_of("compile"), waiting("runspec")]


def blueprint_job_done() -> list[dict]:
    return through(Kind.BLUEPRINT, len(BLUEPRINT_PIPELINE)) + [done()]


def idea_job_done() -> list[dict]:
    return through(Kind.IDEA, len(IDEA_PIPELINE)) + [done()]


# --- the pipelines as data --------------------------------------------------------------------------


def test_the_blueprint_pipeline_is_the_one_of_the_design():
    assert [(type(s).__name__, s.name) for s in BLUEPRINT_PIPELINE] == [
        ("Step", "compile"), ("Checkpoint", "runspec"), ("Step", "run"), ("Step", "gates"), ("Step", "registry"),
    ]


def test_the_idea_pipeline_is_the_one_of_the_design():
    assert [(type(s).__name__, s.name) for s in IDEA_PIPELINE] == [
        ("Step", "intent"), ("Checkpoint", "blueprint"), ("Step", "strategy_spec"), ("Checkpoint", "strategy_spec"),
        ("Step", "compile"), ("Checkpoint", "runspec"), ("Step", "trace_preview"), ("Checkpoint", "trace_preview"),
        ("Step", "run"), ("Step", "gates"), ("Step", "registry"), ("Step", "report"), ("Step", "improvements"),
        ("Checkpoint", "improvements"), ("Step", "spawn"),
    ]


# --- submit events ----------------------------------------------------------------------------------


def test_a_submitted_blueprint_job_is_queued_for_compile():
    state = state_of([submitted(Kind.BLUEPRINT)])

    assert state.kind == Kind.BLUEPRINT
    assert state.status == Status.QUEUED
    assert (state.stage, state.next_step, state.waiting_step, state.attempt) == (0, "compile", None, 0)
    assert (state.last_seq, state.last_event_type) == (1, "BLUEPRINT_SUBMITTED")


def test_a_submitted_idea_job_is_queued_for_the_intent_agent():
    state = state_of([submitted(Kind.IDEA)])

    assert state.kind == Kind.IDEA
    assert (state.status, state.next_step, state.last_event_type) == (Status.QUEUED, "intent", "IDEA_SUBMITTED")


def test_a_job_without_events_has_no_state():
    with pytest.raises(IllegalTransition):
        derive_state([])


@pytest.mark.parametrize("first", [started("compile"), done(), cancelled()])
def test_a_job_must_start_with_a_submit_event(first):
    then_illegal([first])


def test_a_blueprint_job_cannot_start_with_an_idea_submit_event():
    then_illegal([submitted(Kind.IDEA)], kind=Kind.BLUEPRINT)


@pytest.mark.parametrize("again", [submitted(Kind.BLUEPRINT), submitted(Kind.IDEA)])
def test_a_submit_event_may_only_be_the_first(again):
    then_illegal([submitted(Kind.BLUEPRINT), again])
    then_illegal([submitted(Kind.BLUEPRINT), started("compile"), result_of("compile"), again])


# --- seq ---------------------------------------------------------------------------------------------


def test_a_gap_in_seq_is_illegal():
    events = [submitted(), {**started("compile"), "seq": 3}]
    with pytest.raises(IllegalTransition, match="seq 3"):
        derive_state(numbered(events))


def test_a_repeated_seq_is_illegal():
    events = [submitted(), {**started("compile"), "seq": 1}]
    with pytest.raises(IllegalTransition):
        derive_state(numbered(events))


def test_the_first_event_must_have_seq_1():
    with pytest.raises(IllegalTransition):
        derive_state([{**submitted(), "seq": 2}])


def test_the_last_hash_follows_the_events():
    state = derive_state([{**submitted(), "seq": 1, "hash": SHA_B}])
    assert state.last_hash == SHA_B
    assert initial_state(Kind.BLUEPRINT).last_hash == ZERO_HASH


# --- STEP_STARTED ------------------------------------------------------------------------------------


def test_starting_the_due_step_makes_the_job_running_with_attempt_1():
    state = state_of(compiling())
    assert (state.status, state.next_step, state.attempt) == (Status.RUNNING, "compile", 1)


def test_a_running_step_can_be_taken_over_with_recovered_from():
    # given compile running on w1, whose lease expired
    # when w2 takes it over naming w1
    state = state_of(compiling() + [started("compile", attempt=2, recovered_from="w1")])

    # then it runs again, as attempt 2
    assert (state.status, state.next_step, state.attempt) == (Status.RUNNING, "compile", 2)


def test_a_running_step_cannot_be_started_again_without_recovered_from():
    then_illegal(compiling() + [started("compile", attempt=2)], match="recovered_from")


@pytest.mark.parametrize("step", ["run", "intent", "runspec", None])
def test_starting_a_step_that_is_not_due_is_illegal(step):
    then_illegal([submitted(), started(step)])


@pytest.mark.parametrize("attempt", [0, 2, None])
def test_starting_with_the_wrong_attempt_is_illegal(attempt):
    then_illegal([submitted(), started("compile", attempt=attempt)], match="attempt")


def test_a_take_over_must_count_the_next_attempt():
    then_illegal(compiling() + [started("compile", attempt=1, recovered_from="w1")])


def test_no_step_can_be_started_at_a_checkpoint():
    # the runspec checkpoint is due but not yet open, and then open
    then_illegal([submitted(), started("compile"), result_of("compile"), started("run")])
    then_illegal(at_runspec_review() + [started("run")])
    then_illegal(at_runspec_review() + [started("runspec")])


# --- result events -----------------------------------------------------------------------------------


ALL_STEPS = [(kind, s) for kind, p in PIPELINES.items() for s in p if isinstance(s, Step)]


@pytest.mark.parametrize("kind, step", ALL_STEPS, ids=[f"{k}-{s.name}" for k, s in ALL_STEPS])
def test_the_result_event_of_a_running_step_moves_to_the_next_stage(kind, step):
    # given a job whose step is running
    index = stage_index(kind, step.name, Step)
    before = through(kind, index) + [started(step.name)]

    # when its result event arrives
    state = state_of(before + [result_of(step.name)])

    # then the next stage is due: a step is queued, a checkpoint is about to open, or the pipeline is complete
    pipeline = PIPELINES[kind]
    following = pipeline[index + 1] if index + 1 < len(pipeline) else None
    assert state.status == Status.QUEUED
    assert state.stage == index + 1
    assert state.next_step == (following.name if isinstance(following, Step) else None)
    assert (state.attempt, state.error, state.waiting_step) == (0, None, None)
    assert state.last_event_type == step.result_event


@pytest.mark.parametrize("kind, step", ALL_STEPS, ids=[f"{k}-{s.name}" for k, s in ALL_STEPS])
def test_a_result_event_for_a_step_that_is_not_running_is_illegal(kind, step):
    # given the step is due but nobody started it
    index = stage_index(kind, step.name, Step)
    then_illegal(through(kind, index) + [result_of(step.name)], match="not running")


def test_a_result_event_for_another_step_than_the_running_one_is_illegal():
    then_illegal(compiling() + [result_of("run")])


def test_the_wrong_result_event_for_the_running_step_is_illegal():
    # RUN_COMPLETED named as the result of compile
    then_illegal(compiling() + [event(E.RUN_COMPLETED, "compile", artifacts=[], summary={})])


def test_a_result_event_cannot_arrive_twice():
    then_illegal(compiling() + [result_of("compile"), result_of("compile")])


# --- checkpoints ----------------------------------------------------------------------------------------


def test_waiting_approval_opens_the_due_checkpoint_with_the_artifact_under_review():
    state = state_of(at_runspec_review())

    assert state.status == Status.WAITING_APPROVAL
    assert (state.waiting_step, state.next_step, state.review_sha256) == ("runspec", None, SHA_A)


def test_waiting_approval_for_another_checkpoint_than_the_due_one_is_illegal():
    then_illegal([submitted(), started("compile"), result_of("compile"), waiting("blueprint")])


def test_waiting_approval_while_a_step_is_due_or_running_is_illegal():
    then_illegal([submitted(), waiting("runspec")])
    then_illegal(compiling() + [waiting("runspec")])


def test_a_checkpoint_cannot_be_opened_twice():
    then_illegal(at_runspec_review() + [waiting("runspec", SHA_B)])


def test_approving_the_open_checkpoint_moves_to_the_next_step():
    state = state_of(at_runspec_review() + [approved("runspec")])

    assert state.status == Status.QUEUED
    assert (state.stage, state.next_step, state.waiting_step, state.review_sha256) == (2, "run", None, None)
    assert state.last_event_type == "APPROVED"


def test_approving_a_checkpoint_before_it_is_open_is_illegal():
    # compile is done, the runspec checkpoint is due, but no WAITING_APPROVAL was recorded
    then_illegal([submitted(), started("compile"), result_of("compile"), approved("runspec")], match="not waiting")


def test_approving_the_wrong_checkpoint_is_illegal():
    then_illegal(at_runspec_review() + [approved("blueprint")], match="not waiting")
    then_illegal(at_runspec_review() + [approved("compile")], match="not waiting")


def test_approving_while_a_step_runs_is_illegal():
    then_illegal(compiling() + [approved("runspec")])
    then_illegal([submitted(), approved("runspec")])


def test_a_checkpoint_is_decided_once():
    then_illegal(at_runspec_review() + [approved("runspec"), approved("runspec")])
    then_illegal(at_runspec_review() + [approved("runspec"), rejected("runspec")])
    then_illegal(at_runspec_review() + [rejected("runspec"), approved("runspec")])


def test_rejecting_the_open_checkpoint_ends_the_job():
    state = state_of(at_runspec_review() + [rejected("runspec")])

    assert state.status == Status.REJECTED
    assert state.is_terminal
    assert (state.next_step, state.waiting_step) == (None, None)


def test_rejecting_a_checkpoint_that_is_not_open_is_illegal():
    then_illegal(compiling() + [rejected("runspec")])
    then_illegal(at_runspec_review() + [rejected("blueprint")])


# --- failures, errors, retry ----------------------------------------------------------------------------


def test_a_failed_step_is_queued_again_at_its_retry_time():
    # given compile running as attempt 1
    # when it fails with a retry time
    state = state_of(compiling() + [step_failed("compile", retry_at="2030-01-01T00:05:00.000000Z")])

    # then it is due again from retry_at, the attempt count is kept, and the failure is recorded
    assert state.status == Status.QUEUED
    assert (state.next_step, state.attempt) == ("compile", 1)
    assert state.available_at == "2030-01-01T00:05:00.000000Z"
    assert state.error == {"step": "compile", "error_class": "Timeout", "message": "slow"}


def test_after_a_failure_the_next_attempt_starts_and_a_success_clears_the_failure():
    events = compiling() + [step_failed("compile"), started("compile", attempt=2)]
    state = state_of(events)
    assert (state.status, state.attempt, state.available_at) == (Status.RUNNING, 2, None)

    state = state_of(events + [result_of("compile")])
    assert (state.attempt, state.error, state.available_at) == (0, None, None)


def test_after_a_failure_the_same_attempt_cannot_start_again():
    then_illegal(compiling() + [step_failed("compile"), started("compile", attempt=1)])


def test_a_failure_of_a_step_that_is_not_running_is_illegal():
    then_illegal([submitted(), step_failed("compile")])
    then_illegal(compiling() + [step_failed("run")])
    then_illegal(at_runspec_review() + [step_failed("compile")])


def test_an_error_stops_the_job_until_an_operator_acts():
    state = state_of(compiling() + [error("compile")])

    assert state.status == Status.ERROR
    assert not state.is_terminal
    assert state.error == {"step": "compile", "error_class": "CompileError", "message": "bad params"}


def test_an_error_can_be_recorded_for_a_due_step_that_is_not_running():
    assert state_of([submitted(), error("compile")]).status == Status.ERROR


def test_an_error_for_a_step_that_is_not_due_is_illegal():
    then_illegal(compiling() + [error("run")])
    then_illegal(at_runspec_review() + [error("runspec")])


def test_nothing_runs_while_the_job_is_in_error():
    then_illegal(compiling() + [error("compile"), started("compile", attempt=2)])
    then_illegal(compiling() + [error("compile"), result_of("compile")])


def test_a_retry_from_error_queues_the_step_again_with_a_fresh_attempt_count():
    events = compiling() + [error("compile"), retry_requested()]
    state = state_of(events)

    assert state.status == Status.QUEUED
    assert (state.next_step, state.attempt, state.error, state.available_at) == ("compile", 0, None, None)
    assert state_of(events + [started("compile", attempt=1)]).status == Status.RUNNING


@pytest.mark.parametrize(
    "before",
    [[submitted()], compiling(), at_runspec_review(), compiling() + [step_failed("compile")]],
    ids=["queued", "running", "waiting", "failed"],
)
def test_a_retry_when_not_in_error_is_illegal(before):
    then_illegal(before + [retry_requested()], match="retry")


# --- cancel, budget, rerun, spawn, done -------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [[submitted()], compiling(), at_runspec_review(), compiling() + [error("compile")]],
    ids=["queued", "running", "waiting", "error"],
)
def test_a_job_that_has_not_ended_can_be_cancelled(before):
    state = state_of(before + [cancelled()])

    assert state.status == Status.CANCELLED
    assert state.is_terminal
    assert (state.next_step, state.waiting_step) == (None, None)


def at_blueprint_review() -> list[dict]:
    return through(Kind.IDEA, 1) + [waiting("blueprint")]


@pytest.mark.parametrize("before", [at_runspec_review(), blueprint_job_done(),
                                    at_runspec_review() + [rejected("runspec")], [submitted(), cancelled()]],
                         ids=["waiting", "done", "rejected", "cancelled"])
def test_a_whole_rerun_does_not_move_the_pipeline(before):
    # given a job that waits at a checkpoint or has ended
    state_before = state_of(before)

    # when an agent rerun is asked for, claimed and completed
    state_after = state_of(before + a_whole_rerun())

    # then only the bookkeeping of the last event changed
    assert state_after == replace(state_before, last_seq=state_before.last_seq + 3,
                                  last_event_type=str(E.RERUN_COMPLETED))


def test_a_pending_rerun_is_due_and_a_started_one_is_running():
    pending = state_of(at_blueprint_review() + [rerun()])
    assert pending.reruns == ({"agent_id": "intent", "rerun_id": "r1", "attempt": 0, "running": False},)
    assert (pending.status, pending.running_step) == (Status.WAITING_APPROVAL, None)

    running = state_of(at_blueprint_review() + [rerun(), rerun_started()])
    assert running.reruns[0]["running"] and running.running_step == "rerun"
    assert running.status == Status.WAITING_APPROVAL  # the job still waits: the rerun is beside the pipeline


@pytest.mark.parametrize("before", [[submitted()], compiling(), compiling() + [error("compile")]],
                         ids=["queued", "running", "error"])
def test_a_rerun_is_refused_while_a_step_is_due_or_running_or_the_job_is_in_error(before):
    then_illegal(before + [rerun()], match="while")


def test_one_rerun_per_agent_may_be_pending_and_others_queue_behind_it():
    then_illegal(at_blueprint_review() + [rerun(), rerun(rerun_id="r2")], match="already pending")

    state = state_of(at_blueprint_review() + [rerun(), rerun(agent_id="report", rerun_id="r2"), rerun_started()])
    assert [r["rerun_id"] for r in state.reruns] == ["r1", "r2"]
    then_illegal(at_blueprint_review() + [rerun(), rerun(agent_id="report", rerun_id="r2"), rerun_started("r2")],
                 match="the rerun due is r1")


def test_a_checkpoint_is_not_approved_while_a_rerun_is_pending_but_may_be_rejected():
    then_illegal(at_blueprint_review() + [rerun(), approved("blueprint")], match="rerun is pending")
    state = state_of(at_blueprint_review() + [rerun(), rejected("blueprint"), rerun_started(),
                                              rerun(E.RERUN_COMPLETED)])
    assert (state.status, state.reruns) == (Status.REJECTED, ())


def test_a_failed_rerun_waits_for_its_retry_time_or_ends_when_it_may_not_be_retried():
    retrying = state_of(at_blueprint_review() + [rerun(), rerun_started(), rerun_failed(True)])
    assert retrying.reruns[0]["running"] is False and retrying.available_at == "2030-01-01T00:05:00.000000Z"
    second = state_of(at_blueprint_review() + [rerun(), rerun_started(), rerun_failed(True), rerun_started(attempt=2)])
    assert second.reruns[0]["attempt"] == 2

    ended = state_of(at_blueprint_review() + [rerun(), rerun_started(), rerun_failed(False)])
    assert (ended.reruns, ended.status) == ((), Status.WAITING_APPROVAL)


def test_a_running_rerun_is_taken_over_only_with_recovered_from():
    then_illegal(at_blueprint_review() + [rerun(), rerun_started(), rerun_started(attempt=2)], match="recovered_from")
    state = state_of(at_blueprint_review() + [rerun(), rerun_started(), rerun_started(attempt=2, recovered_from="w1")])
    assert state.reruns[0]["attempt"] == 2


def test_a_checkpoint_is_announced_again_only_right_after_a_rerun_completed():
    state = state_of(at_blueprint_review() + a_whole_rerun() + [waiting("blueprint", SHA_B)])
    assert (state.status, state.review_sha256) == (Status.WAITING_APPROVAL, SHA_B)
    then_illegal(at_blueprint_review() + [waiting("blueprint", SHA_B)], match="already open")
    then_illegal(at_blueprint_review() + a_whole_rerun() + [waiting("runspec", SHA_B)], match="no checkpoint")


def test_rerun_events_out_of_order_are_illegal():
    then_illegal(at_blueprint_review() + [rerun_started()], match="no agent rerun pending")
    then_illegal(at_blueprint_review() + [rerun(), rerun(E.RERUN_COMPLETED)], match="not running")
    then_illegal(at_blueprint_review() + [rerun(), rerun_started(), rerun(E.RERUN_COMPLETED, rerun_id="r9")],
                 match="the rerun running is r1")


def test_job_spawned_completes_the_spawn_step_of_an_idea_job():
    spawn = stage_index(Kind.IDEA, "spawn", Step)
    events = through(Kind.IDEA, spawn) + [started("spawn"), event(E.JOB_SPAWNED, "spawn", artifacts=[], summary={},
                                                                  child_job_ids=["0123456789ab"])]
    state = state_of(events)

    assert (state.status, state.stage, state.next_step) == (Status.QUEUED, len(IDEA_PIPELINE), None)


def test_a_spawn_stopped_by_the_budget_ends_the_job():
    spawn = stage_index(Kind.IDEA, "spawn", Step)
    state = state_of(through(Kind.IDEA, spawn) + [started("spawn"), stopped_budget("spawn")])

    assert state.status == Status.STOPPED_BUDGET
    assert state.is_terminal


def test_a_spawn_that_spawned_some_children_may_end_stopped_by_the_budget_instead_of_done():
    spawn = stage_index(Kind.IDEA, "spawn", Step)
    spawned = event(E.JOB_SPAWNED, "spawn", artifacts=[], summary={}, child_job_ids=["0123456789ab"])
    state = state_of(through(Kind.IDEA, spawn) + [started("spawn"), spawned, stopped_budget("spawn")])

    assert state.status == Status.STOPPED_BUDGET


def test_stopped_budget_outside_a_running_step_is_illegal():
    spawn = stage_index(Kind.IDEA, "spawn", Step)
    then_illegal(through(Kind.IDEA, spawn) + [stopped_budget("spawn")])
    then_illegal(through(Kind.IDEA, spawn) + [started("spawn"), stopped_budget("intent")])


def test_done_after_the_last_stage_ends_the_job():
    state = state_of(blueprint_job_done())
    assert state.status == Status.DONE
    assert state.is_terminal


@pytest.mark.parametrize("stages", range(len(BLUEPRINT_PIPELINE)))
def test_done_before_the_last_stage_is_illegal(stages):
    then_illegal(through(Kind.BLUEPRINT, stages) + [done()], match="DONE before")


def test_done_while_the_last_step_runs_is_illegal():
    then_illegal(through(Kind.BLUEPRINT, len(BLUEPRINT_PIPELINE) - 1) + [started("registry"), done()])


def test_done_at_the_open_last_checkpoint_of_an_idea_job_is_illegal():
    improvements = stage_index(Kind.IDEA, "improvements", Checkpoint)
    then_illegal(through(Kind.IDEA, improvements) + [waiting("improvements"), done()])


def manual_refusal(step=None) -> dict:
    """A manual spawn (POST /jobs/{id}/spawn) the budget refused, recorded on its parent."""
    return event(E.STOPPED_BUDGET, step, reason="max_children_per_job", limit={"max_children_per_job": 3},
                 counters={"generation": 1, "children_of_parent": 3, "jobs_in_root": 4, "requested": 1,
                           "spawned": 0}, manual=True)


@pytest.mark.parametrize("ending", ["done", "stopped_budget"])
def test_a_refused_manual_spawn_is_recorded_after_done_or_stopped_budget_without_moving_the_state(ending):
    ended = state_of(ENDINGS[ending])
    after = state_of(ENDINGS[ending] + [manual_refusal(), manual_refusal()])
    assert replace(after, last_seq=ended.last_seq, last_event_type=ended.last_event_type) == ended
    assert after.last_event_type == E.STOPPED_BUDGET and after.status == ended.status


@pytest.mark.parametrize("ending", ["rejected", "cancelled"])
def test_a_refused_manual_spawn_is_illegal_after_rejected_or_cancelled(ending):
    then_illegal(ENDINGS[ending] + [manual_refusal()])


def test_a_refused_manual_spawn_is_illegal_before_the_end_or_with_a_step():
    spawn = stage_index(Kind.IDEA, "spawn", Step)
    then_illegal([submitted(), manual_refusal()])
    then_illegal(at_runspec_review() + [manual_refusal()])
    then_illegal(through(Kind.IDEA, spawn) + [started("spawn"), manual_refusal()])
    then_illegal(blueprint_job_done() + [manual_refusal("spawn")])


ANY_EVENT = [
    submitted(), started("compile"), started("run"), result_of("compile"), result_of("registry"), waiting("runspec"),
    approved("runspec"), rejected("runspec"), step_failed("registry"), error("registry"), retry_requested(),
    cancelled(), rerun(E.RERUN_COMPLETED), rerun_started(), stopped_budget("registry"), done(),
]
ENDINGS = {
    "done": blueprint_job_done(),
    "rejected": at_runspec_review() + [rejected("runspec")],
    "cancelled": [submitted(), cancelled()],
    "stopped_budget": through(Kind.IDEA, stage_index(Kind.IDEA, "spawn", Step)) + [started("spawn"),
                                                                                   stopped_budget("spawn")],
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("after", ANY_EVENT, ids=[f"{e['event_type']}-{e['step']}" for e in ANY_EVENT])
def test_nothing_follows_the_end_of_a_job(ending, after):
    then_illegal(ENDINGS[ending] + [after])


# --- whole pipelines -----------------------------------------------------------------------------------


def test_a_blueprint_job_runs_its_whole_pipeline_to_done():
    # given the events a worker and a reviewer write for a blueprint job, in order
    events = numbered(blueprint_job_done())

    # when they are folded one by one
    seen = []
    state = initial_state(Kind.BLUEPRINT)
    for e in events:
        state = apply_event(state, e)
        seen.append((e["event_type"], str(state.status), state.next_step or state.waiting_step))

    # then the job passes every stage of the design and ends DONE
    assert seen == [
        ("BLUEPRINT_SUBMITTED", "queued", "compile"),
        ("STEP_STARTED", "running", "compile"),
        ("RUNSPEC_COMPILED", "queued", None),
        ("WAITING_APPROVAL", "waiting_approval", "runspec"),
        ("APPROVED", "queued", "run"),
        ("STEP_STARTED", "running", "run"),
        ("RUN_COMPLETED", "queued", "gates"),
        ("STEP_STARTED", "running", "gates"),
        ("GATES_COMPLETED", "queued", "registry"),
        ("STEP_STARTED", "running", "registry"),
        ("REGISTRY_UPDATED", "queued", None),
        ("DONE", "done", None),
    ]
    assert state == derive_state(events)
    assert state.last_seq == len(events)


def test_an_idea_job_runs_its_whole_pipeline_to_done():
    events = numbered(idea_job_done())

    state = derive_state(events)

    assert state.kind == Kind.IDEA
    assert state.status == Status.DONE
    assert state.last_seq == len(events) == 1 + 2 * len(IDEA_PIPELINE) + 1
    types = [e["event_type"] for e in events]
    assert [t for t in types if t not in ("STEP_STARTED", "WAITING_APPROVAL", "APPROVED")] == [
        "IDEA_SUBMITTED", "BLUEPRINT_PROPOSED", "STRATEGY_SPEC_PROPOSED", "RUNSPEC_COMPILED",
        "TRACE_PREVIEW_COMPLETED", "RUN_COMPLETED", "GATES_COMPLETED", "REGISTRY_UPDATED", "REPORT_COMPLETED",
        "IMPROVEMENTS_PROPOSED", "JOB_SPAWNED", "DONE",
    ]
    assert [e["step"] for e in events if e["event_type"] == "APPROVED"] == [
        "blueprint", "strategy_spec", "runspec", "trace_preview", "improvements",
    ]


def test_an_idea_job_with_failures_retries_and_reruns_still_reaches_done():
    # given an idea job whose compile fails once, errors once (retried by an operator), is taken over
    # once, and has an agent rerun recorded, before everything succeeds
    compile_at = stage_index(Kind.IDEA, "compile", Step)
    blueprint_at = stage_index(Kind.IDEA, "blueprint", Checkpoint)
    events = through(Kind.IDEA, blueprint_at) + [waiting("blueprint"), *a_whole_rerun()] + through(
        Kind.IDEA, compile_at)[len(through(Kind.IDEA, blueprint_at)) + 1:] + [
        started("compile"), step_failed("compile"),
        started("compile", attempt=2), error("compile"), retry_requested(),
        started("compile"), started("compile", attempt=2, recovered_from="w1"), result_of("compile"),
    ]
    rest = through(Kind.IDEA, len(IDEA_PIPELINE))[len(through(Kind.IDEA, compile_at + 1)):]

    state = state_of(events + rest + [done()])

    assert state.status == Status.DONE


def test_derive_state_does_not_change_its_input_and_is_repeatable():
    events = numbered(at_runspec_review())
    snapshot = [dict(e, payload=dict(e["payload"])) for e in events]

    assert derive_state(events) == derive_state(events)
    assert events == snapshot


def test_the_verdict_is_the_latest_gates_steps_and_stays_after_it():
    from jobs.state import initial_state, apply_event

    state = initial_state("blueprint")
    events = [
        ("BLUEPRINT_SUBMITTED", None, {}),
        ("STEP_STARTED", "compile", {"attempt": 1}), ("RUNSPEC_COMPILED", "compile", {}),
        ("WAITING_APPROVAL", "runspec", {"artifact_sha256": "a" * 64}), ("APPROVED", "runspec", {}),
        ("STEP_STARTED", "run", {"attempt": 1}), ("RUN_COMPLETED", "run", {}),
    ]
    for event_type, step, payload in events:
        state = apply_event(state, {"event_type": event_type, "step": step, "payload": payload})
    assert state.verdict is None
    state = apply_event(state, {"event_type": "STEP_STARTED", "step": "gates", "payload": {"attempt": 1}})
    state = apply_event(state, {"event_type": "GATES_COMPLETED", "step": "gates",
                                "payload": {"summary": {"verdict": "FAIL"}}})
    assert state.verdict == "FAIL"
    state = apply_event(state, {"event_type": "STEP_STARTED", "step": "registry", "payload": {"attempt": 1}})
    state = apply_event(state, {"event_type": "REGISTRY_UPDATED", "step": "registry", "payload": {}})
    assert (state.verdict, state.stage) == ("FAIL", 5)
