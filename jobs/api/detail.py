"""`GET /jobs/{job_id}` for API clients: the rendered body of jobs.selectors.job_detail, kept per version of
the job and per what the caller may do, so that a repeated read costs one small query.

The body is fixed by the spec (immutable), the events up to `last_seq` (insert-only, named by the hash
chain's `last_hash`), the lease (renewed without an event), the children (spawned jobs: insert-only rows,
so their number names the set) and the caller's `can_*` answers. One query reads exactly those columns;
the body is kept in Django's cache (CACHES["default"], EAM_CACHE_URL) under a digest of all of them, which
is also its ETag. A kept body is therefore never stale: a new event, a renewed lease or a new child makes
another key, and the old key is never asked for again. Two callers who may do the same share one body.
On PostgreSQL the version row itself is kept per process until the database announces a change to the job
(jobs.change_feed), so that a repeated read needs no query at all.
"""
from dataclasses import dataclass
from functools import partial

from django.core.cache import cache
from django.db import connection
from rest_framework.renderers import JSONRenderer

from contracts import sha256_hex
from jobs import change_feed, selectors, sql
from jobs.errors import NotFound
from jobs.models import JobSpec, JobState

CAN = ("can_approve", "can_reject", "can_retry", "can_cancel")

_state, _spec = JobState._meta.db_table, JobSpec._meta.db_table
VERSION_SQL = (
    f"SELECT s.last_seq, s.last_hash, s.status, s.lease_owner, s.lease_expires_at, j.submitted_by,"
    f" j.policy_bundle_id, (SELECT COUNT(*) FROM {_spec} c"
    f"  WHERE c.root_job_id = j.root_job_id AND c.parent_job_id = j.job_id)"
    f" FROM {_state} s JOIN {_spec} j ON j.job_id = s.job_id WHERE s.job_id = %s"
)


@dataclass(frozen=True)
class Version:
    """What a job's detail shows of the job's version and of the caller, and its ETag."""

    shown: tuple
    etag: str


def _version_row(job_id: str) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(VERSION_SQL, [job_id])
        return cursor.fetchone()


def version(*, job_id: str, user, fresh: bool = False) -> Version:
    """The version of the job's detail `user` would get now. NotFound for an unknown job.

    One query; none on PostgreSQL when this process read the job before and the database has announced no
    change to it since (jobs.change_feed). `fresh` always asks the database.
    """
    feed = change_feed.feed()
    row = feed.read(job_id, partial(_version_row, job_id), fresh=fresh) if feed else _version_row(job_id)
    if row is None:
        raise NotFound(f"job {job_id} not found", code="job_not_found")
    last_seq, last_hash, status, lease_owner, lease_expires_at, submitted_by, policy_bundle_id, children = row
    lease_expires_at = sql.value(JobState, "lease_expires_at", lease_expires_at)
    can = selectors.allowed_actions(status=status, submitted_by=submitted_by, policy_bundle_id=policy_bundle_id,
                                    user=user)
    shown = (last_seq, selectors.iso(lease_expires_at), lease_owner, children, tuple(can[name] for name in CAN))
    digest = sha256_hex(repr((selectors.ANSWER_SHAPE, job_id, last_hash, shown)))
    return Version(shown, f'"{digest[:32]}"')


def _shown(detail: dict) -> tuple:
    """The same facts as `version`'s, read off a computed detail."""
    return (detail["last_seq"], detail["lease_expires_at"], detail["lease_owner"], len(detail["lineage"]["children"]),
            tuple(detail[name] for name in CAN))


def body(*, job_id: str, user, current: Version) -> tuple[bytes, str | None]:
    """(the JSON of the job's detail as `user` sees it, its ETag: None if the job moved on since `current`)."""
    key = f"eam:job-detail:{current.etag[1:-1]}"
    kept = cache.get(key)
    if kept is not None:
        return kept, current.etag
    detail = selectors.job_detail(job_id=job_id, user=user)
    rendered = JSONRenderer().render(detail)
    if _shown(detail) != current.shown:
        return rendered, None  # newer than the version the key names: not kept under it
    cache.set(key, rendered)
    return rendered, current.etag
