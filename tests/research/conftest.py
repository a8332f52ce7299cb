"""Fixtures of the research tests: a fresh artifact root per test and a small snapshot."""
from pathlib import Path

import pytest

from research.snapshots import ingest_csv

from .builders import small_csv


@pytest.fixture(autouse=True)
def artifact_root(tmp_path, settings) -> Path:
    """Every test writes its artifacts to its own empty folder (the storage is resolved on each call)."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.EAM_ARTIFACT_ROOT = str(root)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    return root


@pytest.fixture
def small_snapshot(db):
    """A 5 symbols x 4 years snapshot, made through the same ingest code as real data."""
    return ingest_csv(snapshot_id="small_snap", data=small_csv(), source="test").snapshot
