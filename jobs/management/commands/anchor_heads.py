"""Write a signed anchor of every job's head to artifact storage (`anchors/`), unless nothing moved since the
latest one. Loop workers do this every EAM_ANCHOR_SECONDS; schedule it when workers run with --once."""
from django.core.management.base import BaseCommand

from jobs.anchors import anchor_heads


class Command(BaseCommand):
    help = "Anchor every job's last event (a signed Merkle root, under anchors/ in artifact storage)."

    def handle(self, *args, **options):
        anchor, written = anchor_heads()
        what = "wrote" if written else "unchanged since"
        self.stdout.write(f"{what} {anchor.path}: {anchor.doc['jobs']} job(s), root {anchor.doc['root']}")
