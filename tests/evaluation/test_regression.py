"""Tests for ci_ml.evaluation.regression: the rmse and r2 intervals, exact row bootstrap on small
holdouts and delta method on large ones — the choice by size, the point values, agreement with the
exact bootstrap, and the delta method's coverage by simulation where it is used."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ci_ml.evaluation import regression
from ci_ml.evaluation.regression import EXACT_BOOTSTRAP_MAX_ROWS, paired_intervals
from ci_ml.evaluation.stats import compare, evaluate_metrics

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
SUMS = ["rmse", "r2"]
SD_A, SD_B = 0.5, 0.6
# Both populations have Var(y) = 1 and E[error²] = sd², so population rmse = sd and r2 = 1 - sd².
TRUTH = {"rmse": SD_A - SD_B, "r2": SD_B**2 - SD_A**2}
COVERAGE_DATA_SETS = 500


def gaussian(n: int, rng: np.random.Generator) -> Arrays:
    """Truth N(0, 1); errors sd_a, sd_b, correlated through a shared part (ρ = 0.36)."""
    y = rng.normal(size=n)
    shared, own_a, own_b = rng.normal(size=(3, n))
    return y, y + SD_A * (0.6 * shared + 0.8 * own_a), y + SD_B * (0.6 * shared + 0.8 * own_b)


def skewed(n: int, rng: np.random.Generator, df: int = 6) -> Arrays:
    """Truth Exp(1) - 1 (skewed); errors Student t(6) (heavy tails) scaled by √(y + 1), so they
    grow with the truth and SSE covaries with SST; E[(y + 1)] = 1 keeps E[error²] = sd²."""
    y = rng.exponential(size=n) - 1
    shared, own_a, own_b = rng.standard_t(df, size=(3, n)) / np.sqrt(df / (df - 2))
    scale = np.sqrt(y + 1)
    err_a = SD_A * scale * (0.6 * shared + 0.8 * own_a)
    err_b = SD_B * scale * (0.6 * shared + 0.8 * own_b)
    return y, y + err_a, y + err_b


POPULATIONS: dict[str, Callable[[int, np.random.Generator], Arrays]] = {
    "gaussian": gaussian,
    "skewed": skewed,
}


def test_method_is_chosen_by_size_and_named() -> None:
    rng = np.random.default_rng(0)
    small = compare("regression", SUMS, *gaussian(EXACT_BOOTSTRAP_MAX_ROWS, rng), n_resamples=5)
    large = compare("regression", SUMS, *gaussian(EXACT_BOOTSTRAP_MAX_ROWS + 1, rng))
    for name in SUMS:
        assert small[name].method == "paired row bootstrap (multinomial weights), percentile, B=5"
        assert large[name].method == "delta method on per-row squared errors, normal interval"


@pytest.mark.parametrize("population", list(POPULATIONS))
def test_delta_is_the_metric_difference_itself(population: str) -> None:
    y, a, b = POPULATIONS[population](EXACT_BOOTSTRAP_MAX_ROWS + 5000, np.random.default_rng(1))
    found = compare("regression", [*SUMS, "mae"], y, a, b)
    cand, prod = (evaluate_metrics("regression", [*SUMS, "mae"], y, p) for p in (a, b))
    for name, c in found.items():
        assert (c.candidate, c.production) == (cand[name], prod[name])
        assert c.delta == cand[name] - prod[name]
        assert c.ci_low < c.delta < c.ci_high
    assert found["mae"].method == "paired t interval on per-row differences"


@pytest.mark.parametrize("population", list(POPULATIONS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_method_agrees_with_exact_bootstrap_on_small_n(population: str, seed: int) -> None:
    """2,000 rows, B = 2000: se within 5% of the bootstrap deltas' sd (its Monte Carlo error is
    about 1.6%; measured at most 2.9%), each bound within 10% of the exact interval's width
    (measured at most 5.3%), and the same values and delta."""
    y, a, b = POPULATIONS[population](2000, np.random.default_rng(seed))
    exact, _ = paired_intervals(
        SUMS, y, a, b, confidence=0.95, n_resamples=2000, seed=seed, method="bootstrap"
    )
    fast, _ = paired_intervals(
        SUMS, y, a, b, confidence=0.95, n_resamples=2000, seed=seed, method="delta"
    )
    columns = regression.sum_columns(y, a, b)
    boot = regression.bootstrap_deltas(SUMS, columns, 2000, seed)
    se = regression.delta_method_se(SUMS, columns)
    for name in SUMS:
        e, f = exact[name], fast[name]
        assert (f.candidate, f.production) == (e.candidate, e.production)
        assert se[name] == pytest.approx(np.std(boot[name], ddof=1), rel=0.05)
        width = e.ci_high - e.ci_low
        assert abs(f.ci_low - e.ci_low) <= 0.1 * width
        assert abs(f.ci_high - e.ci_high) <= 0.1 * width


@pytest.mark.parametrize("population", list(POPULATIONS))
def test_delta_method_covers_true_rmse_and_r2_differences(population: str) -> None:
    """500 data sets of 25,000 rows (above the threshold, so compare() takes the delta method):
    the share of 95% intervals holding the true difference is 95% ± 4 points. 500 rather than
    200 because it is cheap (about a second) and the skewed, heavy-tailed population's coverage
    estimate has a Monte Carlo sd of 1.5 points at 200 (1 point at 500)."""
    rng = np.random.default_rng(100 + len(population))
    hits = {name: 0 for name in SUMS}
    for _ in range(COVERAGE_DATA_SETS):
        found = compare("regression", SUMS, *POPULATIONS[population](25_000, rng))
        for name, c in found.items():
            assert c.method == regression.DELTA_METHOD
            hits[name] += c.ci_low <= TRUTH[name] <= c.ci_high
    coverage = {name: count / COVERAGE_DATA_SETS for name, count in hits.items()}
    assert all(abs(share - 0.95) <= 0.04 for share in coverage.values()), coverage


def test_a_perfect_model_has_a_finite_interval() -> None:
    y, _, b = gaussian(EXACT_BOOTSTRAP_MAX_ROWS + 1, np.random.default_rng(3))
    found = compare("regression", SUMS, y, y, b)
    for c in found.values():
        assert np.isfinite([c.ci_low, c.ci_high]).all() and c.ci_low < c.delta < c.ci_high
    assert found["rmse"].candidate == 0.0


def test_row_bootstrap_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = np.random.default_rng(17).normal(size=(300, 3))
    whole = regression.resampled_sums(columns, 50, seed=1)
    monkeypatch.setattr(regression, "MAX_WEIGHTS_PER_CHUNK", 7 * 300)
    np.testing.assert_allclose(regression.resampled_sums(columns, 50, seed=1), whole, rtol=1e-12)
    np.testing.assert_array_equal(regression.resampled_sums(columns[:5], 1, seed=1).shape, (1, 3))
