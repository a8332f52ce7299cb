"""Same inputs, same bytes: compile, run and gates twice, in two artifact roots, give identical sha256s."""
import pytest
from django.conf import settings as django_settings

from contracts import sha256_hex
from research import snapshots
from research.artifacts import json_bytes
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.gates import evaluate_gates
from research.registry import TrialSet
from research.snapshots import ingest_csv

from ..builders import RESEARCH, a_blueprint, small_csv, stored_files

# The stored small snapshot is the same bytes on every machine (checked here; the demo one in test_snapshots).
SMALL_SNAP_SHA256 = "f77ea01a2db86e2c621d6e17e2334da2aec6aea333cabbe536e5e2ec61d9c4e9"


def full_run(blueprint):
    snapshot = ingest_csv(snapshot_id="small_snap", data=small_csv(), source="test").snapshot
    assert snapshot.sha256 == SMALL_SNAP_SHA256
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id="small_snap", policy_bundle_id="default_v1")
    dossier = run_dossier(runspec)
    trials = TrialSet(scope="snapshot", run_id=run_id, run_ids=("000000000001", run_id), sharpes=(None, None))
    gates = evaluate_gates(runspec=runspec, run_id=run_id, trials=trials,
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
    blueprint = a_blueprint(family, base=RESEARCH)
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


# Pinned on this project's CI machine; the suite runs on SQLite and on PostgreSQL, so both must give these
# bytes. dossier.json indexes the sha256 of every other dossier file, so it pins them all. The kernel sums with
# numpy reductions, not matrix products, so these hold whatever BLAS kernel the CPU selects (checked with
# OPENBLAS_CORETYPE=Prescott, Haswell, Zen and SkylakeX).
GOLDEN_SMA = {
    "runspec": "58172ac4652537422c0838347f66dee36210b98d7956b0a617bf2c0bc5e1289c",
    "dossier_index": "29b1a896ccbd464534cc8a4512e2a6241ddaad13e9ec646c28af720892bd245d",
    "gate_results": "2cd600bbbd6cab4a721c85eb79b9bf71ce12a4124d7541a36559ce4f04dcd971",
}


@pytest.mark.django_db
def test_the_same_blueprint_gives_the_pinned_bytes_on_every_database(artifact_root):
    result = full_run(a_blueprint("sma_crossover", base=RESEARCH))
    index = next(path for path in result["files"] if path.endswith("/dossier.json"))
    got = {"runspec": result["runspec"], "dossier_index": result["files"][index],
           "gate_results": result["gate_results"]}
    assert got == GOLDEN_SMA
