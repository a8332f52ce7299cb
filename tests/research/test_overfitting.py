"""CSCV/PBO, the minimum track record length and the bootstrap interval, on synthetic returns with known answers.
The CSCV reference below is written with plain loops from the paper's steps, apart from the module."""
import itertools
import math
import statistics

import numpy as np
import pytest

from research.metrics import probabilistic_sharpe_ratio
from research.overfitting import (
    bootstrap_sharpe_interval, min_track_record_length, probability_of_backtest_overfitting,
)


def reference_pbo(matrix, partitions):
    """Bailey et al. (2017) §2, step by step: blocks, every S/2 combination, IS argmax, OOS average rank."""
    rows = [list(map(float, row)) for row in matrix]
    size = len(rows) // partitions
    rows = rows[len(rows) - size * partitions:]
    blocks = [rows[i * size:(i + 1) * size] for i in range(partitions)]
    n = len(rows[0])

    def sharpe(selected, column):
        values = [row[column] for s in selected for row in blocks[s]]
        if statistics.stdev(values) == 0 and statistics.mean(values) == 0:
            return 0.0  # a trial that never trades
        return statistics.mean(values) / statistics.stdev(values)

    logits = []
    for train in itertools.combinations(range(partitions), partitions // 2):
        test = [s for s in range(partitions) if s not in train]
        in_sample = [sharpe(train, j) for j in range(n)]
        out_sample = [sharpe(test, j) for j in range(n)]
        best = in_sample.index(max(in_sample))
        value = out_sample[best]
        rank = sum(1 for x in out_sample if x < value) + (sum(1 for x in out_sample if x == value) + 1) / 2
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    return sum(1 for x in logits if x <= 0) / len(logits), logits


def noise(seed, bars, trials, scale=0.01):
    return np.random.default_rng(seed).normal(0.0, scale, size=(bars, trials))


@pytest.mark.parametrize("partitions", [4, 6])
def test_pbo_agrees_with_a_plain_loop_reference(partitions):
    matrix = noise(7, 61, 5) + np.linspace(-0.002, 0.002, 5)  # 61 bars: the oldest T mod S are dropped

    result = probability_of_backtest_overfitting(matrix, partitions)

    expected_pbo, expected_logits = reference_pbo(matrix, partitions)
    assert result.pbo == expected_pbo
    assert result.logits == pytest.approx(expected_logits, rel=1e-9, abs=1e-12)
    assert result.combinations == math.comb(partitions, partitions // 2)
    assert (result.bars, result.trials, result.partitions) == (61 // partitions * partitions, 5, partitions)


def test_identical_trials_never_beat_the_median_so_pbo_is_one():
    column = noise(1, 160, 1)

    result = probability_of_backtest_overfitting(np.repeat(column, 6, axis=1), 8)

    assert result.pbo == 1.0
    assert set(result.logits) == {0.0}  # the selected trial shares the median rank (N + 1) / 2 in every split


def test_a_trial_that_dominates_every_split_gives_pbo_zero():
    matrix = noise(2, 320, 8)
    matrix[:, 3] = 0.004 + noise(3, 320, 1, scale=0.001)[:, 0]  # Sharpe about 4 per bar against about 0

    result = probability_of_backtest_overfitting(matrix, 16)

    assert result.pbo == 0.0
    assert result.logits == pytest.approx([math.log(8)] * math.comb(16, 8))  # rank N of N: omega = N / (N + 1)


def test_a_best_in_sample_that_is_worst_out_of_sample_gives_pbo_one():
    # Two blocks, two trials: A is good in the first half and bad in the second, B the reverse.
    up, down = [0.01, 0.02, 0.03, 0.02], [-0.01, -0.02, -0.03, -0.02]
    matrix = np.array([up + down, down + up]).T

    result = probability_of_backtest_overfitting(matrix, 2)

    assert result.pbo == 1.0
    assert result.logits == pytest.approx([math.log(0.5), math.log(0.5)])  # rank 1 of 2: omega = 1/3


def test_pure_noise_overfits_about_half_the_time():
    values = [probability_of_backtest_overfitting(noise(seed, 400, 20), 8).pbo for seed in range(40)]

    assert all(0.0 <= v <= 1.0 for v in values)
    assert statistics.mean(values) == pytest.approx(0.5, abs=0.1)
    assert min(values) < 0.5 < max(values)


def test_a_flat_trial_has_sharpe_zero_and_is_ranked_like_any_other():
    matrix = noise(4, 64, 3)
    matrix[:, 1] = 0.0  # never trades

    result = probability_of_backtest_overfitting(matrix, 4)

    expected_pbo, expected_logits = reference_pbo(matrix, 4)
    assert result.pbo == expected_pbo
    assert result.logits == pytest.approx(expected_logits, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("matrix, partitions, message", [
    (np.zeros((64, 3)), 3, "even integer"),
    (np.zeros((64, 3)), 0, "even integer"),
    (np.zeros((64, 1)), 4, "at least two trials"),
    (np.zeros((7, 3)), 4, "needs at least 8 bars"),
    (np.zeros(64), 4, "matrix"),
    (np.full((64, 3), np.nan), 4, "finite"),
])
def test_pbo_refuses_what_cscv_cannot_split(matrix, partitions, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(matrix, partitions)


def test_min_track_record_length_is_where_the_psr_reaches_the_confidence():
    sr, skew, kurtosis = 0.08, -0.4, 5.0

    bars = min_track_record_length(sr, 0.0, skew, kurtosis, 0.95)

    assert probabilistic_sharpe_ratio(sr, 0.0, bars, skew, kurtosis) == pytest.approx(0.95, abs=1e-12)
    normal = min_track_record_length(0.1, 0.0, 0.0, 3.0, 0.95)
    assert normal == pytest.approx(1 + (1 + 0.5 * 0.01) * (1.6448536269514722 / 0.1) ** 2, rel=1e-12)
    assert min_track_record_length(0.1, 0.0, 0.0, 3.0, 0.99) > normal  # more confidence, longer record
    assert bars > normal  # negative skew and fat tails ask for a longer record


@pytest.mark.parametrize("sr, benchmark, confidence, message", [
    (0.0, 0.0, 0.95, "not above the benchmark"),
    (0.05, 0.1, 0.95, "not above the benchmark"),
    (0.1, 0.0, 1.0, "confidence"),
    (3.0, 0.0, 0.95, "non-positive"),  # skew 2: 1 - 2*3 + 0.5*9 < 0
])
def test_min_track_record_length_is_undefined_without_an_edge(sr, benchmark, confidence, message):
    with pytest.raises(ValueError, match=message):
        min_track_record_length(sr, benchmark, 2.0, 3.0, confidence)


def interval(returns, **overrides):
    options = {"samples": 1000, "confidence": 0.9, "seed": 11, "block_bars": 5, "periods_per_year": 252}
    return bootstrap_sharpe_interval(returns, **{**options, **overrides})


def test_the_bootstrap_interval_is_a_pure_function_of_its_seed():
    returns = noise(5, 500, 1)[:, 0] + 0.001

    first, again, other = interval(returns), interval(returns), interval(returns, seed=12)

    assert first == again
    assert (other.lower, other.upper) != (first.lower, first.upper)
    assert first.lower < first.sharpe < first.upper
    assert first.samples == 1000 and first.block_bars == 5


def test_the_bootstrap_interval_has_the_width_the_sharpe_estimator_has():
    returns = noise(6, 2000, 1)[:, 0] + 0.0005  # i.i.d. normal: se(SR per bar) = sqrt((1 + SR^2 / 2) / T)

    result = interval(returns, block_bars=1, samples=4000, confidence=0.95)

    sr = returns.mean() / returns.std(ddof=1)
    expected = 2 * 1.959964 * math.sqrt((1 + sr * sr / 2) / 2000) * math.sqrt(252)
    assert result.upper - result.lower == pytest.approx(expected, rel=0.1)


def test_blocks_as_long_as_the_series_only_rotate_it_so_the_interval_is_a_point():
    returns = noise(8, 250, 1)[:, 0]

    result = interval(returns, block_bars=250)

    assert result.lower == pytest.approx(result.sharpe, rel=1e-9)
    assert result.upper == pytest.approx(result.sharpe, rel=1e-9)


@pytest.mark.parametrize("returns, message", [
    (np.zeros(2), "at least three"),
    (np.array([0.01, np.inf, 0.0, 0.01]), "finite"),
    (np.full(50, 0.001), "zero variance"),
])
def test_the_bootstrap_refuses_what_it_cannot_resample(returns, message):
    with pytest.raises(ValueError, match=message):
        interval(returns)
