"""The registry: one insert-only row per (job, run), idempotent recording, the trials each scope counts."""
import copy
import statistics

import pytest
from django.db import DatabaseError, connection, transaction

from research.compiler import compile_blueprint, params_sha256
from research.models import RegistryEntry
from research.dossier import run_dossier
from research.errors import PolicyError
from research.registry import record_trial, trials_in_scope

from ..builders import RESEARCH, a_blueprint

pytestmark = pytest.mark.django_db


def runspec_of(family="sma_crossover", params=None):
    return compile_blueprint(blueprint=a_blueprint(family, params, base=RESEARCH), snapshot_id="small_snap",
                             policy_bundle_id="default_v1")


def elsewhere(runspec_and_id, *, snapshot_id=None, symbols=None):
    """The same runspec as if compiled on another snapshot or universe (only what the registry reads differs)."""
    runspec, run_id = runspec_and_id
    other = copy.deepcopy(runspec)
    if snapshot_id:
        other["data"]["snapshot_id"] = snapshot_id
    if symbols:
        other["universe"]["symbols"] = symbols
    return other, run_id


def scope_of(scope, runspec_and_id, root_job_id="ffffffffffff"):
    runspec, run_id = runspec_and_id
    return trials_in_scope(scope=scope, runspec=runspec, run_id=run_id, root_job_id=root_job_id)


def record(job_id, root_job_id, runspec_and_id, verdict="PASS", sharpe=0.5):
    runspec, run_id = runspec_and_id
    return record_trial(job_id=job_id, root_job_id=root_job_id, run_id=run_id, runspec=runspec, verdict=verdict,
                        metrics={"oos": {"sharpe": sharpe}})


def test_a_trial_is_recorded_with_what_identifies_it(small_snapshot):
    runspec, run_id = runspec_of()

    entry = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", (runspec, run_id))

    row = RegistryEntry.objects.get()
    assert row.pk == entry.pk
    identity = (row.run_id, row.job_id, row.root_job_id, row.family, row.snapshot_id, row.policy_bundle_id)
    assert identity == (run_id, "aaaaaaaaaaaa", "aaaaaaaaaaaa", "sma_crossover", "small_snap", "default_v1")
    assert row.symbols == runspec["universe"]["symbols"] == ["AAA", "BBB", "CCC", "DDD", "EEE"]
    assert row.verdict == RegistryEntry.Verdict.PASS
    assert row.params_sha256 == params_sha256(runspec) and len(row.params_sha256) == 64
    assert row.metrics == {"oos": {"sharpe": 0.5}}


def test_recording_again_returns_the_first_row(small_snapshot):
    first = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of())

    again = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of(), verdict="FAIL", sharpe=-1.0)

    assert again.pk == first.pk and again.verdict == "PASS"
    assert RegistryEntry.objects.count() == 1


def test_each_scope_counts_its_trials_once_per_run(small_snapshot):
    sma_a = runspec_of("sma_crossover", {"fast": 10, "slow": 50})
    sma_b = runspec_of("sma_crossover", {"fast": 20, "slow": 100})
    momentum = runspec_of("ts_momentum", {"lookback": 60})
    judged = runspec_of("ts_momentum", {"lookback": 120})
    record("aaaaaaaaaaaa", "aaaaaaaaaaaa", sma_a, sharpe=0.2)
    record("bbbbbbbbbbbb", "aaaaaaaaaaaa", sma_b, sharpe=0.6)
    record("cccccccccccc", "aaaaaaaaaaaa", sma_b, sharpe=0.6)  # another job, the same run: one trial
    record("dddddddddddd", "dddddddddddd", momentum, sharpe=1.0)  # submitted directly: its own lineage
    record("eeeeeeeeeeee", "eeeeeeeeeeee", elsewhere(runspec_of("buy_and_hold"), symbols=["ZZZ"]), sharpe=3.0)
    record("111111111111", "111111111111", elsewhere(runspec_of("xs_momentum"), snapshot_id="other_snap"), sharpe=-1.0)
    record("222222222222", "aaaaaaaaaaaa", judged, sharpe=0.4)

    lineage = scope_of("lineage", judged, root_job_id="aaaaaaaaaaaa")
    snapshot = scope_of("snapshot", judged)
    everything = scope_of("all", judged)

    assert lineage.run_ids == (sma_a[1], sma_b[1], judged[1]) and lineage.sharpes == (0.2, 0.6, 0.4)
    # The same snapshot and a shared symbol: every lineage counts; a disjoint universe or another snapshot not.
    assert snapshot.run_ids == (sma_a[1], sma_b[1], momentum[1], judged[1])
    assert snapshot.n_trials == 4 and snapshot.sharpe_variance == pytest.approx(statistics.variance([0.2, 0.6, 1.0, 0.4]))
    assert everything.n_trials == 6 and everything.sharpes == (0.2, 0.6, 1.0, 3.0, -1.0, 0.4)
    assert snapshot.record() == {"scope": "snapshot", "n_trials": 4, "sharpe_variance": snapshot.sharpe_variance,
                                 "run_ids": list(snapshot.run_ids)}
    assert RegistryEntry.objects.count() == 7


def test_a_row_without_a_universe_counts_on_its_snapshot(small_snapshot):
    judged = runspec_of("ts_momentum", {"lookback": 120})
    old = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of(), sharpe=0.3)
    RegistryEntry.objects.bulk_create([RegistryEntry(  # as written before the registry kept universes
        run_id="0000000000aa", job_id="bbbbbbbbbbbb", root_job_id="bbbbbbbbbbbb", family="buy_and_hold",
        params_sha256=old.params_sha256, snapshot_id="small_snap", symbols=[], policy_bundle_id="default_v1",
        verdict="FAIL", metrics={"oos": {"sharpe": 0.1}})])

    assert scope_of("snapshot", judged).run_ids == (old.run_id, "0000000000aa", judged[1])


def test_an_unknown_scope_is_refused(small_snapshot):
    with pytest.raises(PolicyError, match="unknown trials scope 'universe'") as caught:
        scope_of("universe", runspec_of())
    assert caught.value.code == "policy_error"


@pytest.mark.parametrize(
    "sql",
    ["UPDATE research_registryentry SET verdict = 'FAIL'", "DELETE FROM research_registryentry"],
)
def test_the_database_refuses_to_change_an_entry(small_snapshot, sql):
    entry = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of())

    with pytest.raises(DatabaseError, match="insert-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)

    row = RegistryEntry.objects.get()
    assert (row.pk, row.verdict) == (entry.pk, "PASS")


def test_the_judged_run_counts_once_registered_or_not(small_snapshot):
    judged = runspec_of("ts_momentum", {"lookback": 60})
    summary = run_dossier(judged[0]).summary
    other = runspec_of("sma_crossover", {"fast": 10, "slow": 50})

    alone = scope_of("lineage", judged)
    assert (alone.n_trials, alone.run_ids, alone.sharpes) == (1, (judged[1],), (summary["oos"]["sharpe"],))
    assert alone.sharpe_variance is None
    unrun = scope_of("snapshot", other)  # no dossier yet: counted, its Sharpe unknown
    assert (unrun.n_trials, unrun.sharpes) == (1, (None,))

    record("aaaaaaaaaaaa", "aaaaaaaaaaaa", other, sharpe=0.2)
    before = scope_of("lineage", judged, root_job_id="aaaaaaaaaaaa")
    assert before.run_ids == (other[1], judged[1])
    assert before.sharpe_variance == pytest.approx(statistics.variance([0.2, summary["oos"]["sharpe"]]))

    record("bbbbbbbbbbbb", "aaaaaaaaaaaa", judged, sharpe=summary["oos"]["sharpe"])
    assert scope_of("lineage", judged, root_job_id="aaaaaaaaaaaa") == before


def test_a_retry_counts_the_trials_its_first_attempt_counted(small_snapshot):
    first = runspec_of("sma_crossover", {"fast": 10, "slow": 50})
    judged = runspec_of("ts_momentum", {"lookback": 60})
    summary = run_dossier(judged[0]).summary
    record("aaaaaaaaaaaa", "aaaaaaaaaaaa", first, sharpe=0.2)
    attempt = scope_of("snapshot", judged)
    # Between the attempt and its retry: another trial on the snapshot, and the judged run registered by
    # another job.
    record("bbbbbbbbbbbb", "bbbbbbbbbbbb", runspec_of("ts_momentum", {"lookback": 20}), sharpe=0.9)
    record("cccccccccccc", "cccccccccccc", judged, sharpe=summary["oos"]["sharpe"])

    retry = trials_in_scope(scope="snapshot", runspec=judged[0], run_id=judged[1], root_job_id="ffffffffffff",
                            counted=list(attempt.run_ids))

    assert retry == attempt and attempt.run_ids == (first[1], judged[1])
    assert scope_of("snapshot", judged).n_trials == 3  # counted afresh, the new trial is in
