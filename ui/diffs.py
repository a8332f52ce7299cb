"""What changed between two runspecs: a pure diff of JSON documents (`diff_documents`), and the runspec a job
under review is compared with, its parent's or else the previous job's with the same title (`runspec_comparison`).
"""
import json
from dataclasses import dataclass

from django.db.models import OuterRef, Q, Subquery

from contracts import sha256_hex
from jobs.models import JobEvent, JobSpec
from jobs.pipelines import EventType
from jobs.selectors import job_title
from research.artifacts import read_artifact
from research.errors import ResearchError

# Fields of a runspec left out of the comparison because they always differ between two jobs and say nothing
# about the run. A runspec names no job, no time and no run id (the run id is its own hash), so the set is empty;
# the snapshot's and the policy bundle's sha256 stay in: a changed one is a changed input.
IGNORED_PATHS: frozenset[str] = frozenset()
MISSING = object()  # the side of an added or removed field that has no value


@dataclass(frozen=True)
class Change:
    """One field that differs: its dotted path, `added`, `removed` or `changed`, and the values (MISSING where
    the field is absent)."""

    path: str
    kind: str
    before: object
    after: object


def _leaves(doc, prefix: str = "") -> dict[str, object]:
    """A document as {dotted path: value}; lists of objects by index (`segments.list.2.end`), lists of plain
    values whole (a changed universe is one change, not a shift of every symbol after the first one changed)."""
    if isinstance(doc, dict) and doc:
        leaves = {}
        for key, value in doc.items():
            leaves.update(_leaves(value, f"{prefix}{key}."))
        return leaves
    if isinstance(doc, list) and any(isinstance(v, (dict, list)) for v in doc):
        leaves = {}
        for index, value in enumerate(doc):
            leaves.update(_leaves(value, f"{prefix}{index}."))
        return leaves
    return {prefix.rstrip("."): doc}


def diff_documents(before: dict, after: dict, *, ignore=IGNORED_PATHS) -> list[Change]:
    """Every field that differs between `before` and `after`, in path order, leaving out the paths in `ignore`
    (and what lies under them)."""
    old, new = _leaves(before), _leaves(after)

    def ignored(path: str) -> bool:
        return any(path == p or path.startswith(p + ".") for p in ignore)

    changes = []
    for path in sorted(old.keys() | new.keys()):
        if ignored(path):
            continue
        a, b = old.get(path, MISSING), new.get(path, MISSING)
        if a is MISSING:
            changes.append(Change(path, "added", MISSING, b))
        elif b is MISSING:
            changes.append(Change(path, "removed", a, MISSING))
        elif a != b or isinstance(a, bool) != isinstance(b, bool):  # JSON's true is not 1
            changes.append(Change(path, "changed", a, b))
    return changes


def _other_job(detail: dict) -> tuple[dict | None, str]:
    """The job to compare with and why (`parent` or `previous`), with its latest RUNSPEC_COMPILED payload: one
    query. The previous job is the latest created before this one (created_at, then job_id) with its title."""
    compiled = Subquery(JobEvent.objects.filter(job_id=OuterRef("job_id"), event_type=EventType.RUNSPEC_COMPILED)
                        .order_by("-seq").values("payload")[:1])
    rows = JobSpec.objects.annotate(title=job_title("spec"), compiled=compiled)
    columns = ("job_id", "title", "compiled")
    if detail["parent_job_id"]:
        return rows.filter(job_id=detail["parent_job_id"]).values(*columns).first(), "parent"
    if not detail["title"]:
        return None, ""
    mine = JobSpec.objects.filter(job_id=detail["job_id"]).values("created_at")
    earlier = Q(created_at__lt=Subquery(mine)) | Q(created_at=Subquery(mine), job_id__lt=detail["job_id"])
    row = (rows.filter(earlier, title=detail["title"]).order_by("-created_at", "-job_id")
           .values(*columns).first())
    return row, "previous"


def _recorded_runspec(job_id: str, payload: dict) -> dict:
    """The runspec a RUNSPEC_COMPILED event recorded, its bytes checked against the recorded sha256."""
    path = f"jobs/{job_id}/outputs/runspec.json"
    ref = next((a for a in payload.get("artifacts") or [] if a.get("path") == path), None)
    if ref is None:
        raise ValueError("its compile recorded no outputs/runspec.json")
    data = read_artifact(path, within=f"jobs/{job_id}")
    if sha256_hex(data) != ref.get("sha256"):
        raise ValueError(f"the bytes of its runspec.json (sha256 {sha256_hex(data)}) are not the ones recorded "
                         f"({ref.get('sha256')})")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("its runspec.json is not a JSON object")
    return doc


def runspec_comparison(detail: dict, runspec: dict) -> dict | None:
    """`runspec` (the one under review) against the parent's or the previous same-title job's recorded runspec:
    {"job_id", "title", "relation", and "changes" or "problem"}; None when there is no job to compare with."""
    other, relation = _other_job(detail)
    if other is None:
        return None
    found = {"job_id": other["job_id"], "title": other["title"], "relation": relation}
    if not other["compiled"]:
        return {**found, "problem": f"Job {other['job_id']} has no compiled runspec yet: nothing to compare with."}
    try:
        before = _recorded_runspec(other["job_id"], other["compiled"])
    except (ResearchError, OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return {**found, "problem": f"The runspec of job {other['job_id']} cannot be read: {exc}"}
    return {**found, "changes": [
        {"path": c.path, "kind": c.kind, "before": _shown(c.before), "after": _shown(c.after)}
        for c in diff_documents(before, runspec)
    ]}


def _shown(value) -> str | None:
    """A value as exact JSON (a page's number format would hide a change in the fifth digit); None if absent."""
    return None if value is MISSING else json.dumps(value, ensure_ascii=False)
