"""The whole flow on the embedded database: snapshot, users, blueprints, a pass, approvals, a pass, results."""
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs import services
from jobs.events import Actor
from jobs.models import JobSpec
from jobs.pipelines import Status
from research.artifacts import read_json_artifact
from research.dossier import dossier_root
from workflow.executors._paths import gate_results_path
from workflow.orchestrator import WorkerConfig, run_pass

EXAMPLES = Path(settings.BASE_DIR) / "examples"
DEMO_SNAPSHOT = "demo_snap_001"
DEMO_PASSWORD = "demo-password-123"


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
        self.stdout.write(f"\nartifacts: {settings.EAM_ARTIFACT_ROOT}/jobs/<job>/ and {settings.EAM_ARTIFACT_ROOT}/dossiers/<run>/")
        self.stdout.write("browse them: make serve, then http://127.0.0.1:8000/ui/jobs (log in as demo-reviewer); "
                          "also /admin/ and the API at /jobs (/api/docs)")


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
