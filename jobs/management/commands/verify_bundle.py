"""Verify audit bundles with the same code as the stand-alone tools/verify_bundle.py (no database read)."""
from django.core.management.base import BaseCommand, CommandError

from tools import verify_bundle


class Command(BaseCommand):
    help = ("Verify an audit bundle (a job's folder, a folder of them, or a .tar.gz) exactly as "
            "tools/verify_bundle.py does: exit 0 when intact, 1 with a report naming each file and seq at fault.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--keys", help="public keys the auditor holds; they replace the bundle's keys.json")

    def handle(self, *args, path, keys=None, **options):
        argv = [path] + (["--keys", keys] if keys else [])
        code = verify_bundle.main(argv, out=self.stdout)
        if code:
            raise CommandError("the bundle does not verify", returncode=code)
