"""Ids and artifact paths are checked against their allowlists as a whole: a trailing newline is not allowed."""
import pytest

from research.artifacts import check_path
from research.errors import PolicyError, SnapshotError, UnsafePath
from research.policies import check_bundle_id
from research.snapshots import check_snapshot_id


@pytest.mark.parametrize("value", ["demo_snap_001\n", "demo\nsnap", "", "-lead", "x" * 65])
def test_snapshot_id_outside_the_allowlist_is_refused(value):
    with pytest.raises(SnapshotError):
        check_snapshot_id(value)


@pytest.mark.parametrize("value", ["default_v1\n", "../default_v1", "default v1"])
def test_bundle_id_outside_the_allowlist_is_refused(value):
    with pytest.raises(PolicyError):
        check_bundle_id(value)


@pytest.mark.parametrize("path", ["jobs/0123456789ab/outputs/runspec.json\n", "jobs/a\n/b.json"])
def test_artifact_path_with_a_newline_is_refused(path):
    with pytest.raises(UnsafePath):
        check_path(path)


def test_the_allowed_forms_pass():
    assert check_snapshot_id("demo_snap_001") == "demo_snap_001"
    assert check_bundle_id("default_v1") == "default_v1"
    assert check_path("jobs/0123456789ab/outputs/runspec.json") == "jobs/0123456789ab/outputs/runspec.json"
