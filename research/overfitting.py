"""Tests of backtest overfitting over a set of trials: the probability of backtest overfitting (PBO) by
combinatorially symmetric cross-validation (CSCV), the minimum track record length, and a seeded bootstrap
confidence interval of the Sharpe ratio. Pure numpy over arrays: reading the trials' evidence is the gates' job.

References, whose notation the docstrings keep:
- Bailey, Borwein, López de Prado & Zhu (2017), "The Probability of Backtest Overfitting", Journal of
  Computational Finance 20(4) — CSCV and PBO.
- Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2) — MinTRL.
- Politis & Romano (1992), "A circular block-resampling procedure for stationary data" — the bootstrap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class PboResult:
    pbo: float                 # the share of splits whose logit is <= 0, in [0, 1]
    logits: tuple              # lambda_c of every split, in the order of `itertools.combinations`
    partitions: int            # S
    combinations: int          # |C_S| = binom(S, S/2)
    bars: int                  # rows of M used: T minus the T mod S oldest rows
    trials: int                # N, the columns of M


def probability_of_backtest_overfitting(returns, partitions: int = 16) -> PboResult:
    """PBO of selecting the best in-sample trial among the columns of `returns` (Bailey et al. 2017, §2).

    M = `returns`, a (T, N) matrix: T bars (the same dates for every trial), N trials, net per-bar returns.
    1. M is split by rows into S = `partitions` disjoint blocks M_s of T // S rows each, in time order; the
       T mod S oldest rows are dropped so that every block has the same size.
    2. For every combination c of S/2 blocks (C_S, |C_S| = binom(S, S/2)), the training set J is the
       concatenation of the blocks in c and the testing set J̄ its complement (time order kept).
    3. R and R̄ are the Sharpe ratios (per bar: mean / standard deviation, ddof 1) of each trial on J and J̄;
       a trial with zero variance has Sharpe 0 if its mean is 0, else ±inf.
    4. n* = argmax R, the trial selected in sample (the first of equal ones). Its relative rank out of
       sample is ω̄_c = rank(R̄_{n*}) / (N + 1), ranks 1..N ascending, equal values sharing their average rank.
    5. λ_c = ln(ω̄_c / (1 − ω̄_c)); PBO = #{c : λ_c ≤ 0} / |C_S|, the estimate of ∫_{−∞}^{0} f(λ) dλ: how often
       the in-sample best is no better than the out-of-sample median. Identical trials give λ_c = 0 in every
       split, hence PBO = 1: choosing among them adds nothing out of sample.
    """
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError("returns must be a (bars, trials) matrix")
    if not isinstance(partitions, int) or partitions < 2 or partitions % 2:
        raise ValueError("partitions (S) must be an even integer >= 2")
    t, n = m.shape
    if n < 2:
        raise ValueError("CSCV needs at least two trials")
    rows = t // partitions
    if rows < 2:
        raise ValueError(f"CSCV with S={partitions} needs at least {2 * partitions} bars, got {t}")
    if not np.all(np.isfinite(m)):
        raise ValueError("returns must be finite")
    m = m[t - rows * partitions:]
    # Sums per block of the returns centred on each trial's mean: the Sharpe ratio of any union of blocks
    # then comes from S small sums, without cancellation between a large mean and a small variance.
    centre = m.mean(axis=0)
    blocks = (m - centre).reshape(partitions, rows, n)
    sum1, sum2 = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
    chosen = np.array(list(combinations(range(partitions), partitions // 2)), dtype=np.intp)
    size = rows * (partitions // 2)
    # Summed by numpy, not as a 0/1 mask times the sums: a matrix product's BLAS kernel (and so its last bits)
    # depends on the CPU.
    train1, train2 = sum1[chosen].sum(axis=1), sum2[chosen].sum(axis=1)
    # J̄ is the complement of J: its sums are the totals less J's.
    r_train = _sharpe_of_unions(train1, train2, centre, size)
    r_test = _sharpe_of_unions(sum1.sum(axis=0) - train1, sum2.sum(axis=0) - train2, centre, size)
    selected = np.argmax(r_train, axis=1)
    value = r_test[np.arange(r_test.shape[0]), selected][:, None]
    rank = np.sum(r_test < value, axis=1) + (np.sum(r_test == value, axis=1) + 1) / 2.0
    omega = rank / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    return PboResult(pbo=float(np.mean(logits <= 0.0)), logits=tuple(float(x) for x in logits),
                     partitions=partitions, combinations=int(chosen.shape[0]), bars=int(m.shape[0]), trials=n)


def _sharpe_of_unions(s1, s2, centre, size):
    """Per-bar Sharpe ratios from the sums s1, s2 of `size` centred returns (one row per union of blocks)."""
    mean = s1 / size + centre
    std = np.sqrt(np.maximum((s2 - s1 * s1 / size) / (size - 1), 0.0))
    flat = std <= 1e-12 * np.abs(mean)  # zero variance up to rounding
    if not flat.any():
        return mean / std
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(flat, np.sign(mean) * np.inf, mean / np.where(flat, 1.0, std))
    return np.where(flat & (mean == 0.0), 0.0, sharpe)


def min_track_record_length(sr: float, sr_benchmark: float, skew: float, kurtosis: float,
                            confidence: float) -> float:
    """MinTRL (Bailey & López de Prado 2012, eq. 11), in bars: the shortest track record for which the
    observed per-bar Sharpe ratio SR̂ exceeds SR* with probability `confidence`:

        MinTRL = 1 + [1 − γ̂3 SR̂ + (γ̂4 − 1)/4 SR̂²] (Z_α / (SR̂ − SR*))²,   Z_α = Φ⁻¹(confidence),

    γ̂3 the skewness and γ̂4 the non-excess kurtosis of the returns. It is where the PSR reaches `confidence`.
    Undefined (ValueError) unless SR̂ > SR*: no track record is long enough then.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    if not sr > sr_benchmark:
        raise ValueError("the Sharpe ratio is not above the benchmark: no track record is long enough")
    variance = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not variance > 0:
        raise ValueError("skew and kurtosis give a non-positive Sharpe-ratio variance")
    z = NormalDist().inv_cdf(confidence)
    return 1.0 + variance * (z / (sr - sr_benchmark)) ** 2


@dataclass(frozen=True)
class SharpeInterval:
    lower: float
    upper: float
    sharpe: float       # the annualised Sharpe ratio of the series itself
    samples: int
    block_bars: int


def bootstrap_sharpe_interval(returns, *, samples: int, confidence: float, seed: int, block_bars: int,
                              periods_per_year: int) -> SharpeInterval:
    """Percentile confidence interval of the annualised Sharpe ratio by a circular block bootstrap.

    Each of B = `samples` resamples of the T returns is made of ⌈T/b⌉ blocks of b = `block_bars` consecutive
    bars (wrapping round the end), cut to T bars; blocks keep the short-range dependence of daily returns
    (b = 1 is the i.i.d. bootstrap). Block starts are ⌊u T⌋ for uniforms u of numpy's PCG64 seeded with
    `seed`, drawn as one stream in resample order, so the interval is a pure function of its inputs. The
    bounds are the (1 − c)/2 and (1 + c)/2 quantiles (numpy's linear interpolation) of the B Sharpe ratios
    √P · mean/std (ddof 1); a resample with zero variance counts as Sharpe 0 if its mean is 0, else it is
    left out.
    """
    x = np.asarray(returns, dtype=np.float64)
    t = x.shape[0]
    if x.ndim != 1 or t < 3:
        raise ValueError("the bootstrap needs a series of at least three returns")
    if not np.all(np.isfinite(x)):
        raise ValueError("returns must be finite")
    if samples < 1 or block_bars < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("samples and block_bars must be >= 1 and confidence in (0, 1)")
    block = min(block_bars, t)
    blocks = -(-t // block)
    rng = np.random.Generator(np.random.PCG64(seed))
    offsets = np.arange(block)
    sharpes = []
    for start in range(0, samples, 256):  # bounded memory: 256 resamples at a time
        count = min(256, samples - start)
        starts = np.floor(rng.random((count, blocks)) * t).astype(np.intp)
        index = ((starts[:, :, None] + offsets) % t).reshape(count, blocks * block)[:, :t]
        sharpes.append(_annualised_sharpe(x[index], periods_per_year))
    values = np.concatenate(sharpes)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("every resample has zero variance")
    lower, upper = np.quantile(values, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    own = float(_annualised_sharpe(x[None, :], periods_per_year)[0])
    return SharpeInterval(lower=float(lower), upper=float(upper), sharpe=own, samples=int(values.size),
                          block_bars=block)


def _annualised_sharpe(rows: np.ndarray, periods_per_year: int) -> np.ndarray:
    mean = rows.mean(axis=1)
    std = rows.std(axis=1, ddof=1)
    flat = std <= 1e-12 * np.abs(mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(flat, np.nan, mean / np.where(flat, 1.0, std)) * math.sqrt(periods_per_year)
    return np.where(flat & (mean == 0.0), 0.0, sharpe)
