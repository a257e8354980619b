"""Tests for ci_ml.evaluation.binned_auc: DeLong from score histograms is exact when no bin is
mixed, within its stated bounds (AUC and se) when bins round scores, and its running moments are
those of the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from ci_ml.evaluation.binned_auc import BinnedDeLong, Moments, PairedBins, ScoreBins
from ci_ml.evaluation.stats import delong_ci

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def scores(n: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float64)
    shared = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(1.3 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    return y, a, b


def binned(data: Arrays, bins: int, batch: int = 7_919) -> BinnedDeLong:
    y, a, b = data
    paired = PairedBins(bins)
    for add in (paired.add, paired.add_second):
        for start in range(0, y.size, batch):
            rows = slice(start, start + batch)
            add(y[rows] == 1, a[rows], b[rows])
    return paired.result(0.95)


@pytest.mark.parametrize("bins", [16, 256, 4096, 1 << 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rounding_stays_within_the_stated_bounds(bins: int, seed: int) -> None:
    data = scores(60_000, seed)
    found, exact = binned(data, bins), delong_ci(*data)
    assert abs(found.auc_a - exact.auc_a) <= found.auc_error_a
    assert abs(found.auc_b - exact.auc_b) <= found.auc_error_b
    assert abs(found.se - exact.se) <= found.se_error
    assert found.ci_low <= exact.ci_low and exact.ci_high <= found.ci_high
    assert found.auc_error_a > 0 and "widened" in found.method


def test_bounds_shrink_with_finer_bins() -> None:
    data = scores(60_000, 3)
    coarse, fine = binned(data, 64), binned(data, 1 << 16)
    assert fine.auc_error_a < coarse.auc_error_a / 100
    assert fine.se_error < coarse.se_error / 100
    assert fine.auc_error_a < 1e-4  # 2^16 bins: already far below DeLong's se (~2e-3 here)


def test_binned_equals_delong_on_the_scores_rounded_to_their_bins() -> None:
    y, a, b = scores(30_000, 4)
    bins = 128
    found = binned((y, a, b), bins)
    lower = (y, np.floor(a * bins) / bins, np.floor(b * bins) / bins)
    exact = delong_ci(*lower)
    assert found.auc_a == pytest.approx(exact.auc_a, abs=1e-12)
    assert found.se == pytest.approx(exact.se, abs=1e-12)


def test_one_score_per_bin_is_exact_and_said_so() -> None:
    y, a, b = scores(30_000, 5)
    grid = (y, np.round(a * 64) / 64, np.round(b * 64) / 64)
    found, exact = binned(grid, 1024), delong_ci(*grid)
    assert (found.auc_error_a, found.auc_error_b, found.se_error) == (0, 0, 0)
    assert (found.ci_low, found.ci_high) == pytest.approx((exact.ci_low, exact.ci_high), abs=1e-12)
    assert found.method == (
        "DeLong 1988 on scores in 2^10 bins of [0 1] (exact: one score per bin), normal interval"
    )


def test_codes_put_one_in_the_last_bin_and_keep_order() -> None:
    bins = ScoreBins(8)
    codes = bins.codes(np.array([0.0, 0.124, 0.125, 0.999, 1.0]))
    assert codes.tolist() == [0, 0, 1, 7, 7]


def test_mixed_bins_are_those_with_two_distinct_scores() -> None:
    bins = ScoreBins(4)
    bins.add(np.array([True, False]), np.array([0.1, 0.1]))
    bins.add(np.array([False, True, False]), np.array([0.1, 0.6, 0.7]))
    assert bins.mixed.tolist() == [False, False, True, False]
    assert bins.counts.tolist() == [[2, 0, 1, 0], [1, 0, 1, 0]]


def test_moments_merge_equals_numpy_even_far_from_zero() -> None:
    rng = np.random.default_rng(6)
    values = 1e9 + rng.normal(size=100_000)  # Σx² − (Σx)²/n would lose every digit here
    moments = Moments()
    for chunk in np.array_split(values, 37):
        moments.add(chunk)
    moments.add(np.empty(0))
    assert moments.n == values.size
    assert moments.mean == pytest.approx(values.mean(), rel=1e-15)
    assert moments.variance() == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_too_few_rows_of_a_class() -> None:
    paired = PairedBins(16)
    y, a = np.array([True, False, False]), np.array([0.9, 0.2, 0.1])
    paired.add(y, a, a)
    paired.add_second(y, a, a)
    with pytest.raises(ValueError, match="2 positive and 2 negative"):
        paired.result(0.95)
