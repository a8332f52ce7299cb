"""The whole flow on the embedded database: snapshot, users, blueprints, a pass, approvals, a pass, results;
then an idea job through its five checkpoints to a spawn of children that the budget stops, the children run,
and the lineage as a tree."""
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs import reruns, services
from jobs.events import Actor
from jobs import selectors
from jobs.models import JobEvent, JobSpec
from jobs.pipelines import EventType, Status
from research.artifacts import read_json_artifact
from research.dossier import dossier_root
from workflow.executors._paths import gate_results_path
from workflow.orchestrator import WorkerConfig, run_pass

EXAMPLES = Path(settings.BASE_DIR) / "examples"
DEMO_SNAPSHOT = "demo_snap_001"
DEMO_PASSWORD = "demo-password-123"
# default_v2 with at most three jobs per root: the idea's three proposals spawn two children, then STOPPED_BUDGET.
DEMO_BUDGET_BUNDLE = "demo_budget_v1"
DEMO_IDEA = {
    "schema_version": "idea_spec_v1",
    "title": "Trend following across the demo symbols",
    "hypothesis": "A fast moving average crossing above a slow one marks a trend that persists.",
    "universe": {"symbols": ["ACME", "BOLT", "CRUX", "DYNA", "EPIC", "FLUX"]},
    "preferred_families": ["sma_crossover"],
    "costs": {"fee_bps": 5, "slippage_bps": 5},
    "evaluation": {"protocol": "walk_forward", "test_months": 12, "holdout_months": 12},
}
IDEA_CHECKPOINT_COUNT = 5


class Command(BaseCommand):
    help = "Run the demo: ingest the demo snapshot, submit the example blueprints, run, approve, run, report."

    def add_arguments(self, parser):
        parser.add_argument("--snapshot-id", default=DEMO_SNAPSHOT)

    def handle(self, *args, snapshot_id, **options):
        call_command("demo_ingest", snapshot_id=snapshot_id, stdout=self.stdout)
        call_command("setup_roles", stdout=self.stdout)
        submitter, reviewer = _demo_user("demo-submitter", "submitters"), _demo_user("demo-reviewer", "reviewers")
        self.stdout.write(
            f"demo users (for this demo only; password {DEMO_PASSWORD!r}): "
            f"{submitter.username} (submits), {reviewer.username} (reviews)"
        )
        jobs = []
        for path in sorted(EXAMPLES.glob("*.json")):
            blueprint = json.loads(path.read_text(encoding="utf-8"))
            job, created = services.submit_blueprint(
                blueprint=blueprint, snapshot_id=snapshot_id, actor=Actor.user(submitter)
            )
            jobs.append(job)
            self.stdout.write(f"submitted {path.name} as job {job.job_id}{'' if created else ' (existed)'}")

        worker = WorkerConfig.from_settings("demo-worker")
        self.stdout.write("\n== run_jobs --once (jobs stop at the runspec checkpoint)")
        run_pass(worker, report=lambda r: self.stdout.write(r.line()))
        self.stdout.write(f"\n== approving as {reviewer.username}")
        for job in jobs:
            job.state.refresh_from_db()
            if job.state.status == Status.WAITING_APPROVAL:
                event = services.approve(job_id=job.job_id, step=job.state.waiting_step, actor=Actor.user(reviewer),
                                         comment="demo approval", artifact_sha256=job.state.review_sha256)
                self.stdout.write(f"{job.job_id} {event.step} approved")
        self.stdout.write("\n== run_jobs --once")
        run_pass(worker, report=lambda r: self.stdout.write(r.line()))
        self.stdout.write("")
        self._table(jobs)
        self._idea(snapshot_id, submitter, reviewer, worker)
        self._where()

    def _table(self, jobs):
        header = f"{'job':<12}  {'blueprint':<28} {'status':<16} {'verdict':<7} {'sharpe':>7} {'return':>8} {'maxdd':>7} {'trades':>6}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for job in JobSpec.objects.filter(job_id__in=[j.job_id for j in jobs]).select_related("state"):
            verdict, metrics = "-", {}
            if job.state.status == Status.DONE:
                gates = read_json_artifact(gate_results_path(job.job_id))
                verdict = gates["verdict"]
                metrics = read_json_artifact(f"{dossier_root(gates['run_id'])}/metrics.json")["oos"]
            name = (job.spec["blueprint"].get("name") or "")[:28]
            self.stdout.write(
                f"{job.job_id:<12}  {name:<28} {job.state.status:<16} {verdict:<7} "
                f"{_num(metrics.get('sharpe')):>7} {_pct(metrics.get('total_return')):>8} "
                f"{_pct(metrics.get('max_drawdown')):>7} {metrics.get('trades', '-'):>6}"
            )

    def _where(self):
        if settings.EAM_ARTIFACT_STORAGE == "s3":
            options = settings.STORAGES["artifacts"]["OPTIONS"]
            root = f"s3://{options['bucket_name']}/{options.get('location') or ''}".rstrip("/")
        else:
            root = settings.EAM_ARTIFACT_ROOT
        self.stdout.write(f"\nartifacts: {root}/jobs/<job>/ and {root}/dossiers/<run>/")
        self.stdout.write("browse them: make serve, then http://127.0.0.1:8000/ui/jobs (log in as demo-reviewer); "
                          "also /admin/ and the API at /jobs (/api/docs)")

    def _approve_waiting(self, job_ids, reviewer) -> int:
        """Approve, as the demo reviewer, every checkpoint these jobs wait at, with the sha256 under review."""
        approved = 0
        for job in JobSpec.objects.filter(job_id__in=job_ids).select_related("state").order_by("created_at", "job_id"):
            if job.state.status == Status.WAITING_APPROVAL:
                services.approve(job_id=job.job_id, step=job.state.waiting_step, actor=Actor.user(reviewer),
                                 comment="demo approval", artifact_sha256=job.state.review_sha256)
                self.stdout.write(f"{job.job_id} {job.state.waiting_step} approved "
                                  f"(reviewed sha256 {job.state.review_sha256[:12]}…)")
                approved += 1
        return approved

    def _idea(self, snapshot_id, submitter, reviewer, worker):
        self.stdout.write(f"\n== an idea job under {DEMO_BUDGET_BUNDLE} (at most 3 jobs per root): "
                          "five checkpoints, then the spawn")
        job, created = services.submit_idea(idea=DEMO_IDEA, snapshot_id=snapshot_id, actor=Actor.user(submitter),
                                            policy_bundle_id=DEMO_BUDGET_BUNDLE)
        self.stdout.write(f"submitted the idea “{DEMO_IDEA['title']}” as job {job.job_id}"
                          f"{'' if created else ' (existed)'}")
        for _ in range(IDEA_CHECKPOINT_COUNT + 1):  # each pass runs the job to its next checkpoint, or its end
            run_pass(worker, job_ids=[job.job_id])
            if not self._approve_waiting([job.job_id], reviewer):
                break
        job.state.refresh_from_db()
        stop = (JobEvent.objects.filter(job=job, event_type=str(EventType.STOPPED_BUDGET))
                .values_list("payload", flat=True).first())
        said = f"job {job.job_id} ended {job.state.status}"
        if stop:
            said += (f": {stop['reason']} reached (limit {', '.join(f'{k} {v}' for k, v in stop['limit'].items())}; "
                     f"counters {', '.join(f'{k} {v}' for k, v in stop['counters'].items())})")
        self.stdout.write(said)
        # A reviewer may ask for an agent's output again after the end: evidence only, the outcome stays.
        asked = reruns.request_rerun(job_id=job.job_id, agent_id="report", actor=Actor.user(reviewer),
                                     reason="the demo asks for the report again")
        run_pass(worker, job_ids=[job.job_id])
        done = (JobEvent.objects.filter(job=job, event_type=str(EventType.RERUN_COMPLETED),
                                        payload__rerun_id=asked.payload["rerun_id"]).values_list("payload", flat=True)
                .first()) or {}
        job.state.refresh_from_db()
        self.stdout.write(f"rerun of report {asked.payload['rerun_id']} by {reviewer.username}: "
                          f"{'completed, changed ' + str(done['changed']).lower() if done else 'not completed'}; "
                          f"the job stays {job.state.status}")
        children = list(JobSpec.objects.filter(parent_job_id=job.job_id).values_list("job_id", flat=True))
        self.stdout.write(f"\n== the {len(children)} children: run, approve their runspec, run")
        run_pass(worker, job_ids=children)
        self._approve_waiting(children, reviewer)
        run_pass(worker, job_ids=children)
        self.stdout.write("\n== lineage")
        for line in lineage_lines(selectors.job_lineage(job_id=job.job_id)):
            self.stdout.write(line)


def lineage_lines(lineage: dict) -> list[str]:
    """The tree as text, a job a line: id, status, verdict, generation and title, children indented."""
    jobs = {job["job_id"]: job for job in lineage["jobs"]}
    lines = []

    def walk(job_id: str, prefix: str, branch: str):
        job = jobs[job_id]
        lines.append(f"{prefix}{branch}{job_id}  {job['status']:<14} {job['verdict'] or '-':<5} "
                     f"gen {job['generation']}  {job['title'] or ''}")
        inner = prefix + ("   " if branch == "└─ " else "│  " if branch else "")
        for i, child in enumerate(job["children"]):
            walk(child, inner, "└─ " if i == len(job["children"]) - 1 else "├─ ")

    walk(lineage["root_job_id"], "", "")
    return lines


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _demo_user(username: str, group: str):
    from django.contrib.auth.models import Group

    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_password(DEMO_PASSWORD)
        user.is_staff = True
        user.save()
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user
