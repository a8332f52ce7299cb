"""Allowlists for every id that reaches a URL or a path, checked before any lookup (DESIGN §4.1)."""
import re

from contracts import NAME_ID

from .errors import InvalidInput, NotFound

JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")
NAME_ID_RE = NAME_ID


def check_job_id(job_id) -> str:
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
        raise NotFound("no such job: a job id is 12 lowercase hex characters", code="invalid_job_id")
    return job_id


def check_name_id(value, *, what: str, path: str) -> str:
    """Snapshot, policy bundle and agent ids."""
    if not isinstance(value, str) or not NAME_ID_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {what}", code=f"invalid_{what}",
            errors=[{"path": path, "message": f"must match {NAME_ID_RE.pattern}"}],
        )
    return value
