"""The commands on a job (`jobs.services`): every error path raises its domain error with its code and writes
nothing; the happy paths write exactly the event the design names."""
import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from contracts import canonical_json, content_id, sha256_hex
from jobs import services
from jobs.events import Actor
from jobs.errors import Conflict, Forbidden, InvalidInput, NotFound
from jobs.models import JobEvent, JobSpec, JobState

from ..builders import (
    BARE, MONTH, SHA_A, SHA_B, a_blueprint, a_job_spec, a_snapshot, an_idea, store_snapshot, to_done, to_error,
    to_runspec_review,
)

pytestmark = pytest.mark.django_db

ALICE = Actor("user", "alice")  # submits
BOB = Actor("user", "bob")  # reviews
OPS = Actor("user", "ops")  # operates


@pytest.fixture(autouse=True)
def _demo_snapshot(db):
    """The snapshot the jobs here are submitted against: a submission must name one that exists."""
    a_snapshot("demo_snapshot", span=MONTH)


@contextmanager
def refused(error_class, code: str):
    """The command raises exactly `error_class` with `code`, and the event store is unchanged."""
    before = store_snapshot()
    with pytest.raises(error_class) as caught:
        yield caught
    assert type(caught.value) is error_class, repr(caught.value)
    assert caught.value.code == code, caught.value.code
    assert store_snapshot() == before


def submit(blueprint=None, actor=ALICE, **options):
    options.setdefault("snapshot_id", "demo_snapshot")
    return services.submit_blueprint(blueprint=blueprint or a_blueprint(base=BARE), actor=actor, **options)


def waiting_job(actor=ALICE, sha=SHA_A) -> str:
    """A blueprint job submitted by `actor`, compiled, waiting at the runspec checkpoint with `sha` under review."""
    job, _ = submit(actor=actor)
    to_runspec_review(job.job_id, sha)
    return job.job_id


def events_of(job_id: str) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))


def state(job_id: str) -> JobState:
    return JobState.objects.get(job_id=job_id)


COMMANDS = {
    "approve": lambda job_id: services.approve(job_id=job_id, step="runspec", actor=BOB),
    "reject": lambda job_id: services.reject(job_id=job_id, step="runspec", actor=BOB, reason="no"),
    "cancel": lambda job_id: services.cancel(job_id=job_id, actor=OPS),
    "retry": lambda job_id: services.retry(job_id=job_id, actor=OPS),
}


# --- ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_on_an_unknown_job_is_not_found(command):
    waiting_job()
    with refused(NotFound, "job_not_found"):
        COMMANDS[command]("0123456789ab")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("job_id", ["XYZ", "0123456789AB", "0123456789abc", "../../etc/pw", "", None, 123])
def test_a_command_with_an_invalid_job_id_is_refused_before_any_lookup(command, job_id):
    waiting_job()
    with refused(NotFound, "invalid_job_id"):
        COMMANDS[command](job_id)


# --- submit ------------------------------------------------------------------------------------------


def test_submit_creates_a_job_addressed_by_its_content():
    # when alice submits a blueprint
    job, created = submit()

    # then the job id is the content id of the canonical job spec, and the spec is stored with its lineage root
    assert created is True
    spec = {"schema_version": "job_spec_v1", "kind": "blueprint", "snapshot_id": "demo_snapshot",
            "policy_bundle_id": "default_v2", "blueprint": a_blueprint(base=BARE)}
    stored = JobSpec.objects.get()
    assert stored.job_id == job.job_id == content_id(spec)
    assert stored.spec == spec
    assert stored.spec_sha256 == sha256_hex(canonical_json(spec))
    assert (stored.kind, stored.snapshot_id, stored.policy_bundle_id) == ("blueprint", "demo_snapshot", "default_v2")
    assert (stored.root_job_id, stored.parent_job_id, stored.generation) == (job.job_id, None, 0)
    assert stored.submitted_by == "alice"

    # and its one event records the submitter and the sha256 of the blueprint
    (first,) = events_of(job.job_id)
    assert (first.seq, first.event_type, first.actor) == (1, "BLUEPRINT_SUBMITTED", ALICE.as_dict())
    assert first.payload == {"submitter": "alice", "inputs_sha256": sha256_hex(canonical_json(a_blueprint(base=BARE)))}
    assert (state(job.job_id).status, state(job.job_id).next_step) == ("queued", "compile")


def test_submit_is_idempotent_by_content_whoever_submits():
    # given alice's job
    job, _ = submit()
    before = store_snapshot()

    # when bob submits the same blueprint, with its keys in another order
    reordered = dict(reversed(list(a_blueprint(base=BARE).items())))
    again, created = submit(blueprint=reordered, actor=BOB)

    # then it is the same job, nothing new was written, and alice is still its submitter
    assert (again.job_id, created) == (job.job_id, False)
    assert again.submitted_by == "alice"
    assert store_snapshot() == before


def test_a_different_blueprint_or_snapshot_is_a_different_job():
    job, _ = submit()
    other, created = submit(blueprint=a_blueprint(fast=11, base=BARE))
    elsewhere, created_too = submit(snapshot_id=a_snapshot("other_snapshot", span=MONTH).snapshot_id)

    assert created and created_too
    assert len({job.job_id, other.job_id, elsewhere.job_id}) == 3


def test_submit_uses_the_default_snapshot_when_none_is_given(settings):
    settings.EAM_DEFAULT_SNAPSHOT_ID = a_snapshot("default_snapshot", span=MONTH).snapshot_id
    job, created = services.submit_blueprint(blueprint=a_blueprint(base=BARE), actor=ALICE)
    assert created and job.snapshot_id == "default_snapshot"


def test_submit_without_snapshot_and_without_a_default_is_invalid(settings):
    settings.EAM_DEFAULT_SNAPSHOT_ID = ""
    with refused(InvalidInput, "snapshot_id_required") as caught:
        services.submit_blueprint(blueprint=a_blueprint(base=BARE), actor=ALICE)
    assert caught.value.errors == [{"path": "/snapshot_id", "message": "required"}]


@pytest.mark.parametrize("snapshot_id", ["../data", "a b", "-x", "x" * 65])
def test_submit_with_an_invalid_snapshot_id_is_refused(snapshot_id):
    with refused(InvalidInput, "invalid_snapshot_id") as caught:
        submit(snapshot_id=snapshot_id)
    assert [e["path"] for e in caught.value.errors] == ["/snapshot_id"]


@pytest.mark.parametrize(
    "change, pointer",
    [
        (lambda b: b["strategy"]["params"].update(fast="ten"), "/blueprint/strategy/params/fast"),
        (lambda b: b["strategy"]["params"].pop("slow"), "/blueprint/strategy/params/slow"),
        (lambda b: b.pop("universe"), "/blueprint/universe"),
        (lambda b: b.update(leverage=3), "/blueprint/leverage"),
    ],
)
def test_a_schema_invalid_blueprint_is_refused_with_the_json_pointer_of_the_fault(change, pointer):
    blueprint = a_blueprint(base=BARE)
    change(blueprint)

    with refused(InvalidInput, "invalid_job_spec") as caught:
        submit(blueprint=blueprint)

    assert [e["path"] for e in caught.value.errors] == [pointer]


@pytest.mark.parametrize("value", [float("nan")], ids=["nan"])
def test_a_blueprint_holding_a_non_finite_number_is_invalid_input_not_a_crash(value):
    # given a blueprint whose fee is NaN (json.load, as the submit_blueprint command uses, accepts it, and
    # the schema's minimum/maximum do not catch it since every comparison with NaN is false)
    blueprint = {**a_blueprint(base=BARE), "costs": {"fee_bps": value}}

    # then it is refused as input, with the pointer of the number, and nothing is written
    with refused(InvalidInput, "invalid_job_spec") as caught:
        submit(blueprint=blueprint)
    assert [e["path"] for e in caught.value.errors] == ["/blueprint/costs/fee_bps"]


def test_a_blueprint_that_is_not_an_object_is_refused():
    with refused(InvalidInput, "invalid_job_spec") as caught:
        submit(blueprint=["not", "an", "object"])
    assert [e["path"] for e in caught.value.errors] == ["/blueprint"]


@pytest.mark.parametrize("submit_it", [
    lambda: submit(snapshot_id="no_such_snapshot"),
    lambda: services.submit_idea(idea=an_idea(), actor=ALICE, snapshot_id="no_such_snapshot"),
    lambda: services.submit_job_spec(spec={**a_job_spec(), "snapshot_id": "no_such_snapshot"}, actor=ALICE),
], ids=["blueprint", "idea", "job_spec"])
def test_a_job_on_an_unknown_snapshot_is_refused_at_submit(submit_it):
    # given no snapshot no_such_snapshot: the job would only fail at its compile step
    with refused(InvalidInput, "unknown_snapshot") as caught:
        submit_it()
    assert caught.value.errors == [{"path": "/snapshot_id", "message": "no such data snapshot (see GET /snapshots)"}]


def test_an_unknown_policy_bundle_is_refused():
    with refused(InvalidInput, "unknown_policy_bundle") as caught:
        submit(policy_bundle_id="no_such_bundle_v9")
    assert [e["path"] for e in caught.value.errors] == ["/policy_bundle_id"]


def test_an_invalid_policy_bundle_id_is_refused():
    with refused(InvalidInput, "invalid_policy_bundle_id"):
        submit(policy_bundle_id="../default_v1")


def test_submitting_an_idea_creates_an_idea_job_with_its_prompt_pins():
    job, created = services.submit_idea(idea=an_idea(), actor=ALICE, snapshot_id="demo_snapshot")
    assert created and job.kind == "idea" and job.state.status == "queued"
    submit = JobEvent.objects.get(job_id=job.job_id)
    assert submit.event_type == "IDEA_SUBMITTED"
    assert submit.payload["prompt_pins"]["path"] == f"jobs/{job.job_id}/outputs/agents/prompt_pins.json"
    again, created = services.submit_idea(idea=an_idea(), actor=ALICE, snapshot_id="demo_snapshot")
    assert (again.job_id, created) == (job.job_id, False)
    assert JobEvent.objects.filter(job_id=job.job_id).count() == 1


def test_a_schema_invalid_idea_is_refused_with_its_pointer():
    idea = an_idea()
    idea["title"] = ""
    with refused(InvalidInput, "invalid_job_spec") as caught:
        services.submit_idea(idea=idea, actor=ALICE, snapshot_id="demo_snapshot")
    assert [e["path"] for e in caught.value.errors] == ["/idea/title"]


LINEAGE = {"root_job_id": "0123456789ab", "parent_job_id": "ba9876543210", "generation": 2, "iteration": 1}


def test_submit_job_spec_with_lineage_sets_root_parent_and_generation():
    job, created = services.submit_job_spec(spec=a_job_spec(extensions={"lineage": LINEAGE}), actor=ALICE, lineage_allowed=True)

    assert created
    stored = JobSpec.objects.get(job_id=job.job_id)
    assert (stored.root_job_id, stored.parent_job_id, stored.generation) == ("0123456789ab", "ba9876543210", 2)
    assert job.job_id != content_id(a_job_spec())  # the lineage is part of the content


def test_submit_blueprint_passes_lineage_extensions_through():
    job, _ = submit(extensions={"lineage": LINEAGE}, lineage_allowed=True)
    assert (job.root_job_id, job.parent_job_id, job.generation) == ("0123456789ab", "ba9876543210", 2)


@pytest.mark.parametrize(
    "lineage, pointer",
    [
        ({**LINEAGE, "generation": 0}, "/extensions/lineage/generation"),
        ({**LINEAGE, "parent_job_id": "not-a-job"}, "/extensions/lineage/parent_job_id"),
        ({k: v for k, v in LINEAGE.items() if k != "root_job_id"}, "/extensions/lineage/root_job_id"),
    ],
)
def test_submit_job_spec_with_invalid_lineage_is_refused(lineage, pointer):
    with refused(InvalidInput, "invalid_job_spec") as caught:
        services.submit_job_spec(spec=a_job_spec(extensions={"lineage": lineage}), actor=ALICE, lineage_allowed=True)
    assert [e["path"] for e in caught.value.errors] == [pointer]


@pytest.mark.parametrize("spec", [None, [], "job", a_job_spec(kind="both"), a_job_spec(idea=an_idea())])
def test_submit_job_spec_refuses_what_is_not_a_job_spec(spec):
    with refused(InvalidInput, "invalid_job_spec"):
        services.submit_job_spec(spec=spec, actor=ALICE)


# --- approve -----------------------------------------------------------------------------------------


def test_approve_records_the_decision_with_the_comment_and_the_reviewed_sha256():
    # given alice's job waiting at runspec, SHA_A under review
    job_id = waiting_job()

    # when bob approves, naming the artifact he saw
    event = services.approve(job_id=job_id, step="runspec", actor=BOB, comment="params look right",
                             artifact_sha256=SHA_A)

    # then one APPROVED event records it and the job moves on to run
    assert events_of(job_id)[-1].pk == event.pk
    assert (event.seq, event.event_type, event.step, event.actor) == (5, "APPROVED", "runspec", BOB.as_dict())
    assert event.payload == {"comment": "params look right", "artifact_sha256": SHA_A}
    assert (state(job_id).status, state(job_id).next_step, state(job_id).waiting_step) == ("queued", "run", None)


def test_approve_without_a_sha256_records_the_artifact_under_review():
    job_id = waiting_job()
    event = services.approve(job_id=job_id, step="runspec", actor=BOB)
    assert event.payload == {"comment": "", "artifact_sha256": SHA_A}


def test_approve_with_a_stale_sha256_is_a_conflict():
    job_id = waiting_job(sha=SHA_A)
    with refused(Conflict, "stale_review"):
        services.approve(job_id=job_id, step="runspec", actor=BOB, artifact_sha256=SHA_B)


def test_a_comment_longer_than_the_contract_allows_is_invalid_input():
    job_id = waiting_job()
    with refused(InvalidInput, "invalid_event") as caught:
        services.approve(job_id=job_id, step="runspec", actor=BOB, comment="x" * 4001)
    assert "/payload/comment" in [e["path"] for e in caught.value.errors]


def test_a_reason_longer_than_the_contract_allows_is_invalid_input():
    job_id = waiting_job()
    with refused(InvalidInput, "invalid_event") as caught:
        services.reject(job_id=job_id, step="runspec", actor=BOB, reason="x" * 4001)
    assert "/payload/reason" in [e["path"] for e in caught.value.errors]


@pytest.mark.parametrize("step", ["blueprint", "trace_preview", "compile", "nonsense"])
def test_deciding_another_step_than_the_waiting_one_is_a_conflict(step):
    job_id = waiting_job()
    with refused(Conflict, "not_waiting"):
        services.approve(job_id=job_id, step=step, actor=BOB)
    with refused(Conflict, "not_waiting"):
        services.reject(job_id=job_id, step=step, actor=BOB, reason="no")


def test_deciding_a_job_that_is_not_waiting_is_a_conflict():
    job, _ = submit()
    with refused(Conflict, "not_waiting"):
        services.approve(job_id=job.job_id, step="runspec", actor=BOB)
    with refused(Conflict, "not_waiting"):
        services.reject(job_id=job.job_id, step="runspec", actor=BOB, reason="no")


def test_the_submitter_may_not_approve_or_reject_their_own_job():
    job_id = waiting_job(actor=ALICE)
    with refused(Forbidden, "four_eyes"):
        services.approve(job_id=job_id, step="runspec", actor=ALICE)
    with refused(Forbidden, "four_eyes"):
        services.reject(job_id=job_id, step="runspec", actor=ALICE, reason="changed my mind")


def test_four_eyes_follows_the_bundle_when_the_deployment_does_not_ask_for_it(settings):
    # given EAM_FOUR_EYES off, but the default bundle asks for four eyes
    settings.EAM_FOUR_EYES = False
    job_id = waiting_job(actor=ALICE)

    # then the submitter still may not decide
    with refused(Forbidden, "four_eyes"):
        services.approve(job_id=job_id, step="runspec", actor=ALICE)


def test_the_submitter_may_decide_when_neither_the_deployment_nor_the_bundle_asks_for_four_eyes(settings, tmp_path):
    # given a bundle without four eyes, and EAM_FOUR_EYES off
    default = json.loads((Path(settings.EAM_POLICY_ROOT) / "default_v1.json").read_text())
    relaxed = {**default, "policy_bundle_id": "relaxed_v1", "approvals": {"four_eyes": False}}
    (tmp_path / "relaxed_v1.json").write_text(json.dumps(relaxed))
    settings.EAM_POLICY_ROOT = str(tmp_path)
    settings.EAM_FOUR_EYES = False
    job, _ = submit(actor=ALICE, policy_bundle_id="relaxed_v1")
    to_runspec_review(job.job_id)

    # when alice approves her own job, then it is recorded
    event = services.approve(job_id=job.job_id, step="runspec", actor=ALICE)
    assert event.actor == ALICE.as_dict()

    # but with EAM_FOUR_EYES on, the deployment wins
    settings.EAM_FOUR_EYES = True
    other, _ = submit(actor=ALICE, policy_bundle_id="relaxed_v1", blueprint=a_blueprint(fast=12, base=BARE))
    to_runspec_review(other.job_id)
    with refused(Forbidden, "four_eyes"):
        services.approve(job_id=other.job_id, step="runspec", actor=ALICE)


@pytest.mark.parametrize("second", ["approve", "reject"])
@pytest.mark.parametrize("first", ["approve", "reject"])
def test_a_checkpoint_is_decided_once(first, second):
    # given a checkpoint that bob has decided
    job_id = waiting_job()
    COMMANDS[first](job_id)

    # when carol decides it again, then it is a conflict and no second decision is written
    carol = Actor("user", "carol")
    with refused(Conflict, "not_waiting"):
        if second == "approve":
            services.approve(job_id=job_id, step="runspec", actor=carol)
        else:
            services.reject(job_id=job_id, step="runspec", actor=carol, reason="too late")


# --- reject ------------------------------------------------------------------------------------------


def test_reject_ends_the_job_with_the_reason():
    job_id = waiting_job()

    event = services.reject(job_id=job_id, step="runspec", actor=BOB, reason="  universe too small \n")

    assert (event.event_type, event.step, event.actor) == ("REJECTED", "runspec", BOB.as_dict())
    assert event.payload == {"reason": "universe too small"}
    assert (state(job_id).status, state(job_id).next_step, state(job_id).waiting_step) == ("rejected", None, None)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None])
def test_a_rejection_without_a_reason_is_invalid(reason):
    job_id = waiting_job()
    with refused(InvalidInput, "reason_required") as caught:
        services.reject(job_id=job_id, step="runspec", actor=BOB, reason=reason)
    assert [e["path"] for e in caught.value.errors] == ["/reason"]


# --- cancel ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bring", [lambda j: None, to_runspec_review, to_error], ids=["queued", "waiting", "error"])
def test_cancel_ends_a_job_that_has_not_ended(bring):
    job, _ = submit()
    bring(job.job_id)

    event = services.cancel(job_id=job.job_id, actor=OPS, reason="not needed")

    assert (event.event_type, event.step, event.actor) == ("CANCELLED", None, OPS.as_dict())
    assert event.payload == {"reason": "not needed", "operator": "ops"}
    assert state(job.job_id).status == "cancelled"


def test_cancel_twice_is_a_conflict():
    job, _ = submit()
    services.cancel(job_id=job.job_id, actor=OPS)
    with refused(Conflict, "job_ended"):
        services.cancel(job_id=job.job_id, actor=OPS)


def test_cancel_after_done_is_a_conflict():
    job, _ = submit()
    to_done(job.job_id)
    assert state(job.job_id).status == "done"
    with refused(Conflict, "job_ended"):
        services.cancel(job_id=job.job_id, actor=OPS)


def test_cancel_after_rejection_is_a_conflict():
    job_id = waiting_job()
    COMMANDS["reject"](job_id)
    with refused(Conflict, "job_ended"):
        services.cancel(job_id=job_id, actor=OPS)


# --- retry -------------------------------------------------------------------------------------------


def test_retry_makes_a_job_in_error_runnable_again_from_the_failed_step():
    # given a job whose compile step ended in ERROR
    job, _ = submit()
    to_error(job.job_id)
    assert state(job.job_id).status == "error"

    # when an operator retries it
    event = services.retry(job_id=job.job_id, actor=OPS, reason="data fixed")

    # then compile is due again, with a fresh attempt count and no error
    assert (event.event_type, event.payload) == ("RETRY_REQUESTED", {"reason": "data fixed", "operator": "ops"})
    after = state(job.job_id)
    assert (after.status, after.next_step, after.attempt, after.error) == ("queued", "compile", 0, None)


@pytest.mark.parametrize(
    "bring", [lambda j: None, to_runspec_review, to_done], ids=["queued", "waiting", "done"]
)
def test_retry_when_not_in_error_is_a_conflict(bring):
    job, _ = submit()
    bring(job.job_id)
    with refused(Conflict, "not_in_error"):
        services.retry(job_id=job.job_id, actor=OPS)


def test_retry_twice_is_a_conflict():
    job, _ = submit()
    to_error(job.job_id)
    services.retry(job_id=job.job_id, actor=OPS)
    with refused(Conflict, "not_in_error"):
        services.retry(job_id=job.job_id, actor=OPS)


def test_a_client_cannot_place_a_job_in_another_lineage():
    before = JobEvent.objects.count()
    with refused(InvalidInput, "lineage_reserved") as caught:
        services.submit_job_spec(spec=a_job_spec(extensions={"lineage": LINEAGE}), actor=ALICE)
    assert [e["path"] for e in caught.value.errors] == ["/extensions/lineage"]
    assert JobEvent.objects.count() == before
