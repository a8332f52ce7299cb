"""One rule for how a metric is written (ui.templatetags.ui_format.metric): returns, drawdowns and volatility in
percent, ratios with two decimals, wherever the metric appears: a job's gate results (on /ui and in the admin),
the run's page and the registry show the same value the same way."""
import re

import pytest
from playwright.sync_api import expect

from ui.templatetags.ui_format import metric, metric_difference

from ..builders import ADMIN, done_job_with_run, run_id_of
from .test_browser import log_in

PERCENT = re.compile(r"-?\d+\.\d\d%")
RATIO = re.compile(r"-?\d+\.\d\d")


@pytest.mark.parametrize("value, name, written", [
    (0.1234, "total_return", "12.34%"),
    (0.0712, "cagr", "7.12%"),
    (0.1834, "ann_volatility", "18.34%"),
    (-0.35, "max_drawdown", "-35.00%"),
    (-0.35, "oos.max_drawdown", "-35.00%"),  # a gate's metric is a path to one
    (0.6, "segments.positive_share", "60.00%"),
    (1.23456, "sharpe", "1.23"),
    (1.23456, "stress.costs_x2.sharpe", "1.23"),
    (2.0, "sortino", "2.00"),
    (0.456, "calmar", "0.46"),
    (0.5, "oos.deflated_sharpe", "0.50"),
    (0.25, "trials.pbo", "0.25"),
    (0, "oos.sharpe", "0.00"),
    (12, "oos.trades", "12"),
    (True, "data.snapshot_sha256_match", "true"),
    (None, "oos.sharpe", "—"),
])
def test_a_metric_is_written_by_what_it_measures(value, name, written):
    assert metric(value, name) == written


def test_a_difference_of_a_gate_metric_is_in_percentage_points_or_a_signed_ratio():
    assert metric_difference(0.012, "oos.total_return") == "+1.20 pp"
    assert metric_difference(-0.5, "stress.costs_x2.sharpe") == "-0.50"


def cell(page, table: str, row_name: str, column: int) -> str:
    """The text of the `column`-th cell (1: the first after the row's header) of the row named `row_name`, in the
    table with the caption `table`, or in the gate results when `table` is "gates"."""
    found = page.locator("table.gates") if table == "gates" else page.get_by_role("table", name=table, exact=True)
    row = found.get_by_role("row").filter(has=page.get_by_role("rowheader", name=row_name, exact=True))
    return row.get_by_role("cell").nth(column - 1).inner_text().strip()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_gate_table_the_run_page_and_the_registry_write_each_metric_alike(page, screenshot, people):
    # given a job the engine took to DONE, with its gate results and its run
    job = done_job_with_run(people.submitter)
    run_id = run_id_of(job)
    people.reviewer.is_staff = True
    people.reviewer.save(update_fields=["is_staff"])

    # when a reviewer reads the gate results on the job's page
    log_in(page, "rita", next_url=f"/ui/jobs/{job.job_id}")
    expect(page.get_by_role("heading", name="Gate results")).to_be_visible()
    gates = {gate: cell(page, "gates", gate, 2) for gate in ("oos_sharpe_positive", "max_drawdown", "cost_stress")}
    threshold = cell(page, "gates", "max_drawdown", 3)
    screenshot("gates")

    # then the drawdown is in percent with its threshold, the Sharpe ratios with two decimals
    assert PERCENT.fullmatch(gates["max_drawdown"]) and threshold == ">= -35.00%", (gates, threshold)
    assert RATIO.fullmatch(gates["oos_sharpe_positive"]) and RATIO.fullmatch(gates["cost_stress"]), gates

    # and the run's page writes the same values the same way
    page.goto(f"/ui/runs/{run_id}")
    assert cell(page, "Out-of-sample metrics", "Max drawdown", 1) == gates["max_drawdown"]
    assert cell(page, "Out-of-sample metrics", "Sharpe ratio", 1) == gates["oos_sharpe_positive"]
    assert cell(page, "At twice the costs", "Sharpe ratio", 1) == gates["cost_stress"]
    for name in ("Total return", "CAGR", "Annualised volatility"):
        assert PERCENT.fullmatch(cell(page, "Out-of-sample metrics", name, 1)), name
    for name in ("Sortino ratio", "Calmar ratio"):
        assert RATIO.fullmatch(cell(page, "Out-of-sample metrics", name, 1)), name
    total_return = cell(page, "Out-of-sample metrics", "Total return", 1)
    screenshot("run")

    # and so do the registry's row of the trial and the admin's gate table
    page.goto("/ui/registry")
    trial = page.locator("tr.trial").filter(has_text=run_id).get_by_role("cell")
    sharpe, total, drawdown = (trial.nth(i).inner_text().strip() for i in (4, 5, 6))
    assert (sharpe, total, drawdown) == (gates["oos_sharpe_positive"], total_return, gates["max_drawdown"])
    page.goto(f"{ADMIN}{job.job_id}/change/")
    assert cell(page, "gates", "max_drawdown", 2) == gates["max_drawdown"]
    assert cell(page, "gates", "oos_sharpe_positive", 2) == gates["oos_sharpe_positive"]
