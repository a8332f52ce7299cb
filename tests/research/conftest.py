"""Fixtures of the research tests: a fresh artifact root per test and a small snapshot."""
from pathlib import Path

import pytest

from research.snapshots import ingest_csv

from ..builders import small_csv


@pytest.fixture(autouse=True)
def _own_artifact_root(artifact_root) -> Path:
    """Every research test writes its artifacts to its own empty folder."""
    return artifact_root


@pytest.fixture
def small_snapshot(db):
    """A 5 symbols x 4 years snapshot, made through the same ingest code as real data."""
    return ingest_csv(snapshot_id="small_snap", data=small_csv(), source="test").snapshot
