"""The reconciler: what the events, the projection, the leases and the artifact files should agree on, and where
they do not. It repairs what the events say how to repair (an expired lease, a drifted projection) and reports
everything else for a person (`manage.py reconcile`; loop workers run the lease part, `recover_expired_leases`).

An expired lease is released by an event, never by a bare update: a retryable STEP_FAILED (`LeaseExpired`,
`retry_at` now) with the seq after the lost worker's STEP_STARTED, the same fence the worker's own result needs,
so whichever is appended first wins. A step with no attempt left ends as a claim would end it (`claims.abandon`).
"""
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

from contracts import sha256_hex
from jobs import events
from jobs.artifacts import recorded_artifacts
from jobs.audit import rebuild_states
from jobs.bundles import written_by_export
from jobs.errors import Conflict
from jobs.events import Lease, append_events
from jobs.state import format_time, state_from_row
from jobs.models import JobEvent, JobSpec, JobState
from jobs.pipelines import RERUN_STEP, EventType, Status
from jobs.reruns import log_path, state_path
from research.artifacts import list_artifacts, read_artifact
from research.errors import ArtifactNotFound, UnsafePath

from . import claims

JOBS_FOLDER = "jobs"


# -- expired leases -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recovery:
    """A running step whose worker's lease expired, and what its release recorded."""

    job_id: str
    step: str
    attempt: int
    lost_worker: str
    expired_at: datetime | None
    outcome: str  # "to retry", "error" (no attempt left) or "rerun ended" (no attempt left for the rerun)

    def line(self) -> str:
        when = f"expired {format_time(self.expired_at)}" if self.expired_at else "never set"
        return (f"{self.job_id}  {self.step} attempt {self.attempt}: worker {self.lost_worker} lost its lease "
                f"({when}); released, {self.outcome}")


def _expired() -> Q:
    """A step (or the agent rerun at the head of the lane) held by a lease that ended, or that no lease holds."""
    running = Q(status=Status.RUNNING, next_step__isnull=False) | Q(reruns__0__running=True)
    return running & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=Now()))


def recover_expired_leases(*, worker_id: str, max_attempts: int) -> list[Recovery]:
    """Release every expired lease with an event, one job per short transaction (the row locked as a claim locks
    it: skipped when another worker holds it). A job whose worker came back and appended first is left alone."""
    recovered, passed = [], set()
    if not JobState.objects.filter(_expired()).exists():
        return recovered  # the usual case: one read, no lock (on SQLite a transaction takes the write lock)
    while True:
        with transaction.atomic():
            row = (JobState.objects.select_for_update(skip_locked=True, of=("self",)).filter(_expired())
                   .exclude(job_id__in=passed).annotate(database_time=Now()).order_by("created_at", "job_id").first())
            if row is None:
                return recovered
            passed.add(row.job_id)
            try:
                recovered.append(_release(row, worker_id=worker_id, max_attempts=max_attempts))
            except Conflict:
                pass  # the lost worker's result (or a claim) came first: nothing to recover


def _release(row: JobState, *, worker_id: str, max_attempts: int) -> Recovery:
    state = state_from_row(row)
    rerun = state.reruns[0] if state.reruns else None
    step, attempt = (RERUN_STEP, rerun["attempt"]) if rerun else (state.next_step, state.attempt)
    lost_worker = row.lease_owner or "unknown"
    found = Recovery(row.job_id, step, attempt, lost_worker, row.lease_expires_at, "to retry")
    if attempt >= max_attempts:
        claims.abandon(job_id=row.job_id, state=state, worker_id=worker_id, lost_worker=lost_worker)
        return replace(found, outcome="rerun ended" if rerun else "error")
    message = (f"worker {lost_worker} lost the lease of step {step} (attempt {attempt}) without recording a result; "
               f"the reconciler released it and the step runs again")
    failed = events.step_failed(step=step, worker_id=worker_id, error_class="LeaseExpired", message=message,
                                attempt=attempt, retry_at=row.database_time)
    append_events(job_id=row.job_id, expected_seq=state.last_seq + 1, events=[failed], state=state, lease=Lease())
    return found


# -- jobs queued and not claimed ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stale:
    job_id: str
    step: str
    since: datetime
    seconds: float

    def line(self) -> str:
        return f"{self.job_id}  {self.step} due since {format_time(self.since)} ({self.seconds:.0f}s), not claimed"


def stale_queued(*, stale_after: float) -> list[Stale]:
    """Jobs with a step (or an agent rerun) due for more than `stale_after` seconds that no worker claimed: since
    their last event, or their retry time when that is later."""
    found = []
    rows = (JobState.objects.filter(Q(status=Status.QUEUED, next_step__isnull=False) | Q(reruns__isnull=False))
            .annotate(database_time=Now()).order_by("created_at", "job_id"))
    for row in rows:
        state = state_from_row(row)
        if state.reruns:
            if state.reruns[0]["running"]:
                continue
            step = RERUN_STEP
        else:
            step = state.next_step
        since = max(row.updated_at, row.available_at or row.updated_at)
        waited = (row.database_time - since).total_seconds()
        if waited > stale_after:
            found.append(Stale(row.job_id, step, since, waited))
    return found


# -- projection drift -----------------------------------------------------------------------------------------

def repair_drift() -> list[str]:
    """The drift found and repaired, one line per column (jobs.audit.rebuild_states). Looked at once without
    writing, then only the drifted jobs read and repaired again, so a job that merely moved on between two reads
    is not rewritten."""
    _, drift = rebuild_states(apply=False)
    drifted = sorted({finding.job_id for finding in drift if finding.job_id})
    if not drifted:
        return []
    _, drift = rebuild_states(drifted, apply=True)
    return [str(finding) for finding in drift]


# -- artifacts --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    """An artifact an event recorded: where, by which job and event, with which sha256."""

    job_id: str
    seq: int
    path: str
    sha256: str


@dataclass(frozen=True)
class ArtifactCheck:
    problems: list[str]
    files: int  # distinct recorded files
    hashed: int  # of them, re-hashed in this run
    sampled: bool


def recorded_files(job_ids: list[str]) -> list[Recorded]:
    """Every artifact the jobs' events record: the results' (a run's dossier among them) and an idea's prompt
    pins (its submit event). A path recorded again with the same sha256 counts once, at its first event."""
    pins = dict(JobEvent.objects.filter(seq=1, event_type=EventType.IDEA_SUBMITTED).values_list("job_id", "payload"))
    found = []
    for job_id in job_ids:
        refs = recorded_artifacts(job_id)[0]
        pinned = (pins.get(job_id) or {}).get("prompt_pins")
        if pinned:
            refs = [{**pinned, "seq": 1}, *refs]
        seen = set()
        for ref in refs:
            if (ref["path"], ref["sha256"]) not in seen:
                seen.add((ref["path"], ref["sha256"]))
                found.append(Recorded(job_id, ref["seq"], ref["path"], ref["sha256"]))
    return found


def check_artifacts(records: list[Recorded], *, sample: int | None = None, seed: int | None = None) -> ArtifactCheck:
    """Re-hash each recorded file (a file several jobs record is read once), or `sample` of them drawn at random
    (`seed` makes the draw repeatable); one problem line per record whose file is missing or holds other bytes."""
    paths = sorted({record.path for record in records})
    chosen = set(paths)
    if sample is not None and sample < len(paths):
        chosen = set(random.Random(seed).sample(paths, sample))
    found = {path: _sha256_of(path) for path in sorted(chosen)}
    problems = []
    for record in records:
        if record.path not in found or found[record.path] == record.sha256:
            continue
        where = f"{record.path}  job {record.job_id} seq {record.seq}"
        if found[record.path] is None:
            problems.append(f"{where}: missing (expected sha256 {record.sha256})")
        else:
            problems.append(f"{where}: changed (expected sha256 {record.sha256}, found {found[record.path]})")
    return ArtifactCheck(problems, len(paths), len(chosen), sampled=len(chosen) < len(paths))


def _sha256_of(path: str) -> str | None:
    try:
        return sha256_hex(read_artifact(path))
    except (ArtifactNotFound, UnsafePath):  # a path that leads out of the root is as good as missing
        return None


def unrecorded_files(records: list[Recorded], states: dict[str, JobState]) -> tuple[list[str], list[str]]:
    """(files under `jobs/<job_id>/` that no event records, the same for jobs with a step due or running).

    The second list is no one's concern yet: a step that crashed or was cut off after writing its files writes the
    same bytes again and records them. Derived files (`outputs/reruns/rerun_log.jsonl`, `rerun_state.json`) are
    rebuilt from the events and recorded by none, and a bundle exported into the job's folder (`export_job`'s
    default root) adds files that verify_bundle checks."""
    known = defaultdict(set)
    for record in records:
        known[record.job_id].add(record.path)
    unrecorded, in_flight = [], []
    for path in list_artifacts(JOBS_FOLDER):
        parts = path.split("/")
        job_id = parts[1] if len(parts) > 2 else None
        if job_id is not None and (path in known[job_id] or path in (log_path(job_id), state_path(job_id))
                                   or written_by_export(path[len(f"{JOBS_FOLDER}/{job_id}/"):])):
            continue
        state = states.get(job_id)
        if state is None:
            unrecorded.append(f"{path}: no job {job_id} in the database" if job_id else f"{path}: outside any job")
        elif _step_in_flight(state):
            in_flight.append(f"{path}: job {job_id} has step {_due_step(state)} due or running")
        else:
            unrecorded.append(f"{path}: recorded by no event of job {job_id} ({state.status})")
    return unrecorded, in_flight


def _step_in_flight(row: JobState) -> bool:
    return bool(row.reruns) or (row.status in (Status.QUEUED, Status.RUNNING) and row.next_step is not None)


def _due_step(row: JobState) -> str:
    return RERUN_STEP if row.reruns else row.next_step


# -- the whole run ------------------------------------------------------------------------------------------------

@dataclass
class Report:
    """What one run found: sections of one line per finding. Leases recovered and drift repaired are actions
    taken; everything but the leases and the files of steps in flight needs a person."""

    jobs: int = 0
    leases: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    stale_after: float = 0.0
    check: ArtifactCheck | None = None

    def sections(self) -> list[tuple[str, str, list[str], bool]]:
        """(title, short name, lines, whether a person must look) for each section that has a line."""
        return [section for section in (
            ("Expired leases: released by an event", "lease(s) released", self.leases, False),
            ("Projection drift: repaired from the events", "drift(s) repaired", self.drift, True),
            (f"Queued and not claimed for more than {self.stale_after:g}s", "stale job(s)", self.stale, True),
            ("Recorded artifacts missing or changed", "artifact(s) missing or changed", self.artifacts, True),
            ("Files no event records", "unrecorded file(s)", self.unrecorded, True),
            ("Files not recorded yet (a step is due or running)", "file(s) of steps in flight", self.in_flight, False),
        ) if section[2]]

    @property
    def needs_person(self) -> bool:
        return any(human for *_, human in self.sections())

    def hashed(self) -> str:
        check = self.check
        if check.sampled:
            return f"{check.hashed} of {check.files} recorded file(s) re-hashed (a random sample)"
        return f"{check.files} recorded file(s) re-hashed"

    def lines(self) -> list[str]:
        if not self.sections():
            return [f"clean: {self.jobs} job(s), no expired lease, no drift, no stale job, {self.hashed()} and "
                    "intact, no unrecorded file"]
        out = []
        for title, _, lines, human in self.sections():
            out.append(f"== {title} ({len(lines)}){' - needs a person' if human else ''}")
            out.extend(f"  {line}" for line in lines)
        counts = ", ".join(f"{len(lines)} {name}" for _, name, lines, _ in self.sections())
        verdict = "a person must look" if self.needs_person else "nothing needs a person"
        out.append(f"{verdict}: {self.jobs} job(s), {self.hashed()}; {counts}")
        return out


def reconcile(*, worker_id: str, max_attempts: int, stale_after: float, sample: int | None = None,
              seed: int | None = None) -> Report:
    """Drift first (the leases and the queue are read from the projection), then leases, the queue and files."""
    report = Report(stale_after=stale_after)
    report.drift = repair_drift()
    report.leases = [r.line() for r in recover_expired_leases(worker_id=worker_id, max_attempts=max_attempts)]
    report.stale = [s.line() for s in stale_queued(stale_after=stale_after)]
    states = {row.job_id: row for row in JobState.objects.all()}
    job_ids = sorted(JobSpec.objects.values_list("job_id", flat=True))
    report.jobs = len(job_ids)
    records = recorded_files(job_ids)
    report.check = check_artifacts(records, sample=sample, seed=seed)
    report.artifacts = report.check.problems
    report.unrecorded, report.in_flight = unrecorded_files(records, states)
    return report
