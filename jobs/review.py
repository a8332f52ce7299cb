"""What reviewers see, shared by the admin and the /ui pages: a job's timeline and links to its
artifacts. Reads only, each a fixed number of queries whatever the number of jobs or events.
"""
import json
import re
from dataclasses import dataclass
from datetime import datetime

from django.urls import reverse

from .events import PROVENANCE
from .models import JobEvent
from .pipelines import EventType

# -- timeline --------------------------------------------------------------------------------------------------

# The payload fields a person reads first, per event type; the whole payload stays one click away.
NOTE_FIELDS: dict[str, tuple[str, ...]] = {
    EventType.APPROVED: ("comment",),
    EventType.REJECTED: ("reason",),
    EventType.CANCELLED: ("reason",),
    EventType.RETRY_REQUESTED: ("reason",),
    EventType.ERROR: ("error_class", "message"),
    EventType.STEP_FAILED: ("error_class", "message", "retry_at"),
    EventType.STEP_STARTED: ("attempt", "worker", "recovered_from"),
    EventType.WAITING_APPROVAL: ("artifact_sha256",),
    EventType.STOPPED_BUDGET: ("reason",),
    EventType.JOB_SPAWNED: ("child_job_ids",),
    EventType.RERUN_REQUESTED: ("agent_id", "reason"),
    EventType.RERUN_COMPLETED: ("agent_id", "rerun_id"),
}


SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    event_type: str
    step: str | None
    actor: str
    recorded_at: datetime
    note: str
    payload_json: str


def actor_label(actor: dict | None) -> str:
    actor = actor or {}
    return f"{actor.get('kind')}:{actor.get('id')}"


def event_note(event_type: str, payload: dict) -> str:
    """One line on what the event says: its key payload fields, or a result event's summary."""
    fields = NOTE_FIELDS.get(event_type)
    if fields is None:
        shown = payload.get("summary") or {}
        fields = tuple(shown)
    else:
        shown = payload
    parts = []
    for name in fields:
        value = shown.get(name)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, (list, dict)):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        elif isinstance(value, str) and SHA256_RE.fullmatch(value):
            value = value[:12] + "…"  # the whole hash is in the payload
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


def who_acted(actor: dict | None, payload: dict) -> str:
    """The event's actor; for an event imported from a file-based job store, also who acted and when originally."""
    original = payload.get(PROVENANCE)
    if not isinstance(original, dict):
        return actor_label(actor)
    return f"{actor_label(actor)} (originally {actor_label(original.get('actor'))} at {original.get('recorded_at')})"


def timeline(job_id: str) -> list[TimelineEntry]:
    """Every event of the job, oldest first, ready to show: one query."""
    return [
        TimelineEntry(
            seq=row.seq, event_type=row.event_type, step=row.step,
            actor=who_acted(row.actor, row.payload or {}), recorded_at=row.recorded_at,
            note=event_note(row.event_type, row.payload or {}),
            payload_json=json.dumps(row.payload, indent=2, sort_keys=True, ensure_ascii=False),
        )
        for row in JobEvent.objects.filter(job_id=job_id).order_by("seq")
    ]


# -- artifacts -------------------------------------------------------------------------------------------------

def api_artifact_path(*, job_id: str, run_id: str | None, storage_path: str) -> str | None:
    """Where the API serves an artifact an event recorded, relative to the job (`/jobs/{job_id}/artifacts/<it>`):
    the job's own files, and its run's dossier under the `dossier/` alias; None for anything else."""
    own, dossier = f"jobs/{job_id}/", f"dossiers/{run_id}/"
    if storage_path.startswith(own):
        return storage_path[len(own):]
    if run_id and storage_path.startswith(dossier):
        return "dossier/" + storage_path[len(dossier):]
    return None


def artifact_links(detail: dict) -> list[dict]:
    """`job_detail`'s recorded artifacts, each with the path to show, its download URL (session auth works)
    and whether it is the one under review."""
    links = []
    for ref in detail["artifacts"]:
        relative = api_artifact_path(job_id=detail["job_id"], run_id=detail["run_id"], storage_path=ref["path"])
        links.append({
            **ref,
            "name": relative or ref["path"],
            "href": reverse("job-artifact", kwargs={"job_id": detail["job_id"], "path": relative}) if relative else None,
            "under_review": bool(detail["review_sha256"]) and ref["sha256"] == detail["review_sha256"],
        })
    return links
