"""Submit a blueprint file as a job (idempotent by content)."""
import json

from django.core.management.base import BaseCommand, CommandError

from jobs import services

from ._operator import domain_errors, user_actor


class Command(BaseCommand):
    help = "Submit a blueprint (JSON file) for a snapshot; prints the job id."

    def add_arguments(self, parser):
        parser.add_argument("file", help="blueprint JSON file (blueprint_v1)")
        parser.add_argument("--snapshot-id", default=None, help="default: EAM_DEFAULT_SNAPSHOT_ID")
        parser.add_argument("--policy-bundle-id", default=None, help="default: EAM_DEFAULT_POLICY_BUNDLE_ID")
        parser.add_argument("--user", required=True, help="the submitting user's username")

    def handle(self, *args, file, snapshot_id, policy_bundle_id, user, **options):
        try:
            with open(file, encoding="utf-8") as handle:
                blueprint = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {file}: {exc}", returncode=2) from exc
        with domain_errors():
            job, created = services.submit_blueprint(
                blueprint=blueprint, snapshot_id=snapshot_id, policy_bundle_id=policy_bundle_id, actor=user_actor(user)
            )
        self.stdout.write(f"{job.job_id} {'submitted' if created else 'already exists'}")
