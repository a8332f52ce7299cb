"""Same inputs, same bytes: compile, run and gates twice, in two artifact roots, give identical sha256s."""
import pytest
from django.conf import settings as django_settings

from contracts import sha256_hex
from research import snapshots
from research.artifacts import json_bytes
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.gates import evaluate_gates
from research.snapshots import ingest_csv

from .builders import make_blueprint, small_csv, stored_files

# The stored small snapshot is the same bytes on every machine (checked here; the demo one in test_snapshots).
SMALL_SNAP_SHA256 = "f77ea01a2db86e2c621d6e17e2334da2aec6aea333cabbe536e5e2ec61d9c4e9"


def full_run(blueprint):
    snapshot = ingest_csv(snapshot_id="small_snap", data=small_csv(), source="test").snapshot
    assert snapshot.sha256 == SMALL_SNAP_SHA256
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id="small_snap", policy_bundle_id="default_v1")
    dossier = run_dossier(runspec)
    gates = evaluate_gates(runspec=runspec, run_id=run_id, n_trials=2,
                           output_path="jobs/0123456789ab/outputs/gate_results.json")
    return {
        "run_id": run_id,
        "runspec": sha256_hex(json_bytes(runspec)),
        "files": {ref.path: ref.sha256 for ref in dossier.artifacts},
        "gate_results": gates.artifact.sha256,
    }


def on_disk(root):
    return {path: sha256_hex((root / path).read_bytes()) for path in stored_files(root)}


@pytest.mark.django_db
@pytest.mark.parametrize("family", ["sma_crossover", "xs_momentum", "rsi_mean_reversion"])
def test_two_runs_give_identical_bytes(family, artifact_root, tmp_path, settings):
    blueprint = make_blueprint(family)
    first = full_run(blueprint)
    first_disk = on_disk(artifact_root)

    # A second artifact root and a cold panel cache: everything is computed and written again from scratch.
    other = tmp_path / "second"
    other.mkdir()
    settings.STORAGES = {**django_settings.STORAGES, "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(other)}}}
    snapshots._PANELS.clear()
    second = full_run(blueprint)

    assert second == first
    assert on_disk(other) == first_disk
    assert len(first["files"]) >= 3 * 5 + 4
    assert first["gate_results"] == first_disk["jobs/0123456789ab/outputs/gate_results.json"]
