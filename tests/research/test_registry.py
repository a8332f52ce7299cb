"""The registry: one insert-only row per (job, run), idempotent recording, trial counts per lineage."""
import statistics

import pytest
from django.db import DatabaseError, connection, transaction

from research.compiler import compile_blueprint, params_sha256
from research.models import RegistryEntry
from research.dossier import run_dossier
from research.registry import lineage_trials, record_trial

from ..builders import RESEARCH, a_blueprint

pytestmark = pytest.mark.django_db


def runspec_of(family="sma_crossover", params=None):
    return compile_blueprint(blueprint=a_blueprint(family, params, base=RESEARCH), snapshot_id="small_snap",
                             policy_bundle_id="default_v1")


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
    assert row.verdict == RegistryEntry.Verdict.PASS
    assert row.params_sha256 == params_sha256(runspec) and len(row.params_sha256) == 64
    assert row.metrics == {"oos": {"sharpe": 0.5}}


def test_recording_again_returns_the_first_row(small_snapshot):
    first = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of())

    again = record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of(), verdict="FAIL", sharpe=-1.0)

    assert again.pk == first.pk and again.verdict == "PASS"
    assert RegistryEntry.objects.count() == 1


def test_trials_are_counted_per_lineage_and_family_once_per_run(small_snapshot):
    sma_a = runspec_of("sma_crossover", {"fast": 10, "slow": 50})
    sma_b = runspec_of("sma_crossover", {"fast": 20, "slow": 100})
    momentum = runspec_of("ts_momentum", {"lookback": 60})
    record("aaaaaaaaaaaa", "aaaaaaaaaaaa", sma_a, sharpe=0.2)
    record("bbbbbbbbbbbb", "aaaaaaaaaaaa", sma_b, sharpe=0.6)
    record("cccccccccccc", "aaaaaaaaaaaa", sma_b, sharpe=0.6)  # another job, the same run: one trial
    record("dddddddddddd", "aaaaaaaaaaaa", momentum, sharpe=1.0)
    record("eeeeeeeeeeee", "eeeeeeeeeeee", sma_a, sharpe=0.2)

    assert lineage_trials(root_job_id="aaaaaaaaaaaa") == (3, pytest.approx(0.16))  # Sharpe 0.2, 0.6 and 1.0
    assert lineage_trials(root_job_id="eeeeeeeeeeee") == (1, None)
    assert lineage_trials(root_job_id="ffffffffffff") == (1, None)  # never below one: the DSR divides by it
    lineage = RegistryEntry.objects.filter(root_job_id="aaaaaaaaaaaa")
    assert lineage.count() == 4
    assert lineage.filter(family="sma_crossover").values("run_id").distinct().count() == 2
    assert RegistryEntry.objects.values("run_id").distinct().count() == 3


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


def test_lineage_trials_count_the_run_being_judged_once(small_snapshot):
    judged, judged_id = runspec_of("ts_momentum", {"lookback": 60})
    summary = run_dossier(judged).summary
    record("aaaaaaaaaaaa", "aaaaaaaaaaaa", runspec_of("sma_crossover", {"fast": 10, "slow": 50}), sharpe=0.2)

    assert lineage_trials(root_job_id="ffffffffffff") == (1, None)
    assert lineage_trials(root_job_id="ffffffffffff", including_run_id=judged_id) == (1, None)
    n_trials, variance = lineage_trials(root_job_id="aaaaaaaaaaaa", including_run_id=judged_id)
    assert n_trials == 2
    assert variance == pytest.approx(statistics.variance([0.2, summary["oos"]["sharpe"]]))

    record("bbbbbbbbbbbb", "aaaaaaaaaaaa", (judged, judged_id), sharpe=summary["oos"]["sharpe"])
    assert lineage_trials(root_job_id="aaaaaaaaaaaa", including_run_id=judged_id) == (2, pytest.approx(variance))
