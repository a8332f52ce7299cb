"""The trace preview: the kernel's own numbers on the first bars of the first test segment, never the holdout."""
import csv
import io
import json
import shutil

import numpy as np
import pytest

from research import KERNEL_VERSION
from research.artifacts import json_bytes
from research.backtest import evaluate
from research.compiler import compile_blueprint
from research.dossier import segment_bars, load_market
from research.errors import PolicyError, ResearchError
from research.snapshots import ingest_csv, load_panel
from research.strategies import (
    indicators, lookback_return, momentum_ranking, rolling_volatility, rsi, sma, sma_crossover, target_weights,
)
from research.trace import DEFAULT_BARS, trace_preview, write_trace_preview

from ..builders import RESEARCH, a_blueprint, small_csv, stored_files

pytestmark = pytest.mark.django_db

JOB = "0123456789ab"
CASES = [
    ("buy_and_hold", None, "long_only"),
    ("sma_crossover", None, "long_only"),
    ("sma_crossover", None, "long_short"),
    ("ts_momentum", None, "long_only"),
    ("ts_momentum", {"lookback": 60, "vol_target": 0.15}, "long_only"),
    ("ts_momentum", {"lookback": 60, "vol_target": 0.15}, "long_short"),
    ("rsi_mean_reversion", None, "long_only"),
    ("rsi_mean_reversion", {"period": 14, "entry": 40, "exit": 55, "trend_filter": 50}, "long_short"),
    ("xs_momentum", None, "long_only"),
    ("xs_momentum", None, "long_short"),
]
INDICATORS = {
    "buy_and_hold": [], "sma_crossover": ["sma_fast", "sma_slow"], "ts_momentum": ["lookback_return"],
    "rsi_mean_reversion": ["rsi"], "xs_momentum": ["lookback_return", "rank"],
}
HEAD = ["date", "symbol", "close"]
TAIL = ["signal", "target_weight", "weight", "portfolio_turnover", "portfolio_cost", "portfolio_gross_return",
        "portfolio_net_return"]


def compiled(family="sma_crossover", params=None, direction="long_only", *, snapshot_id="small_snap",
             bundle="default_v1", **sections):
    blueprint = a_blueprint(family, params, base=RESEARCH, **sections)
    blueprint["strategy"]["direction"] = direction
    return compile_blueprint(blueprint=blueprint, snapshot_id=snapshot_id, policy_bundle_id=bundle)[0]


def rows_of(preview) -> list[dict]:
    return list(csv.DictReader(io.StringIO(preview.csv.decode())))


def column(rows, name, symbols) -> np.ndarray:
    """(bars, symbols) of a CSV column; an empty cell is NaN."""
    values = [float(r[name]) if r[name] else np.nan for r in rows]
    return np.array(values).reshape(-1, len(symbols))


def full_run(runspec):
    """The dossier's evaluation: the whole period from the first test bar to the end, holdout included."""
    market = load_market(runspec)
    first = next(segment_bars(market, s) for s in runspec["segments"]["list"] if s["role"] == "test")["first"]
    strategy = runspec["strategy"]
    evaluation = evaluate(
        dates=market["dates"], close=market["close"], symbols=market["symbols"], family=strategy["family"],
        params=strategy["params"], direction=strategy["direction"], rebalance=strategy["rebalance"],
        max_gross_leverage=runspec["portfolio"]["max_gross_leverage"], fee_bps=runspec["costs"]["fee_bps"],
        slippage_bps=runspec["costs"]["slippage_bps"], start=first, end=len(market["dates"]),
        benchmark_close=market["benchmark_close"],
    )
    return market, first, evaluation


@pytest.mark.parametrize("family, params, direction", CASES)
def test_the_trace_shows_the_full_runs_numbers_on_the_same_bars(small_snapshot, family, params, direction):
    runspec = compiled(family, params, direction)

    preview = trace_preview(runspec, bars=120)

    market, first, evaluation = full_run(runspec)
    symbols, table = market["symbols"], preview.table
    sim = evaluation.window(0, 120)
    assert preview.dates == np.datetime_as_string(sim.dates, unit="D").tolist() and preview.symbols == symbols
    np.testing.assert_allclose(table["weight"], sim.weights, rtol=0, atol=1e-12)
    for name, expected in (("portfolio_cost", sim.costs), ("portfolio_net_return", sim.net_returns),
                           ("portfolio_gross_return", sim.gross_returns), ("portfolio_turnover", sim.turnover)):
        np.testing.assert_allclose(table[name], np.repeat(expected[:, None], len(symbols), 1),
                                   rtol=0, atol=1e-12, err_msg=name)
    close = market["close"]
    targets = target_weights(family, close, runspec["strategy"]["params"], direction=direction,
                             max_gross_leverage=runspec["portfolio"]["max_gross_leverage"])[first:first + 120]
    np.testing.assert_allclose(table["target_weight"], targets, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(table["signal"], np.sign(targets))
    np.testing.assert_array_equal(table["close"], close[first:first + 120])
    for name, values in indicators(family, close, runspec["strategy"]["params"]).items():
        np.testing.assert_allclose(table[name], values[first:first + 120], rtol=0, atol=1e-12 * np.nanmax(close),
                                   equal_nan=True, err_msg=name)
    # the file holds the same numbers, to the dossier's 12 significant digits, by date then universe order
    rows = rows_of(preview)
    assert [r["date"] for r in rows[::len(symbols)]] == preview.dates
    assert [r["symbol"] for r in rows[:len(symbols)]] == symbols
    for name, values in table.items():
        np.testing.assert_allclose(column(rows, name, symbols), values, rtol=1e-11, atol=1e-300, equal_nan=True,
                                   err_msg=name)
    if family != "buy_and_hold":  # each case trades inside its window, beyond its first entry
        assert (sim.turnover[1:] > 0).any()


@pytest.mark.parametrize("family, params, direction", CASES)
def test_the_indicator_columns_are_the_values_the_signal_functions_use(small_snapshot, family, params, direction):
    runspec = compiled(family, params, direction)
    params = runspec["strategy"]["params"]
    close = load_market(runspec)["close"]

    values = indicators(family, close, params)

    expected = INDICATORS[family] + (["volatility"] if params.get("vol_target") else []) + (
        ["sma_trend"] if params.get("trend_filter") else [])
    assert list(values) == expected
    assert all(v.shape == close.shape for v in values.values())
    header = rows_of(trace_preview(runspec))[0].keys()
    assert list(header) == HEAD + expected + TAIL
    if family == "sma_crossover":
        # the crossover computes both averages from the bar the slower one exists
        warm = params["slow"] - 1
        assert np.isnan(values["sma_fast"][:warm]).all() and np.isnan(values["sma_slow"][:warm]).all()
        np.testing.assert_allclose(values["sma_fast"][warm:], sma(close, params["fast"])[warm:], rtol=1e-12)
        np.testing.assert_allclose(values["sma_slow"][warm:], sma(close, params["slow"])[warm:], rtol=1e-12)
        weights = sma_crossover(close, fast=params["fast"], slow=params["slow"], direction=direction)
        decided = (values["sma_fast"] != values["sma_slow"]) & ~np.isnan(values["sma_fast"])
        assert decided[warm:].mean() > 0.99
        side = np.sign(values["sma_fast"] - values["sma_slow"])
        if direction == "long_only":
            side = np.maximum(side, 0)
        np.testing.assert_array_equal(np.sign(weights)[decided], side[decided])
    if family in ("ts_momentum", "xs_momentum"):
        np.testing.assert_array_equal(values["lookback_return"], lookback_return(close, params["lookback"]))
    if params.get("vol_target"):
        np.testing.assert_array_equal(values["volatility"], rolling_volatility(close))
    if family == "rsi_mean_reversion":
        np.testing.assert_array_equal(values["rsi"], rsi(close, params["period"]))
    if params.get("trend_filter"):
        np.testing.assert_array_equal(values["sma_trend"], sma(close, params["trend_filter"]))
    if family == "xs_momentum":
        weights = target_weights(family, close, params, direction=direction)
        ranked = ~np.isnan(values["rank"]).any(axis=1)
        assert ranked[params["lookback"]:].all() and not ranked[:params["lookback"]].any()
        top = values["rank"] <= params["top_k"]
        np.testing.assert_array_equal(weights[ranked] > 0, top[ranked])
        np.testing.assert_array_equal(np.sort(values["rank"][ranked], axis=1),
                                      np.tile(np.arange(1.0, close.shape[1] + 1), (int(ranked.sum()), 1)))


def test_the_rank_breaks_ties_by_universe_order_and_is_empty_without_a_ranking():
    momentum = np.array([[0.1, 0.3, 0.1], [0.2, 0.2, 0.2], [np.nan, 0.1, 0.2]])
    close = np.ones((3, 3))

    order, unranked = momentum_ranking(momentum)
    values = indicators("xs_momentum", np.vstack([close, close * [[1.1, 1.3, 1.1]]]), {"lookback": 3, "top_k": 1})

    assert order[0].tolist() == [1, 0, 2] and unranked.tolist() == [False, True, True]
    assert values["rank"][3].tolist() == [2.0, 1.0, 3.0]
    assert np.isnan(values["rank"][:3]).all()
    assert indicators("buy_and_hold", close, {}) == {}
    with pytest.raises(ValueError, match="unknown strategy family"):
        indicators("astrology", close, {})


def test_the_default_window_is_the_policys_first_bars_of_the_first_test_segment(small_snapshot):
    runspec = compiled("ts_momentum")

    preview = trace_preview(runspec)

    segment = runspec["segments"]["list"][0]
    rows = rows_of(preview)
    assert segment["role"] == "test"
    assert len(rows) == DEFAULT_BARS * 5
    window = preview.summary["window"]
    assert window == {"start": segment["start"], "end": rows[-1]["date"], "bars": DEFAULT_BARS,
                      "bars_requested": DEFAULT_BARS, "bars_from": "policy"}
    assert rows[0]["date"] == segment["start"]
    # after the warm-up: the first bar already holds the position decided at the close before it
    assert runspec["warmup"]["bars"] <= segment_bars(load_market(runspec), segment)["first"]


def test_a_bundles_trace_preview_bars_sets_the_window(small_snapshot, policy_root):
    doc = json.loads((policy_root / "default_v1.json").read_text())
    doc.update(policy_bundle_id="traced", trace_preview={"bars": 7})
    (policy_root / "traced.json").write_text(json.dumps(doc))
    runspec = compiled("sma_crossover", bundle="traced")

    preview = trace_preview(runspec)
    overridden = trace_preview(runspec, bars=3)

    assert (preview.summary["window"]["bars"], len(rows_of(preview))) == (7, 35)
    assert preview.summary["window"]["bars_from"] == "policy"
    assert overridden.summary["window"]["bars"] == 3 and overridden.summary["window"]["bars_from"] == "argument"
    assert rows_of(overridden) == rows_of(preview)[:15]


def test_a_bundle_with_an_invalid_trace_setting_is_refused(small_snapshot, policy_root):
    doc = json.loads((policy_root / "default_v1.json").read_text())
    doc.update(policy_bundle_id="odd", trace_preview={"bars": 0})
    (policy_root / "odd.json").write_text(json.dumps(doc))

    with pytest.raises(PolicyError) as caught:
        compiled("sma_crossover", bundle="odd")

    assert [e["path"] for e in caught.value.errors] == ["/trace_preview/bars"]


def test_a_bundle_changed_since_compile_is_refused(small_snapshot, policy_root, artifact_root):
    runspec = compiled("sma_crossover")
    doc = json.loads((policy_root / "default_v1.json").read_text())
    doc["trace_preview"] = {"bars": 5}
    (policy_root / "default_v1.json").write_text(json.dumps(doc))

    with pytest.raises(PolicyError, match="changed since compile"):
        trace_preview(runspec)

    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


def test_more_bars_than_the_segment_holds_stop_one_bar_before_its_end(small_snapshot):
    runspec = compiled("xs_momentum")
    segment = runspec["segments"]["list"][0]

    preview = trace_preview(runspec, bars=10_000)

    window = preview.summary["window"]
    assert window["bars"] == segment["bars"] - 1 and window["bars_requested"] == 10_000
    dates = np.datetime_as_string(load_market(runspec)["dates"], unit="D").tolist()
    assert window["end"] == dates[dates.index(segment["end"]) - 1]
    market, first, evaluation = full_run(runspec)
    np.testing.assert_allclose(column(rows_of(preview), "portfolio_net_return", market["symbols"])[:, 0],
                               evaluation.net[:segment["bars"] - 1], rtol=0, atol=1e-12)


def with_segments(runspec, *bars_and_roles):
    """`runspec` with its segments laid anew from its first test bar: (bars, role) each, end to end."""
    dates = np.datetime_as_string(load_market(runspec)["dates"], unit="D").tolist()
    at = dates.index(runspec["segments"]["list"][0]["start"])
    laid = []
    for i, (bars, role, start) in enumerate(bars_and_roles, 1):
        start = at if start is None else start
        laid.append({"segment_id": "holdout" if role == "holdout" else f"seg_{i:03d}", "role": role,
                     "start": dates[start], "end": dates[start + bars - 1], "bars": bars})
        at = start + bars
    return {**runspec, "segments": {"list": laid}}


def test_a_test_segment_of_one_bar_is_too_short_to_trace(small_snapshot, artifact_root):
    runspec = compiled("sma_crossover")
    first = segment_bars(load_market(runspec), runspec["segments"]["list"][0])["first"]

    with pytest.raises(ResearchError, match="1 bar\\(s\\): too few to trace"):
        trace_preview(with_segments(runspec, (1, "test", None), (100, "holdout", None)))

    # a holdout laid over the first test segment (no compiler does this) is still never read
    with pytest.raises(ResearchError, match="would read a bar after the first test segment"):
        trace_preview(with_segments(runspec, (60, "test", None), (100, "holdout", first + 5)))
    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


@pytest.mark.parametrize("bars", [0, -3, True, 2.5, "20"])
def test_a_window_of_no_whole_bars_is_refused(small_snapshot, artifact_root, bars):
    runspec = compiled("sma_crossover")

    with pytest.raises(ResearchError, match="whole number of bars") as caught:
        trace_preview(runspec, bars=bars)

    assert caught.value.code == "research_error"
    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


def with_other_holdout(data: bytes, holdout_start: str) -> bytes:
    """The same CSV with every price from `holdout_start` on scaled by 1.5 (a different holdout, same dates)."""
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    prices = [header.index(k) for k in ("open", "high", "low", "close")]
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split(",")
        if fields[header.index("date")] >= holdout_start:
            for i in prices:
                fields[i] = repr(float(fields[i]) * 1.5)
        out.append(",".join(fields))
    return ("\n".join(out) + "\n").encode()


@pytest.mark.parametrize("period", [None, {"start": "2018-07-02"}])
def test_changing_the_holdout_leaves_the_trace_byte_identical(small_snapshot, period):
    runspec = compiled("rsi_mean_reversion", period=period)
    holdout = next(s for s in runspec["segments"]["list"] if s["role"] == "holdout")
    ingest_csv(snapshot_id="small_snap_b", data=with_other_holdout(small_csv(), holdout["start"]), source="test")
    other = compiled("rsi_mean_reversion", period=period, snapshot_id="small_snap_b")
    assert other["segments"] == runspec["segments"]
    tests = [s for s in runspec["segments"]["list"] if s["role"] == "test"]
    assert period is None or len(tests) == 1  # then the first test segment ends where the holdout begins
    assert not np.array_equal(load_panel("small_snap").close, load_panel("small_snap_b").close)

    first, second = trace_preview(runspec, bars=10_000), trace_preview(other, bars=10_000)

    assert first.csv == second.csv
    identity = ("run_id", "snapshot_id")
    assert {k: v for k, v in first.summary.items() if k not in identity} == {
        k: v for k, v in second.summary.items() if k not in identity}
    assert first.summary["window"]["end"] < holdout["start"]


def test_the_trace_is_deterministic_and_written_once(small_snapshot, artifact_root):
    runspec = compiled("ts_momentum", {"lookback": 60, "vol_target": 0.15}, "long_short")

    first, second = trace_preview(runspec), trace_preview(runspec)
    refs = write_trace_preview(job_id=JOB, preview=first)
    again = write_trace_preview(job_id=JOB, preview=second)

    assert (first.csv, first.summary_bytes) == (second.csv, second.summary_bytes)
    assert refs == again
    folder = f"jobs/{JOB}/outputs/trace_preview"
    assert [r.path for r in refs] == [f"{folder}/trace.csv", f"{folder}/summary.json"]
    assert (artifact_root / folder / "trace.csv").read_bytes() == first.csv
    assert (artifact_root / folder / "summary.json").read_bytes() == json_bytes(first.summary)


def test_an_invalid_job_id_writes_nothing(small_snapshot, artifact_root):
    preview = trace_preview(compiled("sma_crossover"))

    with pytest.raises(ResearchError, match="invalid job id"):
        write_trace_preview(job_id="../../etc", preview=preview)

    assert stored_files(artifact_root) == ["snapshots/small_snap/ohlcv.csv"]


def test_the_csv_and_the_summary_describe_each_other(small_snapshot):
    runspec = compiled("sma_crossover", direction="long_short")

    preview = trace_preview(runspec, bars=60)

    text = preview.csv.decode()
    assert text.endswith("\n") and "\r" not in text and "nan" not in text and ",-0," not in text
    rows = rows_of(preview)
    summary = preview.summary
    assert [c["name"] for c in summary["columns"]] == list(rows[0])
    assert all(c["meaning"] for c in summary["columns"])
    assert "10 closes" in next(c["meaning"] for c in summary["columns"] if c["name"] == "sma_fast")
    symbols = runspec["universe"]["symbols"]
    assert summary["symbols"] == symbols and summary["strategy"] == runspec["strategy"]
    assert (summary["kernel_version"], summary["policy_bundle_id"]) == (KERNEL_VERSION, "default_v1")
    assert summary["segment"]["segment_id"] == "seg_001" and summary["window"]["start"] == summary["segment"]["start"]
    assert json.loads(preview.summary_bytes) == summary
    per_date = [rows[i:i + len(symbols)] for i in range(0, len(rows), len(symbols))]
    for day in per_date:  # the book's columns repeat on each symbol's row of a date
        assert len({tuple(r[k] for k in TAIL[3:]) for r in day}) == 1
    book = [day[0] for day in per_date]
    totals = summary["totals"]
    assert totals["turnover"] == pytest.approx(sum(float(r["portfolio_turnover"]) for r in book), abs=1e-11)
    assert totals["cost"] == pytest.approx(sum(float(r["portfolio_cost"]) for r in book), abs=1e-11)
    assert totals["net_return"] == pytest.approx(
        np.prod([1 + float(r["portfolio_net_return"]) for r in book]) - 1, abs=1e-11)
    assert totals["cost"] > 0 and totals["turnover"] > 1


@pytest.fixture
def policy_root(tmp_path, settings):
    """A policy root of the test's own, holding a copy of default_v1."""
    root = tmp_path / "policies"
    root.mkdir()
    shutil.copy(f"{settings.EAM_POLICY_ROOT}/default_v1.json", root / "default_v1.json")
    settings.EAM_POLICY_ROOT = str(root)
    return root
