"""The input documents of the agents, read from the database and the artifacts: the only part of the agents
that reads anything. The agents themselves are pure functions of what these return."""
from ..compiler import bundle_defaults
from ..models import RegistryEntry
from ..policies import load_policy_bundle
from ..runs import run_detail, shows
from ..snapshots import get_snapshot
from .base import holdout_evidence

WINDOW = ("segment_id", "role", "start", "end", "bars")  # what a segment is, before any figure of it
GATE_FIGURES = ("gate_id", "metric", "operator", "threshold", "value", "result")


def snapshot_doc(snapshot_id: str) -> dict:
    """What an agent may know of a snapshot: its id, sha256, symbols (column order) and first and last date."""
    row = get_snapshot(snapshot_id)
    return {"snapshot_id": row.snapshot_id, "sha256": row.sha256, "symbols": list(row.symbols),
            "start": row.start.isoformat(), "end": row.end.isoformat(), "bars": row.bars}


def policy_doc(policy_bundle_id: str) -> dict:
    """What an agent may know of a policy bundle: the defaults the compiler applies, the holdout floor and the
    budget, with the bundle's id and sha256."""
    bundle, sha256 = load_policy_bundle(policy_bundle_id)
    return {
        "policy_bundle_id": policy_bundle_id,
        "sha256": sha256,
        "defaults": bundle_defaults(bundle),
        "holdout_min_months": bundle["holdout"].get("min_months", 1),
        "budget": bundle["budget"],
    }


def intent_input(*, idea: dict, snapshot_id: str, policy_bundle_id: str) -> dict:
    return {"idea": idea, "snapshot": snapshot_doc(snapshot_id), "policy": policy_doc(policy_bundle_id)}


def strategy_spec_input(*, blueprint: dict, snapshot_id: str, policy_bundle_id: str) -> dict:
    return {"blueprint": blueprint, "snapshot": snapshot_doc(snapshot_id), "policy": policy_doc(policy_bundle_id)}


# -- a run's evidence: what the holdout rule shows, and for improvements the test segments only ---------------

def _run_view(run_id: str) -> dict:
    """The run as `research.runs.run_detail` shows it (the holdout rule applied there: a holdout shows its
    metrics only), without the registry's list of jobs, which no agent reads."""
    detail = run_detail(run_id=run_id)
    return {"run_id": run_id, "metrics": detail["metrics"], "segments": detail["segments"],
            "test_segments": detail["test_segments"], "positive_share": detail["positive_share"]}


def report_input(*, run_id: str, gate_results: dict) -> dict:
    """The report's input: the run as shown (test segments with their figures, the holdout's window only:
    its figures reach the report as the gates report them, nowhere else) and the gate results."""
    view = _run_view(run_id)
    view["segments"] = [row if row["role"] != "holdout" else {k: row[k] for k in WINDOW if k in row}
                        for row in view["segments"] if shows(row["role"], "metrics")]
    return {"dossier": view, "gate_results": gate_results}


def improvements_input(*, run_id: str, blueprint: dict, gate_results: dict, policy_bundle_id: str) -> dict:
    """The improvements agent's input: test-segment evidence only. Of the holdout nothing enters, not its
    window, not a gate whose evidence is a holdout file, not the verdict (which such a gate decides). The
    trials already tried in scope enter as their strategy's params_sha256, never as run ids, so the same
    strategies tried give the same input whatever data their holdout held."""
    view = _run_view(run_id)
    tried = set(
        RegistryEntry.objects.filter(run_id__in=gate_results.get("trials", {}).get("run_ids", [run_id]))
        .values_list("params_sha256", flat=True)
    )
    return {
        "blueprint": blueprint,
        "evidence": {
            "oos": view["metrics"]["oos"],
            "stress": view["metrics"].get("stress", {}),
            # Figures only: paths name the run and notes the snapshot's sha256, which change with any byte of
            # the data, holdout bars included.
            "test_segments": [{k: v for k, v in row.items() if k != "metrics_path"}
                              for row in view["segments"] if row["role"] == "test"],
            "positive_share": view["positive_share"],
            "gates": [{k: v for k, v in g.items() if k in GATE_FIGURES}
                      for g in gate_results["gates"]
                      if not holdout_evidence(g, run_id=run_id, segments=view["segments"])],
        },
        "tried_params_sha256": sorted(tried),
        "policy": policy_doc(policy_bundle_id),
    }
