"""Import jobs kept as files (the original file-based JobStore, or EAM audit bundles), each all or nothing."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jobs.jobstore_import import import_store


class Command(BaseCommand):
    help = ("Import every job folder under DIR (job_spec.json, inputs/, events.jsonl, outputs/): checked whole, "
            "then inserted through the one append path; one line per job: imported, skipped (same history "
            "already present) or refused (with the reason; nothing written).")

    def add_arguments(self, parser):
        parser.add_argument("dir", type=Path)

    def handle(self, *args, dir, **options):
        if not dir.is_dir():
            raise CommandError(f"{dir} is not a folder")
        outcomes = import_store(dir)
        for outcome in outcomes:
            self.stdout.write(str(outcome))
        refused = [o for o in outcomes if o.result == "refused"]
        counts = {result: sum(o.result == result for o in outcomes) for result in ("imported", "skipped", "refused")}
        summary = ", ".join(f"{n} {result}" for result, n in counts.items())
        if refused:
            raise CommandError(f"{summary}", returncode=1)
        self.stdout.write(f"OK: {summary}")
