"""What a job's page tells its script (ui/static/ui/live.js) to follow the job's event stream."""
from django import template

from jobs.pipelines import EventType

register = template.Library()


@register.simple_tag
def event_types() -> str:
    """Every event type, comma-separated: a stream's events are named by type, and a script listens by name."""
    return ",".join(EventType)
