"""Export jobs as audit bundles (docs/audit.md): one folder per job under a root, or one reproducible .tar.gz."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.bundles import archive_bytes, bundle_files, write_bundle
from jobs.errors import DomainError


class Command(BaseCommand):
    help = ("Export each job as an audit bundle: job_spec.json, inputs/, events.jsonl, outputs/, dossier/, "
            "anchor.json, keys.json, state.json; under --root (default EAM_JOB_ROOT) or into --archive.")

    def add_arguments(self, parser):
        parser.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--root", type=Path, help="folder to write <job_id>/ into (default EAM_JOB_ROOT)")
        where.add_argument("--archive", type=Path, help="write one .tar.gz holding every job's folder instead")
        parser.add_argument("--since-seq", type=int, default=0, metavar="N",
                            help="an incremental tail: only the events after seq N and the artifacts they record")

    def handle(self, *args, job_ids, root=None, archive=None, since_seq=0, **options):
        bundles = {}
        for job_id in dict.fromkeys(job_ids):
            try:
                bundles[job_id] = bundle_files(job_id, since_seq=since_seq)
            except DomainError as exc:
                raise CommandError(f"{job_id}: {exc}") from exc
        if archive is not None:
            archive.parent.mkdir(parents=True, exist_ok=True)
            archive.write_bytes(archive_bytes(bundles))
            self.stdout.write(f"{archive}: {len(bundles)} job(s)")
            return
        root = root or Path(settings.EAM_JOB_ROOT)
        for job_id, files in bundles.items():
            folder = write_bundle(root, job_id, files)
            self.stdout.write(f"{job_id}  {len(files)} files -> {folder}")
