"""A run's page draws the stitched out-of-sample record (equity beside the benchmark, drawdown, the segments'
returns) and never a holdout bar of a curve; numbers in percent and ratios with fixed decimals; two runs compared
side by side; bad run ids answered with a page, never a 500; the same queries however many segments."""
import json
import re
from datetime import date, timedelta

import pytest

from research.artifacts import read_artifact
from research.compiler import compile_blueprint
from research.dossier import run_dossier
from research.models import RegistryEntry

from ..api.test_query_counts import queries_for
from ..builders import (
    a_blueprint, a_snapshot, done_job_with_run, overwrite_artifact, ran_job, run_id_of, session_client,
)

pytestmark = pytest.mark.django_db

SIX_YEARS = ("2017-01-01", "2023-01-01")
SVG = re.compile(r"<svg\b.*?</svg>", re.S)
TABLE = re.compile(r"<table\b.*?</table>", re.S)
ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def a_run(snapshot_id: str, span: tuple[str, str]) -> tuple[str, dict]:
    """A run of an SMA crossover on a snapshot over `span`, its dossier written: (run_id, runspec)."""
    a_snapshot(snapshot_id, span=span)
    runspec, run_id = compile_blueprint(blueprint=a_blueprint(fast=5, slow=20), snapshot_id=snapshot_id,
                                        policy_bundle_id="default_v1")
    run_dossier(runspec)
    return run_id, runspec


def runspec_of(job) -> dict:
    return json.loads(read_artifact(f"jobs/{job.job_id}/outputs/runspec.json"))


def segments_of(runspec: dict, role: str) -> list[dict]:
    return [s for s in runspec["segments"]["list"] if s["role"] == role]


def days_between(start: str, end: str) -> list[str]:
    """Every calendar day strictly between `start` and `end` (ISO), in ISO."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [(first + timedelta(days=n)).isoformat() for n in range(1, (last - first).days)]


@pytest.fixture
def done_run(people):
    job = done_job_with_run(people.submitter)
    return run_id_of(job), runspec_of(job)


def test_the_run_page_draws_the_stitched_curve_with_its_benchmark_its_drawdown_and_the_segments_returns(
        people, done_run):
    run_id, runspec = done_run
    tests = segments_of(runspec, "test")

    page = session_client(people.reviewer).get(f"/ui/runs/{run_id}").content.decode()

    svgs = SVG.findall(page)
    equity = next(svg for svg in svgs if 'class="equity-chart run-chart"' in svg)
    assert "<title id=\"oos-chart-title\">Stitched out-of-sample equity with the benchmark</title>" in equity
    assert equity.count('<polyline class="curve"') == 1 and equity.count('<polyline class="benchmark"') == 1
    points = re.search(r'<polyline class="curve" fill="none" points="([^"]+)"', equity).group(1).split()
    assert len(points) == sum(s["bars"] for s in tests)  # every test bar, end to end, and nothing else
    assert tests[0]["start"] in equity and tests[-1]["end"] in equity
    drawdown = next(svg for svg in svgs if "drawdown-chart" in svg)
    assert '<polyline class="drawdown"' in drawdown and re.search(r">-?\d+(\.\d+)?%</text>", drawdown)
    bars = next(svg for svg in svgs if "bar-chart" in svg)
    assert bars.count('<g class="bar bar-') == len(runspec["segments"]["list"])
    assert '<g class="bar bar-holdout">' in bars and "holdout (holdout)" in bars
    for svg in svgs:
        assert 'role="img"' in svg and 'viewBox="0 0 ' in svg and "<title" in svg and "<desc" in svg
    assert "The stitched curve at the end of each test segment" in page
    assert all(s["end"] in page for s in tests)


def test_no_holdout_day_appears_in_a_chart_or_a_table_only_its_metrics(people, done_run):
    run_id, runspec = done_run
    [holdout] = segments_of(runspec, "holdout")
    inside = set(days_between(holdout["start"], holdout["end"]))

    client = session_client(people.reviewer)
    for url in (f"/ui/runs/{run_id}", f"/ui/runs/{run_id}?segment=holdout", f"/ui/runs/compare?a={run_id}&b={run_id}"):
        page = client.get(url).content.decode()
        assert not inside & set(ISO_DAY.findall(page)), url  # no day of the holdout's curve, anywhere
        for svg in SVG.findall(page):
            assert holdout["start"] not in svg and holdout["end"] not in svg
            assert not {day for day in ISO_DAY.findall(svg) if day > holdout["start"]}
        # its start and end are written once, in its row of the segments table (its metrics), nowhere else
        rows = [table for table in TABLE.findall(page) if holdout["start"] in table or holdout["end"] in table]
        assert all('class="segments"' in table or "Metrics of this segment" in table for table in rows), url

    holdout_page = client.get(f"/ui/runs/{run_id}?segment=holdout").content.decode()
    assert "<svg" not in holdout_page and "<polyline" not in holdout_page
    assert "The holdout shows metrics only" in holdout_page


def test_a_stitched_curve_that_reaches_into_the_holdout_is_refused_not_drawn(people, artifact_root):
    # given a run whose oos_curve.csv was changed to hold a day of the holdout
    run_id, runspec = a_run("charts_tampered", ("2019-01-01", "2023-01-01"))
    [holdout] = segments_of(runspec, "holdout")
    path = f"dossiers/{run_id}/oos_curve.csv"
    data = read_artifact(path).decode()
    last = data.rstrip("\n").split("\n")[-1].split(",")
    overwrite_artifact(path, (data + ",".join([holdout["start"], *last[1:]]) + "\n").encode())

    # when a reader opens the run, or compares it
    client = session_client(people.reviewer)
    answers = [client.get(url) for url in (f"/ui/runs/{run_id}", f"/ui/runs/compare?a={run_id}&b={run_id}")]

    # then the page refuses it with a message and shows no curve at all
    for response in answers:
        page = response.content.decode()
        assert response.status_code == 404 and "outside the test segments" in page
        assert "<svg" not in page and holdout["start"] not in page
    # and a segment of the same run still reads
    assert client.get(f"/ui/runs/{run_id}?segment=seg_001").status_code == 200


def test_returns_and_drawdowns_are_percent_and_ratios_have_two_decimals(people, done_run):
    run_id, _ = done_run

    page = session_client(people.reviewer).get(f"/ui/runs/{run_id}").content.decode()

    segments = re.search(r'<table class="segments">.*?</table>', page, re.S).group(0)
    for row in re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", segments, re.S):
        cells = re.findall(r'<td class="number">([^<]*)</td>', row)
        total_return, sharpe, max_drawdown, _ = cells
        assert re.fullmatch(r"-?\d+\.\d\d%", total_return) and re.fullmatch(r"-?\d+\.\d\d%", max_drawdown)
        assert re.fullmatch(r"-?\d+\.\d\d|—", sharpe)
    metrics = re.search(r"<caption>Out-of-sample metrics</caption>.*?</table>", page, re.S).group(0)
    values = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="number">([^<]*)</td>', metrics))
    for name in ("Total return", "CAGR", "Max drawdown"):
        assert re.fullmatch(r"-?\d+\.\d\d%", values[name]), (name, values[name])
    for name in ("Sharpe ratio", "Sortino ratio", "Calmar ratio"):
        assert re.fullmatch(r"-?\d+\.\d\d|—", values[name]), (name, values[name])


def test_two_runs_side_by_side(people):
    job_a = done_job_with_run(people.submitter)
    _, run_b = ran_job(people.submitter, people.reviewer, "other run")
    run_a = run_id_of(job_a)

    response = session_client(people.reviewer).get(f"/ui/runs/compare?a={run_a}&b={run_b}")

    assert response.status_code == 200
    page = response.content.decode()
    table = re.search(r'<table class="metrics compare">.*?</table>', page, re.S).group(0)
    assert run_a in table and run_b in table and "B − A" in table
    row = re.search(r'<th scope="row">Total return</th>(.*?)</tr>', table, re.S).group(1)
    a, b, difference = re.findall(r'<td class="number">([^<]*)</td>', row)
    assert a.endswith("%") and b.endswith("%") and re.fullmatch(r"[+-]\d+\.\d\d pp", difference)
    [svg] = SVG.findall(page)
    assert svg.count("<polyline") == 2 and f"A {run_a}" in svg and f"B {run_b}" in svg
    assert 'class="run-1"' in svg and 'class="run-2"' in svg


@pytest.mark.parametrize("query, status", [
    ("", 400),
    ("?a=abc", 400),
    ("?a=abc&b=def", 404),
    ("?a=ABCDEFABCDEF&b=000000000000", 404),
    ("?a=000000000000&b=000000000001", 404),
    ("?a=../../etc&b=000000000000", 404),
])
def test_bad_or_unknown_run_ids_are_a_page_with_a_message(people, query, status):
    before = RegistryEntry.objects.count()

    response = session_client(people.reviewer).get(f"/ui/runs/compare{query}")

    assert response.status_code == status
    assert '<p class="error-detail">' in response.content.decode()
    assert RegistryEntry.objects.count() == before


def test_a_run_with_more_segments_takes_the_same_queries(people):
    client = session_client(people.reviewer)
    # given a run of two test segments and one of more
    short, short_spec = a_run("charts_short", ("2019-01-01", "2023-01-01"))
    long, long_spec = a_run("charts_long", SIX_YEARS)
    assert len(long_spec["segments"]["list"]) > len(short_spec["segments"]["list"])

    counts = {name: queries_for(client, url) for name, url in {
        "short": f"/ui/runs/{short}", "long": f"/ui/runs/{long}",
        "compare short": f"/ui/runs/compare?a={short}&b={short}",
        "compare long": f"/ui/runs/compare?a={short}&b={long}",
    }.items()}

    assert counts["short"] == counts["long"] and counts["compare short"] == counts["compare long"]
    assert counts["compare long"] == counts["long"] + 1  # the second run's trials: one query
