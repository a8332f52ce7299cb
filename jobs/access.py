"""The access log of artifact reads: who was served which bytes of which job, when, through what, and under
which request id. Rows are insert-only (the guard triggers refuse UPDATE and DELETE) and are not events: the
job's hash chain records what happened to the job, this log who looked at its files.

A read is logged only once its bytes are about to be served: a refused, missing or not-modified (304) read
writes nothing. A read that cannot be logged is not served (`ReadNotLogged`, 503).
"""
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db import DatabaseError, transaction

from contracts import iso

from .errors import DATABASE_UNREACHABLE, DomainError
from .models import ArtifactRead
from .roles import OPERATE
from .selectors import Page, id_page

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
# A request id taken from a client: short and plain, so that it can be logged and searched as it is.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Who may read the log: operators, and anyone granted the model's view permission (superusers hold both).
LOG_READERS = (OPERATE, "jobs.view_artifactread")


class ReadNotLogged(DomainError):
    """The database would not take the access log's row: the file is not served unaudited."""

    status = 503
    code = "read_not_logged"


@dataclass(frozen=True)
class Reader:
    """Who reads, and under which request: what every access log row names besides the file."""

    who: str
    request_id: str
    via: str

    @classmethod
    def of(cls, request, *, via: str = ArtifactRead.Via.API) -> "Reader":
        user = getattr(request, "user", None)
        who = user.get_username() if user is not None and user.is_authenticated else ANONYMOUS
        return cls(who=who, request_id=request_id(request), via=via)


def request_id(request) -> str:
    """The id the request's logs carry (bound in structlog's context), else the client's X-Request-ID when it is
    a plain token, else a new one."""
    bound = structlog.contextvars.get_contextvars().get("request_id")
    if bound:
        return str(bound)[:128]
    sent = request.META.get(REQUEST_ID_HEADER, "")
    if REQUEST_ID_RE.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def may_read_log(user) -> bool:
    return bool(user and user.is_authenticated and any(user.has_perm(perm) for perm in LOG_READERS))


# -- the write -------------------------------------------------------------------------------------------------

def record_read(*, reader: Reader, job_id: str, path: str, storage_path: str, sha256: str, size: int) -> ArtifactRead:
    """Append one row for bytes about to be served; ReadNotLogged (503) when the database refuses it."""
    try:
        with transaction.atomic():
            return ArtifactRead.objects.create(
                who=reader.who, job_id=job_id, path=path, storage_path=storage_path, sha256=sha256, bytes=size,
                request_id=reader.request_id, via=reader.via,
            )
    except DATABASE_UNREACHABLE:
        raise  # 503 database_unavailable, with Retry-After
    except DatabaseError as exc:
        log.error("artifact read of %s/%s by %s not logged: %s", job_id, path, reader.who, exc)
        raise ReadNotLogged("the read cannot be logged just now, so the file is not served; try again later") from exc


# -- the reads of the log ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadFilters:
    job_id: str | None = None
    who: str | None = None
    since: datetime | None = None


def read_view(row: ArtifactRead) -> dict:
    return {
        "id": row.id, "who": row.who, "job_id": row.job_id, "path": row.path, "storage_path": row.storage_path,
        "sha256": row.sha256, "bytes": row.bytes, "at": iso(row.at), "request_id": row.request_id, "via": row.via,
    }


def list_reads(*, filters: ReadFilters, cursor: str | None = None, limit: int = 50) -> Page:
    """Reads in the order they were logged, `limit` at a time: one query per page."""
    rows = ArtifactRead.objects.all()
    if filters.job_id:
        rows = rows.filter(job_id=filters.job_id)
    if filters.who:
        rows = rows.filter(who=filters.who)
    if filters.since:
        rows = rows.filter(at__gte=filters.since)
    return id_page(rows, view=read_view, cursor=cursor, limit=limit)
