"""E-mail: one message per delivery through Django's e-mail backend (EMAIL_BACKEND: the console in development)."""
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from .kinds import Kind
from .notices import Notice, settings_url
from .webhooks import Sent

SUBJECTS = {
    Kind.WAITING: "Review needed",
    Kind.DECIDED: "Decided",
    Kind.ESCALATED: "Escalated",
    Kind.ERROR: "Error",
    Kind.FINISHED: "Finished",
}


def subject(notice: Notice) -> str:
    return f"[EAM] {SUBJECTS[notice.kind]}: {notice.title} (job {notice.job['job_id']})"


def body(notice: Notice) -> str:
    event = notice.event
    return (
        f"Job \u201c{notice.title}\u201d ({notice.job['job_id']}) {notice.what}.\n\n"
        f"Event: {event['event_type']} (seq {event['seq']}) at {event['recorded_at']}\n"
        f"Status now: {notice.job['status']}\n\n"
        f"Open the job: {notice.url}\n\n"
        f"You receive this because of your notification settings: {settings_url()}\n"
    )


def send(address: str, notice: Notice) -> Sent:
    message = EmailMessage(subject(notice), body(notice), settings.DEFAULT_FROM_EMAIL, [address],
                           headers={"X-EAM-Delivery": str(notice.delivery_id)})
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        # A refused recipient is as likely a passing problem of the server as a bad address: retried like the rest.
        return Sent(False, retryable=True, error=f"{type(exc).__name__}: {exc}")
    return Sent(True)
