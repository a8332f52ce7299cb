"""Prometheus metrics of the job store (`GET /metrics`): every number is read from the database when it is
scraped, so every server process, on every machine, reports the same ones and nothing is kept between scrapes."""
from collections import defaultdict
from datetime import timedelta

from django.db import connection
from django.db.models import (
    Case, Count, DurationField, ExpressionWrapper, F, Min, Q, When, Window,
)
from django.db.models.functions import Lead, Now
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .models import JobEvent, JobState
from .pipelines import CHECKPOINT_NAMES, PIPELINES, RERUN_STEP, RESULT_EVENTS, EventType, Kind, Status, Step

# Upper bounds of the step duration histogram, in seconds: from a quick compile to an hour-long run.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 30, 120, 600, 3600)
# The events that end a step's attempt, and the outcome each counts as.
OUTCOMES = {
    **{event: "completed" for event in RESULT_EVENTS},
    EventType.RERUN_COMPLETED: "completed",
    EventType.STEP_FAILED: "failed",
    EventType.ERROR: "error",
}
STEPS = tuple(sorted({s.name for p in PIPELINES.values() for s in p if isinstance(s, Step)} | {RERUN_STEP}))


def job_counts() -> dict[tuple[str, str], int]:
    """Jobs by (status, kind), every pair present, 0 included."""
    counts = {(str(status), str(kind)): 0 for status in Status for kind in Kind}
    for row in JobState.objects.order_by().values("status", "kind").annotate(n=Count("pk")):
        counts[row["status"], row["kind"]] = row["n"]
    return counts


def waiting_counts() -> dict[str, int]:
    counts = dict.fromkeys(sorted(CHECKPOINT_NAMES), 0)
    rows = (JobState.objects.filter(status=Status.WAITING_APPROVAL).order_by()
            .values("waiting_step").annotate(n=Count("pk")))
    for row in rows:
        counts[row["waiting_step"]] = row["n"]
    return counts


def waiting_oldest_seconds() -> dict[str, float]:
    """Per checkpoint, how long its longest-waiting job has waited (0 when none waits): now minus the job's first
    WAITING_APPROVAL at that checkpoint. Not `JobState.updated_at`, which every later event moves (an agent rerun
    asked for or finished while the job waits, and the checkpoint announced again with the rerun's output)."""
    ages = dict.fromkeys(sorted(CHECKPOINT_NAMES), 0.0)
    rows = (JobEvent.objects.filter(event_type=EventType.WAITING_APPROVAL, job__state__status=Status.WAITING_APPROVAL,
                                    step=F("job__state__waiting_step"))
            .order_by().values("step").annotate(since=Min("recorded_at")))
    moment = timezone.now()
    for row in rows:
        ages[row["step"]] = max((moment - row["since"]).total_seconds(), 0.0)
    return ages


def expired_leases() -> int:
    """Jobs whose worker's lease ran out without being released or renewed, by the database's clock (the one
    claims compare leases with)."""
    return JobState.objects.filter(lease_expires_at__lt=Now()).count()


def pending_reruns() -> int:
    return JobState.objects.filter(reruns__isnull=False).count()


def step_outcomes() -> dict[tuple[str, str], int]:
    """Attempts by (step, outcome), every pair present: the events that ended them, counted in one query."""
    counts = {(step, outcome): 0 for step in STEPS for outcome in sorted(set(OUTCOMES.values()))}
    rows = (JobEvent.objects.filter(event_type__in=list(OUTCOMES), step__isnull=False).order_by()
            .values("step", "event_type").annotate(n=Count("pk")))
    for row in rows:
        key = (row["step"], OUTCOMES[EventType(row["event_type"])])
        counts[key] = counts.get(key, 0) + row["n"]
    return counts


class Durations:
    """How long the attempts of each step took: per step, a count per bucket (not cumulative), and the sum."""

    def __init__(self):
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(DURATION_BUCKETS) + 1))
        self.sums: defaultdict[str, float] = defaultdict(float)

    def add(self, step: str, bucket: int, count: int, seconds: float) -> None:
        self.counts[step][bucket] += count
        self.sums[step] += seconds

    def cumulative(self, step: str) -> list[tuple[str, int]]:
        """The histogram's buckets as Prometheus has them: each counts every attempt up to its bound."""
        bounds = [*(str(bound) for bound in DURATION_BUCKETS), "+Inf"]
        running = 0
        buckets = []
        for bound, count in zip(bounds, self.counts[step]):
            running += count
            buckets.append((bound, running))
        return buckets


def step_durations() -> Durations:
    """From each STEP_STARTED's `recorded_at` to the next start-or-end event of the same job when that one ends the
    attempt (a result, RERUN_COMPLETED, STEP_FAILED or ERROR of the same step). An attempt followed by another
    STEP_STARTED (taken over after its lease ran out), or by nothing (still running, cancelled, stopped by the
    budget), is not measured.

    The database pairs and counts: one query, a window over the start and end events in (job, seq) order, grouped
    by step and bucket, so a few dozen rows come back whatever the size of the log. Its cost grows with the log:
    see docs/operations.md (Metrics)."""
    order = {"partition_by": F("job_id"), "order_by": F("seq").asc()}
    took = ExpressionWrapper(F("ended_at") - F("recorded_at"), output_field=DurationField())
    attempts = (
        JobEvent.objects.filter(event_type__in=[EventType.STEP_STARTED, *OUTCOMES]).order_by()
        .annotate(ended_by=Window(Lead("event_type"), **order), ended_step=Window(Lead("step"), **order),
                  ended_at=Window(Lead("recorded_at"), **order))
        .annotate(took=Case(When(Q(event_type=EventType.STEP_STARTED, ended_by__in=list(OUTCOMES),
                                   ended_step=F("step")), then=took), output_field=DurationField()))
        .filter(took__isnull=False)
        .values_list("step", "took")
    )
    # The ORM cannot group rows that window functions produced (it would put the window inside the aggregate), so
    # the grouping wraps the query it built; bucketing there computes each duration once (on SQLite the difference
    # of two times is a Python function), with the bounds in the database's form of a duration.
    inner, params = attempts.query.sql_with_params()
    bounds = [DurationField().get_db_prep_value(timedelta(seconds=bound), connection) for bound in DURATION_BUCKETS]
    which_bucket = " ".join(f"WHEN took <= %s THEN {i}" for i in range(len(bounds)))
    durations = Durations()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT step, CASE {which_bucket} ELSE {len(bounds)} END AS bucket, COUNT(*), SUM(took) "
                       f"FROM ({inner}) attempts GROUP BY step, bucket", [*bounds, *params])
        for step, bucket, count, total in cursor.fetchall():
            if not connection.features.has_native_duration_field:
                total = timedelta(microseconds=total)  # SQLite: the difference is in microseconds
            durations.add(step, bucket, count, total / timedelta(seconds=1))
    return durations


class JobStoreCollector(Collector):
    """Reads every metric from the database on each scrape."""

    def collect(self):
        jobs = GaugeMetricFamily("eam_jobs", "Jobs by status and kind (JobState).", labels=["status", "kind"])
        for (status, kind), n in job_counts().items():
            jobs.add_metric([status, kind], n)
        yield jobs

        waiting = GaugeMetricFamily("eam_jobs_waiting", "Jobs waiting for approval, by checkpoint.",
                                    labels=["checkpoint"])
        for checkpoint, n in waiting_counts().items():
            waiting.add_metric([checkpoint], n)
        yield waiting

        oldest = GaugeMetricFamily(
            "eam_jobs_waiting_oldest_seconds",
            "Seconds since the longest-waiting job at each checkpoint first announced it (0: none waits).",
            labels=["checkpoint"],
        )
        for checkpoint, age in waiting_oldest_seconds().items():
            oldest.add_metric([checkpoint], age)
        yield oldest

        yield GaugeMetricFamily("eam_leases_expired", "Jobs whose worker lease has expired (database clock).",
                                value=expired_leases())
        yield GaugeMetricFamily("eam_agent_reruns_pending", "Jobs with an agent rerun pending.",
                                value=pending_reruns())

        outcomes = CounterMetricFamily("eam_step_outcomes", "Step attempts by how they ended, from the events.",
                                       labels=["step", "outcome"])
        for (step, outcome), n in step_outcomes().items():
            outcomes.add_metric([step, outcome], n)
        yield outcomes

        durations = step_durations()
        histogram = HistogramMetricFamily("eam_step_duration_seconds",
                                          "Duration of the step attempts that ended, from the events.",
                                          labels=["step"])
        for step in sorted(set(STEPS) | set(durations.counts)):
            histogram.add_metric([step], durations.cumulative(step), sum_value=durations.sums[step])
        yield histogram

        yield CounterMetricFamily("eam_events", "Events in the store.", value=JobEvent.objects.count())


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(JobStoreCollector())


def exposition() -> bytes:
    """The metrics in Prometheus' text format (its content type: `prometheus_client.CONTENT_TYPE_LATEST`)."""
    return generate_latest(REGISTRY)
