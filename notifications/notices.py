"""What a notification says, whatever carries it: the job (title, id, status), the event, what happened, and the
link to the job's page. E-mail and webhooks render the same Notice."""
from dataclasses import dataclass

from django.conf import settings

from jobs.state import format_time
from jobs.models import JobState
from jobs.selectors import job_title

from .kinds import Kind, what_happened

UNTITLED = "(untitled)"


@dataclass(frozen=True)
class Notice:
    delivery_id: int
    kind: Kind
    event: dict   # job_id, seq, event_type, step, actor, recorded_at, payload
    job: dict     # job_id, title, status
    what: str     # "waits for review at runspec"
    url: str      # the job's page

    @property
    def title(self) -> str:
        return self.job["title"] or UNTITLED

    def document(self) -> dict:
        """The webhook's JSON body (sent as canonical JSON)."""
        return {"delivery_id": self.delivery_id, "kind": str(self.kind), "event": self.event, "job": self.job,
                "url": self.url}


def job_url(job_id: str) -> str:
    return f"{settings.EAM_SITE_URL.rstrip('/')}/ui/jobs/{job_id}"


def settings_url() -> str:
    """The page where a person chooses what they receive (eam_site/urls.py, `notification-settings`)."""
    return f"{settings.EAM_SITE_URL.rstrip('/')}/ui/settings/notifications"


def notice_of(delivery) -> Notice:
    """The notice of `delivery` (its event loaded), with the job's title and its status now."""
    event = delivery.event
    job = (JobState.objects.filter(job_id=event.job_id).annotate(title=job_title())
           .values("status", "title").get())
    return Notice(
        delivery_id=delivery.id,
        kind=Kind(delivery.kind),
        event={"job_id": event.job_id, "seq": event.seq, "event_type": event.event_type, "step": event.step,
               "actor": event.actor, "recorded_at": format_time(event.recorded_at), "payload": event.payload},
        job={"job_id": event.job_id, "title": job["title"], "status": job["status"]},
        what=what_happened(event.event_type, event.step, event.payload),
        url=job_url(event.job_id),
    )
