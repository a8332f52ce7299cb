"""Reads the /ui pages need beyond jobs.selectors and jobs.review (shared with the admin): the reviewer's
queue and its count, status counts, gate results, a spec in a few lines. Each runs a fixed number of queries;
nothing here writes.
"""
import json
from datetime import datetime

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.timesince import timesince

from contracts import sha256_hex, validate
from jobs import selectors, services
from jobs.errors import InvalidInput
from jobs.models import JobState
from jobs.pipelines import EventType, Status
from jobs.roles import APPROVE, held_by
from research.artifacts import read_artifact
from research.errors import ResearchError
from research.policies import list_policy_bundles

PAGE_SIZE = 50
SEARCH_MAX = 200  # characters of a search
STATUSES = tuple(s.value for s in Status)
GATE_RESULTS_FILE = "outputs/gate_results.json"


def status_filters(where: Q | None = None) -> list[tuple[str, int]]:
    """Every status with its number of jobs (those `where` admits: a search, my jobs), for the filter links:
    one query."""
    rows = JobState.objects.filter(where or Q()).order_by().values("status").annotate(n=Count("pk"))
    counts = {row["status"]: row["n"] for row in rows}
    return [(status, counts.get(status, 0)) for status in STATUSES]


def job_search(*, q: str, submitted_by: str | None = None) -> Q:
    """What narrows the job list: a search (the title, submitter or family contains `q`, ignoring case) and a
    submitter (my jobs); an empty Q when neither."""
    if len(q) > SEARCH_MAX:
        raise InvalidInput(f"a search is at most {SEARCH_MAX} characters", code="invalid_query")
    where = Q()
    if q:
        where &= selectors.matching(q)
    if submitted_by:
        where &= Q(job__submitted_by=submitted_by)
    return where


def _relaxed_bundles() -> list[str]:
    """Policy bundles under which a submitter may decide their own job (none while EAM_FOUR_EYES is on)."""
    return [b["policy_bundle_id"] for b in list_policy_bundles()
            if b["valid"] and not services.four_eyes_applies(b["policy_bundle_id"])]


def _decidable_by(user) -> Q:
    """Of the jobs waiting at a checkpoint, those `user`, a reviewer, may decide: not their own where four eyes
    applies (the rules of allowed_actions)."""
    own = Q(job__submitted_by=user.get_username())
    relaxed = _relaxed_bundles()
    return ~(own & ~Q(job__policy_bundle_id__in=relaxed) if relaxed else own)


def waiting_for_review(*, user, cursor: str | None, limit: int) -> selectors.Page:
    """Jobs waiting at a checkpoint that `user` may decide, the longest waiting first, each with when it began to
    wait (`waiting_since`) and for how long (`waited`, words), paged as jobs.selectors.list_jobs pages every list."""
    if not (user.is_authenticated and user.has_perm(APPROVE)):
        return selectors.Page(results=[], next_cursor=None)
    page = selectors.list_jobs(filters=selectors.JobFilters(status=Status.WAITING_APPROVAL), cursor=cursor,
                               limit=limit, where=_decidable_by(user), order=selectors.LONGEST_WAITING_FIRST)
    moment = timezone.now()
    for job in page.results:
        since = job["waiting_since"]
        job["waited"] = timesince(datetime.fromisoformat(since), moment) if since else None
    return page


def waiting_count(user) -> int:
    """How many jobs `waiting_for_review` lists for `user`: one query (the permission is read in it), none for
    an anonymous visitor."""
    if not user.is_authenticated:
        return 0
    return (JobState.objects.filter(status=Status.WAITING_APPROVAL).filter(_decidable_by(user))
            .filter(held_by(user, APPROVE)).count())


# -- one job -----------------------------------------------------------------------------------------------

def run_completed(detail: dict) -> bool:
    """Whether the job's run wrote its dossier (the run page exists only then)."""
    return bool(detail["run_id"]) and any(a["event_type"] == EventType.RUN_COMPLETED for a in detail["artifacts"])


def gate_results(detail: dict) -> dict | None:
    """The job's gate_results.json as its gates step recorded it, or None before the gates ran.

    The file is checked against the sha256 the event recorded and against its contract, so that the table a
    reviewer reads is the evidence the verdict was computed from; a problem is reported, not raised.
    """
    folder = f"jobs/{detail['job_id']}"
    path = f"{folder}/{GATE_RESULTS_FILE}"
    recorded = next((a for a in detail["artifacts"] if a["path"] == path), None)
    if recorded is None:
        return None
    try:
        data = read_artifact(path, within=folder)
    except ResearchError as exc:
        return {"problem": f"cannot read {GATE_RESULTS_FILE}: {exc}"}
    if sha256_hex(data) != recorded["sha256"]:
        return {"problem": f"{GATE_RESULTS_FILE} does not match the sha256 its event recorded"}
    try:
        doc = json.loads(data)
    except ValueError:
        return {"problem": f"{GATE_RESULTS_FILE} is not JSON"}
    if validate("gate_results_v1", doc):
        return {"problem": f"{GATE_RESULTS_FILE} breaks the gate_results_v1 contract"}
    return doc


def spec_summary(kind: str, spec: dict) -> list[tuple[str, str]]:
    """The few facts of a job spec a reviewer reads first, as (label, text) pairs."""
    if kind == "idea":
        idea = spec.get("idea") or {}
        rows = [("Title", idea.get("title")), ("Hypothesis", idea.get("hypothesis"))]
        universe = idea.get("universe") or {}
    else:
        blueprint = spec.get("blueprint") or {}
        strategy = blueprint.get("strategy") or {}
        params = ", ".join(f"{k}={v}" for k, v in sorted((strategy.get("params") or {}).items()))
        costs = blueprint.get("costs") or {}
        evaluation = blueprint.get("evaluation") or {}
        rows = [
            ("Name", blueprint.get("name")),
            ("Strategy", f"{strategy.get('family')}({params})"),
            ("Costs", ", ".join(f"{k} {v}" for k, v in sorted(costs.items())) or None),
            ("Evaluation", ", ".join(f"{k} {v}" for k, v in sorted(evaluation.items())) or None),
        ]
        universe = blueprint.get("universe") or {}
    rows.append(("Universe", ", ".join(universe.get("symbols") or []) or None))
    return [(label, str(text)) for label, text in rows if text]


def lineage_tree(lineage: dict) -> dict:
    """`jobs.selectors.job_lineage`'s jobs in the order of the tree (each after its parent, depth first), each
    with its `depth` and, as `closes`, how many nested lists end after it: what a template needs to draw the
    tree as nested lists without recursion."""
    jobs = {job["job_id"]: job for job in lineage["jobs"]}
    tops = [job for job in lineage["jobs"] if job["parent_job_id"] not in jobs]
    ordered, stack = [], [(job, 0) for job in reversed(tops)]
    while stack:
        job, depth = stack.pop()
        ordered.append({**job, "depth": depth, "current": job["job_id"] == lineage["job_id"]})
        stack += [(jobs[child], depth + 1) for child in reversed(job["children"]) if child in jobs]
    for node, following in zip(ordered, [*ordered[1:], None]):
        node["closes"] = range(0 if node["children"] else node["depth"] - (following["depth"] if following else 0))
    return {"root_job_id": lineage["root_job_id"], "nodes": ordered, "size": len(ordered)}
