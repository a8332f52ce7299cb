"""The snapshot and policy documents the pure agent tests pass in: what `research.agents.inputs` reads from a
real snapshot (three symbols, four years) and from the bundle `default_v2` (its defaults, holdout floor, budget)."""
SNAPSHOT = {"snapshot_id": "snap", "sha256": "0" * 64, "symbols": ["AAA", "BBB", "CCC"], "start": "2019-01-01",
            "end": "2022-12-30", "bars": 1043}
POLICY = {"policy_bundle_id": "default_v2", "sha256": "1" * 64,
          "defaults": {"fee_bps": 5, "slippage_bps": 5, "test_months": 12, "holdout_months": 12,
                       "protocol": "walk_forward"},
          "holdout_min_months": 6, "budget": {"max_generations": 2, "max_children_per_job": 3, "max_jobs_per_root": 10}}


def with_k(k: int | None) -> dict:
    """POLICY whose budget allows `k` children per job (None: a budget that does not say)."""
    budget = {key: value for key, value in POLICY["budget"].items() if key != "max_children_per_job"}
    return {**POLICY, "budget": budget if k is None else {**budget, "max_children_per_job": k}}
