"""`manage.py demo_ingest --snapshot-id ID`: create the deterministic synthetic snapshot (idempotent)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from research.errors import ResearchError
from research.snapshots import ingest_demo


class Command(BaseCommand):
    help = "Create a deterministic synthetic daily OHLCV snapshot (6 symbols, 10 years of business days)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--snapshot-id",
            default=settings.EAM_DEFAULT_SNAPSHOT_ID or "demo_snap_001",
            help="id of the snapshot (default: EAM_DEFAULT_SNAPSHOT_ID or demo_snap_001)",
        )

    def handle(self, *args, snapshot_id, **options):
        try:
            result = ingest_demo(snapshot_id)
        except ResearchError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(describe(result))


def describe(result) -> str:
    s = result.snapshot
    what = "created" if result.created else "already present with the same content"
    return (
        f"snapshot {s.snapshot_id} {what}: {len(s.symbols)} symbols, {s.start}..{s.end}, "
        f"{s.bars} dates, {s.rows} rows, sha256 {s.sha256}"
    )
