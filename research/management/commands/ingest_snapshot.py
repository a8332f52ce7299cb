"""`manage.py ingest_snapshot --snapshot-id ID --csv FILE`: ingest real daily OHLCV from a long CSV."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from research.errors import ResearchError
from research.snapshots import ingest_csv

from .demo_ingest import describe


class Command(BaseCommand):
    help = (
        "Ingest a long CSV (date,symbol,open,high,low,close,volume; sorted by date; every symbol on every "
        "date) as an immutable snapshot. Nothing is created if any line is invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("--snapshot-id", required=True)
        parser.add_argument("--csv", required=True, type=Path, help="path of the CSV file")

    def handle(self, *args, snapshot_id, csv, **options):
        try:
            data = csv.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {csv}: {exc.strerror}") from exc
        try:
            result = ingest_csv(snapshot_id=snapshot_id, data=data, source=f"csv:{csv.name}")
        except ResearchError as exc:
            raise CommandError(f"{csv}: {exc.message}") from exc
        self.stdout.write(describe(result))
