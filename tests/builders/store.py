"""What was written: the event store's rows and the artifact root's files, to show that something which must
write nothing wrote nothing."""
from pathlib import Path
from typing import NamedTuple

from django.db import connection

from jobs.models import JobEvent, JobSpec


class Counts(NamedTuple):
    specs: int
    events: int


def counts() -> Counts:
    """How many jobs and events there are: what a refused request must leave unchanged."""
    return Counts(JobSpec.objects.count(), JobEvent.objects.count())


def table_rows(table: str) -> list[tuple]:
    """Every row of `table` as raw tuples, in primary key order: what the database really holds."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
        return [tuple(row) for row in cursor.fetchall()]


def store_snapshot() -> dict:
    """The whole event store, row by row, to compare before and after a command that must change nothing
    (not even a projection)."""
    return {t: table_rows(t) for t in ("jobs_jobspec", "jobs_jobevent", "jobs_jobstate")}


def stored_files(root: Path) -> list[str]:
    """Every file under the artifact root, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
