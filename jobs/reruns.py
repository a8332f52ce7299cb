"""Agent reruns: asking for an agent's output again (`request_rerun`, the one service behind the API, the /ui
page and the admin's link), and what a job's rerun events say: the lines of `outputs/reruns/rerun_log.jsonl`
and the document `outputs/reruns/rerun_state.json`, both derived from the events alone, so that anyone can
rebuild them byte for byte (`manage.py rebuild_rerun_state`).

A rerun never touches an earlier artifact: its files go to `outputs/agents/<agent_id>/reruns/<rerun_id>/`, the
log only grows (`research.artifacts.extend_artifact`), and the state file is derived, recorded by no event.
"""

from contracts import canonical_json, content_id, sha256_hex
from research.agents import load_prompt
from research.artifacts import extend_artifact, json_bytes, read_artifact, read_json_artifact, replace_derived
from research.errors import ArtifactNotFound, ResearchError

from . import events
from .errors import Conflict, InvalidInput
from .events import Actor
from .models import JobEvent, JobState
from .pipelines import RERUN_STEP, TERMINAL_STATUSES, EventType, PIPELINES, Status, Kind, agent_steps
from .services import _command, check_name_id

RERUN_STATE_SCHEMA = "rerun_state_v1"
AGENT_RESULTS = {str(step.result_event): step.name for kind in Kind for step in PIPELINES[kind]
                 if getattr(step, "agent", False)}


def rerun_folder(job_id: str, agent_id: str, rerun_id: str) -> str:
    return f"jobs/{job_id}/outputs/agents/{agent_id}/reruns/{rerun_id}"


def log_path(job_id: str) -> str:
    return f"jobs/{job_id}/outputs/reruns/rerun_log.jsonl"


def state_path(job_id: str) -> str:
    return f"jobs/{job_id}/outputs/reruns/rerun_state.json"


def rerun_id_for(*, job_id: str, agent_id: str, ordinal: int, prompt_version: str) -> str:
    """Deterministic: the same job, agent, ordinal and prompt version always name the same rerun."""
    return content_id({"job_id": job_id, "agent_id": agent_id, "ordinal": ordinal, "prompt_version": prompt_version})


# -- the command ------------------------------------------------------------------------------------------------

def request_rerun(*, job_id: str, agent_id, actor: Actor, reason, prompt_version=None) -> JobEvent:
    """Ask for agent `agent_id`'s output of job `job_id` again, under `prompt_version` (default: the version the
    job pinned). Allowed while the job waits at a checkpoint (the rerun's output then goes under review if that
    checkpoint reviews this agent) or after it ended (evidence only); a worker runs it."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a rerun needs a reason", code="reason_required",
                           errors=[{"path": "/reason", "message": "required, not blank"}])
    check_name_id(agent_id, what="agent_id", path="/agent_id")
    if prompt_version is not None and not isinstance(prompt_version, str):
        raise InvalidInput("prompt_version is a string", code="unknown_prompt_version",
                           errors=[{"path": "/prompt_version", "message": "not a string"}])

    def decide(job, state):
        if agent_id not in agent_steps(job.kind):
            raise Conflict(f"agent {agent_id} is not part of the pipeline of a {job.kind} job",
                           code="agent_not_in_pipeline")
        version = prompt_version or pinned_version(job.job_id, agent_id)
        try:
            load_prompt(agent_id, version)
        except ResearchError:
            raise InvalidInput(f"agent {agent_id} has no prompt version {version!r}", code="unknown_prompt_version",
                               errors=[{"path": "/prompt_version", "message": "no such prompt version"}]) from None
        if state.status in (Status.QUEUED, Status.RUNNING):
            raise Conflict(f"job {job.job_id} has a step due or running ({state.next_step}); ask again when it waits "
                           "at a checkpoint or has ended", code="step_in_progress")
        if state.status not in TERMINAL_STATUSES and state.status != Status.WAITING_APPROVAL:
            raise Conflict(f"job {job.job_id} is in error: retry or cancel it first", code="job_in_error")
        rows = rerun_rows(job.job_id)
        if not any(AGENT_RESULTS.get(row.event_type) == agent_id for row in rows):
            raise Conflict(f"agent {agent_id} has not run in job {job.job_id}", code="agent_not_run")
        if any(pending["agent_id"] == agent_id for pending in state.reruns or ()):
            raise Conflict(f"a rerun of {agent_id} is already pending in job {job.job_id}", code="rerun_pending")
        ordinal = 1 + sum(1 for row in rows if row.event_type == EventType.RERUN_REQUESTED
                          and row.payload.get("agent_id") == agent_id)
        rerun_id = rerun_id_for(job_id=job.job_id, agent_id=agent_id, ordinal=ordinal, prompt_version=version)
        return events.rerun_requested(actor=actor, agent_id=agent_id, rerun_id=rerun_id, ordinal=ordinal,
                                      reason=reason.strip(), prompt_version=version)

    return _command(job_id, decide)


def pinned_version(job_id: str, agent_id: str) -> str:
    """The prompt version job `job_id` pinned for `agent_id` at submit (the artifact its submit event records)."""
    submit = JobEvent.objects.filter(job_id=job_id, seq=1).values_list("payload", flat=True).first() or {}
    ref = submit.get("prompt_pins") or {}
    try:
        return read_json_artifact(ref.get("path") or "", sha256=ref.get("sha256"))["agents"][agent_id]["version"]
    except (ResearchError, KeyError) as exc:
        raise Conflict(f"the prompt pins of job {job_id} cannot be read: {exc}", code="prompt_pins_unreadable") from exc


# -- what the events say ------------------------------------------------------------------------------------------

def rerun_rows(job_id: str) -> list[JobEvent]:
    """The events reruns are read from, in seq order (one query): agent results, and the rerun lane's requests,
    starts, failures and completions."""
    lane = [EventType.RERUN_REQUESTED, EventType.RERUN_COMPLETED, EventType.STEP_STARTED, EventType.STEP_FAILED]
    rows = JobEvent.objects.filter(job_id=job_id, event_type__in=[*AGENT_RESULTS, *lane])
    return [row for row in rows.order_by("seq") if row.event_type in AGENT_RESULTS or row.step == RERUN_STEP
            or row.event_type in (EventType.RERUN_REQUESTED, EventType.RERUN_COMPLETED)]


def pending_rerun(job_id: str) -> dict:
    """The RERUN_REQUESTED payload of the rerun the job's lane has at its head (the one a worker runs now)."""
    state = JobState.objects.get(job_id=job_id)
    if not state.reruns:
        raise Conflict(f"job {job_id} has no agent rerun pending", code="no_rerun_pending")
    rerun_id = state.reruns[0]["rerun_id"]
    for row in rerun_rows(job_id):
        if row.event_type == EventType.RERUN_REQUESTED and row.payload["rerun_id"] == rerun_id:
            return row.payload
    raise Conflict(f"job {job_id} records no request of rerun {rerun_id}", code="no_rerun_pending")


def current_outputs(rows: list[JobEvent]) -> dict[str, dict]:
    """Each agent's output now, agents in the order they ran: {output_sha256, rerun_id (None for the pipeline's own
    run)}, from its latest completed run, the pipeline's or a rerun's."""
    current = {}
    for row in rows:
        if row.event_type in AGENT_RESULTS:
            current[AGENT_RESULTS[row.event_type]] = {
                "output_sha256": (row.payload.get("summary") or {}).get("output_sha256"), "rerun_id": None}
        elif row.event_type == EventType.RERUN_COMPLETED:
            current[row.payload["agent_id"]] = {"output_sha256": row.payload["output_sha256"],
                                                "rerun_id": row.payload["rerun_id"]}
    return current


def log_line(kind: str, facts: dict, prev_line_sha256: str) -> bytes:
    """One line of rerun_log.jsonl: canonical JSON with the sha256 of the line before (64 zeros for the first)."""
    return canonical_json({"kind": kind, **facts, "prev_line_sha256": prev_line_sha256}) + b"\n"


def request_facts(payload: dict, seq: int) -> dict:
    return {k: payload.get(k) for k in ("rerun_id", "agent_id", "ordinal", "prompt_version", "reason", "requester")} | {
        "requested_seq": seq}


def completion_facts(payload: dict) -> dict:
    """What a completion line says: the RERUN_COMPLETED payload's facts (no seq, no time: a line written before its
    event is appended must be the line derived from that event afterwards)."""
    return {k: payload[k] for k in (*events.RERUN_FACTS, "artifacts")}


def failure_facts(payload: dict, rerun_id: str, agent_id: str) -> dict:
    return {"rerun_id": rerun_id, "agent_id": agent_id, "error_class": payload.get("error_class"),
            "message": payload.get("message")}


def log_lines(rows: list[JobEvent]) -> list[tuple[str, dict]]:
    """(kind, facts) of every line rerun_log.jsonl holds after `rows` (`rerun_rows`): a request, a completion, or a
    failure (a rerun that failed for good)."""
    lines, agents, head = [], {}, None
    for row in rows:
        if row.event_type == EventType.RERUN_REQUESTED:
            lines.append(("request", request_facts(row.payload, row.seq)))
            agents[row.payload["rerun_id"]] = row.payload["agent_id"]
        elif row.event_type == EventType.STEP_STARTED:
            head = row.payload.get("rerun_id")  # the rerun a failure of the lane that follows belongs to
        elif row.event_type == EventType.RERUN_COMPLETED:
            lines.append(("completion", completion_facts(row.payload)))
        elif row.event_type == EventType.STEP_FAILED and not row.payload.get("retryable"):
            lines.append(("failure", failure_facts(row.payload, head, agents.get(head))))
    return lines


def log_bytes(lines: list[tuple[str, dict]]) -> bytes:
    """The file's bytes: the lines chained by the sha256 of each line before."""
    out, prev = [], "0" * 64
    for kind, facts in lines:
        line = log_line(kind, facts, prev)
        out.append(line)
        prev = sha256_hex(line)
    return b"".join(out)


def rerun_state(job_id: str, rows: list[JobEvent] | None = None) -> dict:
    """rerun_state.json: per agent that has run, its current output sha256 and the latest rerun; the reruns pending;
    counts. Derived from the rerun events only (`rows`, read here if not given), so a rebuild gives the same bytes
    whatever else happened since."""
    rows = rerun_rows(job_id) if rows is None else rows
    agents, pending, counts = {}, {}, {"requested": 0, "completed": 0, "failed": 0}
    for kind, facts in log_lines(rows):
        counts[{"request": "requested", "completion": "completed", "failure": "failed"}[kind]] += 1
        if kind == "request":
            pending[facts["rerun_id"]] = facts
            continue
        request = pending.pop(facts["rerun_id"], {})
        entry = agents.setdefault(facts["agent_id"], {"reruns": 0})
        entry["reruns"] += 1
        entry["latest"] = {"rerun_id": facts["rerun_id"], "outcome": kind,
                           "prompt_version": request.get("prompt_version"), "reason": request.get("reason"),
                           "requester": request.get("requester"), "changed": facts.get("changed"),
                           "output_sha256": facts.get("output_sha256")}
    for agent_id, current in current_outputs(rows).items():
        agents.setdefault(agent_id, {"reruns": 0})["current_output_sha256"] = current["output_sha256"]
    return {"schema": RERUN_STATE_SCHEMA, "job_id": job_id, "agents": agents, "counts": counts,
            "pending": [{"rerun_id": r["rerun_id"], "agent_id": r["agent_id"]} for r in pending.values()]}


def derived_files(job_id: str) -> tuple[bytes, bytes]:
    """(rerun_log.jsonl, rerun_state.json) as the job's events say they are: one read of the events."""
    rows = rerun_rows(job_id)
    return log_bytes(log_lines(rows)), json_bytes(rerun_state(job_id, rows))


def write_derived_files(job_id: str) -> None:
    """Bring rerun_log.jsonl (appended to, never rewritten) and rerun_state.json (replaced) up to the events."""
    log, state = derived_files(job_id)
    extend_artifact(log_path(job_id), log)
    replace_derived(state_path(job_id), state)


def rerun_jobs() -> list[str]:
    """Every job that has a rerun event, in job id order."""
    return sorted(set(JobEvent.objects.filter(event_type=EventType.RERUN_REQUESTED).values_list("job_id", flat=True)))


def rebuild(job_id: str) -> dict:
    """Bring the job's two derived files up to its events and say what was found: for each, `identical`,
    `written` (missing before), `appended` (the log fell short) or `rebuilt` (the state file differed)."""
    found = {}
    log, state = derived_files(job_id)
    for name, path, expected in (("rerun_log", log_path(job_id), log), ("rerun_state", state_path(job_id), state)):
        try:
            existing = read_artifact(path)
        except ArtifactNotFound:
            existing = None
        if existing == expected:
            found[name] = "identical"
        elif existing is None:
            found[name] = "written"
        else:
            found[name] = "appended" if name == "rerun_log" else "rebuilt"
    extend_artifact(log_path(job_id), log)  # ArtifactConflict when the log holds what the events never said
    replace_derived(state_path(job_id), state)
    return found
