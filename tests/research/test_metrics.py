"""Metrics of a simulation, and the probabilistic / deflated Sharpe ratios against published figures.

Pure numpy: no database, no Django.
"""

import json
import math

import numpy as np
import pytest

from research.backtest import Simulation
from research.metrics import (
    compute_metrics,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    normal_cdf,
    normal_ppf,
    probabilistic_sharpe_ratio,
)


def simulation(net_returns, weights=None, trade_pnl=(), turnover=None, benchmark=None):
    """A Simulation built by hand: costs are zero, so gross == net; the benchmark flat unless given."""
    net = np.asarray(net_returns, dtype=float)
    n = net.shape[0]
    weights = np.ones((n, 1)) if weights is None else np.asarray(weights, dtype=float)
    trades = [{"symbol": "X", "side": "long", "entry_date": "2020-01-01", "exit_date": None, "bars": 1,
               "return": 2 * pnl, "pnl": pnl} for pnl in trade_pnl]
    return Simulation(
        dates=np.datetime64("2020-01-01") + np.arange(n),
        weights=weights,
        gross_returns=net,
        costs=np.zeros(n),
        net_returns=net,
        turnover=np.zeros(n) if turnover is None else np.asarray(turnover, dtype=float),
        trades=trades,
        benchmark_returns=np.zeros(n) if benchmark is None else np.asarray(benchmark, dtype=float),
    )


def seeded_returns(n=1000, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_t(df=5, size=n) * 0.01 + 0.0004


# --- published figures ------------------------------------------------------------------------------------

def test_expected_max_sharpe_of_ten_trials():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", J. Portfolio Management 40(5):
    E[max SR] ~ sqrt(V) ((1-g) Z^-1(1-1/N) + g Z^-1(1-1/(N e))); for N = 10, V = 1 this is ~1.5746."""
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.5746, abs=5e-5)
    assert expected_max_sharpe(10, 4.0) == pytest.approx(2 * expected_max_sharpe(10, 1.0), rel=1e-15)


def test_deflated_sharpe_ratio_numerical_example_of_the_paper():
    """Bailey & López de Prado (2014), numerical example: annualised SR 2.5 over 5 years of daily returns
    (T = 1250, 250 a year), N = 100 trials with annualised V[SR] = 0.5, skewness -3, kurtosis 10.
    The paper reports E[max SR] = 0.1132 per day (non-annualised) and DSR = 0.9004."""
    sr_daily = 2.5 / math.sqrt(250)
    var_daily = 0.5 / 250

    assert expected_max_sharpe(100, var_daily) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sr_daily, 1250, -3.0, 10.0, 100, var_daily) == pytest.approx(0.9004, abs=5e-5)


# --- properties of the PSR and DSR ------------------------------------------------------------------------

def test_psr_at_the_benchmark_is_one_half():
    assert probabilistic_sharpe_ratio(0.1, 0.1, 250, -0.7, 6.0) == pytest.approx(0.5, abs=1e-15)


def test_psr_grows_with_the_track_record_when_above_the_benchmark():
    values = [probabilistic_sharpe_ratio(0.05, 0.0, n, -0.5, 5.0) for n in (20, 60, 250, 1000, 5000)]
    assert all(a < b for a, b in zip(values, values[1:]))
    below = [probabilistic_sharpe_ratio(-0.05, 0.0, n, -0.5, 5.0) for n in (20, 60, 250, 1000)]
    assert all(a > b for a, b in zip(below, below[1:]))


def test_psr_for_normal_returns():
    """Normal returns (skew 0, kurtosis 3): Phi(SR sqrt(n-1) / sqrt(1 + SR^2/2)) -- the SR^2/2 term is the
    estimation variance of the Sharpe ratio itself (Lo 2002); with kurtosis 1 the denominator is exactly 1."""
    sr, n = 0.08, 500
    assert probabilistic_sharpe_ratio(sr, 0.0, n, 0.0, 3.0) == pytest.approx(
        normal_cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr * sr / 2)), rel=1e-14)
    assert probabilistic_sharpe_ratio(sr, 0.0, n, 0.0, 1.0) == pytest.approx(
        normal_cdf(sr * math.sqrt(n - 1)), rel=1e-14)


def test_negative_skew_and_fat_tails_lower_the_psr():
    normal = probabilistic_sharpe_ratio(0.1, 0.0, 250, 0.0, 3.0)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 250, -2.0, 3.0) < normal
    assert probabilistic_sharpe_ratio(0.1, 0.0, 250, 0.0, 12.0) < normal


def test_dsr_with_one_trial_is_the_psr():
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert deflated_sharpe_ratio(0.1, 300, -1.0, 5.0, 1, 0.3) == probabilistic_sharpe_ratio(0.1, 0.0, 300, -1.0, 5.0)


def test_more_trials_deflate_more():
    values = [deflated_sharpe_ratio(0.1, 1000, 0.0, 3.0, n, 0.002) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError):
        expected_max_sharpe(0)
    with pytest.raises(ValueError):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)


@pytest.mark.parametrize("p, quantile", [
    (0.5, 0.0),
    (0.975, 1.959963984540054),
    (0.9, 1.2815515655446004),
    (0.99, 2.3263478740408408),
    (1e-10, -6.361340902404056),
])
def test_normal_quantile_known_values(p, quantile):
    assert normal_ppf(p) == pytest.approx(quantile, abs=1e-12)


def test_normal_quantile_keeps_its_precision_in_the_upper_tail():
    # 1 - p is exact for p >= 0.5, so the tail probability the quantile leaves can be checked relatively.
    for q in np.logspace(-15, -2, 200):
        p = 1.0 - float(q)
        assert abs(normal_cdf(-normal_ppf(p)) - (1.0 - p)) <= 1e-12 * (1.0 - p)


def test_normal_quantile_inverts_the_cdf_to_1e_12():
    for p in np.concatenate([np.linspace(1e-6, 1 - 1e-6, 2001), np.logspace(-250, -3, 100)]):
        x = normal_ppf(float(p))
        assert abs(normal_cdf(x) - p) <= 1e-12 * min(p, 1 - p)


# --- compute_metrics against a plain reference --------------------------------------------------------------

def test_metrics_equal_a_plain_reference():
    returns = seeded_returns()
    weights = np.full((1000, 2), 0.75)
    weights[:, 1] = -0.5
    weights[::7] = 0.0
    turnover = np.where(np.arange(1000) % 7 < 2, 1.0, 0.0)
    sim = simulation(returns, weights=weights, trade_pnl=[0.1, -0.05, 0.02, -0.01, 0.0], turnover=turnover)

    m = compute_metrics(sim, cash_rate=0.03)

    r = [float(x) for x in returns]
    n = len(r)
    mean = sum(r) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    cash = 0.03 / 252
    downside = math.sqrt(sum(min(x - cash, 0.0) ** 2 for x in r) / n)
    m2 = sum((x - mean) ** 2 for x in r) / n
    skew = sum((x - mean) ** 3 for x in r) / n / m2 ** 1.5
    kurt = sum((x - mean) ** 4 for x in r) / n / m2 ** 2
    equity, peak, depth, longest, since_peak = 1.0, 1.0, 0.0, 0, 0
    for x in r:
        equity *= 1 + x
        if equity >= peak:
            peak, since_peak = equity, 0
        else:
            since_peak += 1
        longest = max(longest, since_peak)
        depth = min(depth, equity / peak - 1)
    cagr = equity ** (252 / n) - 1

    expected = {
        "total_return": equity - 1,
        "cagr": cagr,
        "ann_volatility": std * math.sqrt(252),
        "sharpe": (mean - cash) / std * math.sqrt(252),
        "sortino": (mean - cash) / downside * math.sqrt(252),
        "max_drawdown": depth,
        "calmar": cagr / -depth,
        "turnover": sum(turnover) / n * 252,
        "gross_exposure": 1.25 * (1 - 143 / 1000),
        "time_in_market": 1 - 143 / 1000,
        "win_rate": 2 / 5,
        "profit_factor": 0.12 / 0.06,
        "skew": skew,
        "kurtosis": kurt,
        "t_stat": (mean - cash) / std * math.sqrt(n),
        "psr": probabilistic_sharpe_ratio((mean - cash) / std, 0.0, n, skew, kurt),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert m["max_drawdown_duration_bars"] == longest
    assert m["trades"] == 5 and m["n_bars"] == 1000
    assert m["max_drawdown"] < 0 and longest > 10 and abs(skew) > 0.01 and kurt > 3.5


def test_metrics_are_json_ready_plain_types():
    m = compute_metrics(simulation(seeded_returns(), trade_pnl=[0.1, -0.05], benchmark=seeded_returns(seed=2)))

    json.dumps(m, allow_nan=False)
    assert all(type(v) in (float, int) for k, v in m.items() if k != "benchmark")
    assert all(type(v) is float for v in m["benchmark"].values())
    assert type(m["trades"]) is int and type(m["n_bars"]) is int and type(m["max_drawdown_duration_bars"]) is int


def test_undefined_metrics_are_none_not_nan():
    flat = compute_metrics(simulation(np.zeros(50), weights=np.zeros((50, 1))))

    json.dumps(flat, allow_nan=False)
    for key in ("sharpe", "sortino", "calmar", "skew", "kurtosis", "psr", "t_stat", "win_rate", "profit_factor"):
        assert flat[key] is None, key
    assert flat["total_return"] == 0.0 and flat["max_drawdown"] == 0.0 and flat["gross_exposure"] == 0.0
    assert flat["time_in_market"] == 0.0
    assert flat["trades"] == 0

    only_wins = compute_metrics(simulation(seeded_returns(n=30), trade_pnl=[0.1, 0.2]))
    assert only_wins["profit_factor"] is None and only_wins["win_rate"] == 1.0

    one_bar = compute_metrics(simulation([0.01]))
    json.dumps(one_bar, allow_nan=False)
    assert one_bar["sharpe"] is None and one_bar["total_return"] == pytest.approx(0.01)


def test_drawdown_duration_counts_bars_below_the_peak():
    # up, down 3 bars, recover above the peak, down 1 bar: longest stretch underwater is 4 bars
    # (3 down bars + 1 bar still below the old peak).
    sim = simulation([0.10, -0.05, -0.05, -0.01, 0.05, 0.10, -0.02])
    m = compute_metrics(sim)
    assert m["max_drawdown_duration_bars"] == 4
    assert m["max_drawdown"] == pytest.approx(0.95 * 0.95 * 0.99 - 1)


def test_drawdown_is_measured_from_the_starting_capital():
    # Losing from the first bar is a drawdown even though no later peak exists.
    m = compute_metrics(simulation([-0.10, 0.05, -0.02]))
    assert m["max_drawdown"] == pytest.approx(-0.10)
    assert m["max_drawdown_duration_bars"] == 3


def test_figures_against_the_benchmark_follow_their_definitions():
    rng = np.random.default_rng(4)
    bench = rng.normal(0.0004, 0.01, 500)
    net = 0.0002 + 1.3 * bench + rng.normal(0, 0.004, 500)

    m = compute_metrics(simulation(net, benchmark=bench), cash_rate=0.02)

    cash = 0.02 / 252
    beta = float(np.cov(net, bench, ddof=1)[0, 1] / np.var(bench, ddof=1))
    active = net - bench
    assert m["beta"] == pytest.approx(beta, rel=1e-12) and 1.2 < beta < 1.4
    assert m["alpha"] == pytest.approx(((net.mean() - cash) - beta * (bench.mean() - cash)) * 252, rel=1e-10)
    assert m["tracking_error"] == pytest.approx(active.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert m["information_ratio"] == pytest.approx(active.mean() / active.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert m["excess_return"] == pytest.approx(np.prod(1 + net) - np.prod(1 + bench), rel=1e-12)
    assert m["benchmark"]["total_return"] == pytest.approx(np.prod(1 + bench) - 1, rel=1e-12)


def test_win_rate_and_profit_factor_count_net_trade_pnl():
    m = compute_metrics(simulation(seeded_returns(n=30), trade_pnl=[0.004, -0.001, -0.002, 0.0005]))
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(0.0045 / 0.003)
