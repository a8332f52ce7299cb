"""Runs judged by the gates without a job: compiled, run and gated by the research kernel itself, the trial
recorded; and snapshots that differ from another only in the bars of its holdout."""
from dataclasses import dataclass

from research.artifacts import read_json_artifact
from research.compiler import compile_blueprint
from research.demo_data import demo_csv
from research.dossier import run_dossier
from research.gates import evaluate_gates
from research.policies import load_policy_bundle, trials_policy
from research.registry import record_trial, trials_in_scope
from research.snapshots import ingest_csv

from .snapshots import FOUR_YEARS


@dataclass(frozen=True)
class GatedRun:
    runspec: dict
    run_id: str
    gate_results: dict


def a_gated_run(blueprint: dict, *, snapshot_id: str, policy_bundle_id: str = "default_v2") -> GatedRun:
    """`blueprint` compiled on `snapshot_id`, run, gated among the trials in the bundle's scope, and recorded in
    the registry as a trial of its own lineage (job id = run id)."""
    runspec, run_id = compile_blueprint(blueprint=blueprint, snapshot_id=snapshot_id, policy_bundle_id=policy_bundle_id)
    result = run_dossier(runspec)
    bundle, _ = load_policy_bundle(policy_bundle_id)
    trials = trials_in_scope(scope=trials_policy(bundle)["scope"], runspec=runspec, run_id=run_id, root_job_id=run_id)
    gated = evaluate_gates(runspec=runspec, run_id=run_id, trials=trials,
                           output_path=f"runs/{run_id}/gate_results.json")
    record_trial(job_id=run_id, root_job_id=run_id, run_id=run_id, runspec=runspec, verdict=gated.verdict,
                 metrics=result.summary["oos"])
    return GatedRun(runspec=runspec, run_id=run_id, gate_results=read_json_artifact(gated.artifact.path))


def a_snapshot_with_other_holdout(snapshot_id: str, *, like: str, holdout_from: str, span=FOUR_YEARS,
                                  symbols=("AAA", "BBB")):
    """The snapshot `like` (as `a_snapshot` makes it) ingested as `snapshot_id`, with every bar from
    `holdout_from` on moved: prices alternately scaled by 1.5 and 1, so the holdout's returns are others."""
    lines = demo_csv(like, symbols=symbols, start=span[0], end=span[1]).decode().splitlines()
    header, rows, moved = lines[0], [], 0
    columns = header.split(",")
    prices = [columns.index(name) for name in ("open", "high", "low", "close")]
    for line in lines[1:]:
        cells = line.split(",")
        date = cells[columns.index("date")]
        if date >= holdout_from:
            if (moved // len(symbols)) % 2 == 0:
                for i in prices:
                    cells[i] = repr(float(cells[i]) * 1.5)
            moved += 1
        rows.append(",".join(cells))
    data = "\n".join([header, *rows]).encode() + b"\n"
    return ingest_csv(snapshot_id=snapshot_id, data=data, source="tests").snapshot
