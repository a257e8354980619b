"""Tests for ci_ml.evaluation.streaming: the streamed comparison equals the in-memory one
(ci_ml.evaluation.stats.compare) on 1M rows — counts and bootstrap intervals exactly, the paired t
to 1e-9, DeLong to 1e-9 when no score bin is mixed and within the stated bound otherwise; and
regression's delta-method and paired t intervals to 1e-9."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import labels
from ci_ml.evaluation.regression import DELTA_METHOD
from ci_ml.evaluation.stats import PAIRED_T, Comparison, compare, delong_ci, joint_cells
from ci_ml.evaluation.streaming import Batches, BinaryStream, RegressionStream, compare_stream

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
NAMES = [
    "roc_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "balanced_accuracy",
    "log_loss",
    "brier",
]
LABEL_METRICS = ["accuracy", "precision", "recall", "f1", "balanced_accuracy"]
FIELDS = ("candidate", "production", "delta", "ci_low", "ci_high")


def realistic(n: int, seed: int) -> Arrays:
    """~20% positives; two correlated models (shared noise), continuous scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float64)
    shared = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(1.3 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    return y, a, b


def adversarial(n: int, seed: int) -> Arrays:
    """Scores of few distinct values: exactly 0, 1, the threshold 0.5, and multiples of 1/8."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float64)
    grid = np.array([0.0, 0.125, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0])
    a = np.clip(grid[rng.integers(0, 8, size=n)] + 0.25 * y * (rng.random(n) < 0.5), 0, 1)
    b = np.where(rng.random(n) < 0.3, a, grid[rng.integers(0, 8, size=n)])
    return y, a, b


def in_batches(arrays: Arrays, size: int) -> Batches:
    def batches() -> Iterator[Arrays]:
        for start in range(0, arrays[0].size, size):
            yield (
                arrays[0][start : start + size],
                arrays[1][start : start + size],
                arrays[2][start : start + size],
            )

    return batches


def assert_close(found: Comparison, expected: Comparison, tol: float) -> None:
    assert (found.metric, found.n, found.confidence) == (
        expected.metric,
        expected.n,
        expected.confidence,
    )
    for field in FIELDS:
        assert abs(getattr(found, field) - getattr(expected, field)) <= tol, field


@pytest.fixture(scope="module")
def million() -> Arrays:
    return realistic(1_000_000, 0)


def test_one_million_rows_equal_the_in_memory_comparison(million: Arrays) -> None:
    memory = compare("classification", NAMES, *million, seed=7)
    streamed = compare_stream(NAMES, in_batches(million, 65_536), seed=7)
    assert list(streamed) == NAMES
    for name in LABEL_METRICS:  # same cells, same seed: the same draws, bit for bit
        assert streamed[name] == memory[name]
    for name in ("log_loss", "brier"):
        assert_close(streamed[name], memory[name], 1e-9)
        assert streamed[name].method == memory[name].method
    # continuous scores share bins: within the stated bound, the interval widened to hold it
    auc, exact = streamed["roc_auc"], memory["roc_auc"]
    assert abs(auc.candidate - exact.candidate) <= 1e-9
    assert auc.ci_low <= exact.ci_low and exact.ci_high <= auc.ci_high
    assert exact.ci_low - auc.ci_low < 1e-6  # the widening is tiny next to the interval
    assert "2^20 bins" in auc.method and "AUC within" in auc.method


def test_joint_counts_are_exact(million: Arrays) -> None:
    y, a, b = million
    stream = BinaryStream(["accuracy"], threshold=0.3)
    for batch in in_batches(million, 100_003)():
        stream.add(*batch)
    expected = joint_cells(y, labels(a, 0.3), labels(b, 0.3))
    assert stream.cells.dtype == np.int64
    np.testing.assert_array_equal(stream.cells, expected)


def test_scores_on_a_grid_of_the_bins_give_exact_delong(million: Arrays) -> None:
    y, a, b = million
    quantised = (y, np.round(a * 1024) / 1024, np.round(b * 1024) / 1024)
    memory = compare("classification", NAMES, *quantised)
    streamed = compare_stream(NAMES, in_batches(quantised, 250_000))
    for name in NAMES:
        assert_close(streamed[name], memory[name], 1e-9)
    assert "exact: one score per bin" in streamed["roc_auc"].method


@pytest.mark.parametrize("bins", [1 << 20, 8])
def test_ties_zero_one_and_threshold_scores_are_exact(bins: int) -> None:
    data = adversarial(1_000_000, 3)
    memory = compare("classification", NAMES, *data, seed=1)
    streamed = compare_stream(NAMES, in_batches(data, 131_072), seed=1, bins=bins)
    for name in LABEL_METRICS:
        assert streamed[name] == memory[name]
    for name in NAMES:
        assert_close(streamed[name], memory[name], 1e-9)
    exact = delong_ci(*data)
    assert streamed["roc_auc"].ci_high - streamed["roc_auc"].ci_low == pytest.approx(
        exact.ci_high - exact.ci_low, abs=1e-9
    )


def test_batch_sizes_do_not_change_the_result() -> None:
    data = realistic(50_000, 1)
    whole = compare_stream(NAMES, in_batches(data, 50_000))
    uneven = compare_stream(NAMES, in_batches(data, 977))
    for name in NAMES:
        assert_close(uneven[name], whole[name], 1e-12)


def test_batches_may_hold_one_class_or_no_row() -> None:
    y, a, b = realistic(4_000, 2)
    order = np.argsort(y, kind="stable")  # all negatives first: single-class batches
    data = (y[order], np.round(a[order], 3), np.round(b[order], 3))  # no mixed bin: exact
    empty = (np.empty(0), np.empty(0), np.empty(0))

    def batches() -> Iterator[Arrays]:
        yield empty
        yield from in_batches(data, 500)()

    memory = compare("classification", NAMES, *data)
    for name, found in compare_stream(NAMES, batches).items():
        assert_close(found, memory[name], 1e-9)


def test_a_second_pass_over_other_rows_is_refused() -> None:
    data = realistic(2_000, 4)
    calls = iter([in_batches(data, 300)(), in_batches(realistic(2_000, 5), 300)()])
    with pytest.raises(ValueError, match="second pass"):
        compare_stream(["roc_auc"], lambda: next(calls))


def test_no_second_pass_without_roc_auc() -> None:
    data = realistic(2_000, 4)
    calls: list[int] = []

    def batches() -> Iterator[Arrays]:
        calls.append(1)
        return iter(in_batches(data, 300)())

    compare_stream(["f1", "log_loss"], batches)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("y", "a", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1, 1], [0.1, 1.2, 0.3], "within \\[0, 1\\]"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1], [0.1, 0.2, 0.3], "same length"),
    ],
)
def test_bad_batches_are_value_errors(y: list[float], a: list[float], match: str) -> None:
    stream = BinaryStream(["accuracy"])
    with pytest.raises(ValueError, match=match):
        stream.add(y, a, [0.5] * len(a))


def test_one_class_overall_and_bad_settings_are_value_errors() -> None:
    stream = BinaryStream(["accuracy", "log_loss"])
    stream.add([1, 1, 1], [0.2, 0.4, 0.9], [0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="only one class"):
        stream.comparisons()
    stream.add([0, 0], [0.2, 0.4], [0.3, 0.3])
    with pytest.raises(ValueError, match="confidence"):
        stream.comparisons(confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        stream.comparisons(n_resamples=0)


def test_regression_metrics_are_not_streamed() -> None:
    with pytest.raises(ConfigError, match="rmse"):
        BinaryStream(["rmse"])


# ------------------------------------------------------------------ regression

REGRESSION = ["rmse", "mae", "r2"]


def regression_rows(n: int, offset: float, spread: float) -> Arrays:
    """y around ``offset``; production is the candidate plus noise of scale ``spread``."""
    rng = np.random.default_rng(5)
    y = offset + 3 * rng.normal(size=n)
    cand = y + rng.normal(size=n)
    return y, cand, cand + spread * rng.normal(size=n)


@pytest.mark.parametrize(
    ("offset", "spread"), [(0.0, 0.5), (1e4, 0.5), (50.0, 1e-3)], ids=["plain", "far", "close"]
)
def test_regression_stream_equals_the_in_memory_delta_method(offset: float, spread: float) -> None:
    arrays = regression_rows(30_000, offset, spread)  # > 20,000 rows: memory's delta method
    expected = compare("regression", REGRESSION, *arrays)
    stream = RegressionStream(REGRESSION)
    for y, a, b in in_batches(arrays, 7_777)():
        stream.add(y, a, b)
    found = stream.comparisons()
    for name in REGRESSION:
        assert found[name].method == expected[name].method
        assert found[name].n == expected[name].n
        for field in FIELDS:
            assert getattr(found[name], field) == pytest.approx(
                getattr(expected[name], field), abs=1e-9, rel=0
            ), (name, field)


def test_regression_stream_says_delta_method_where_memory_bootstraps() -> None:
    arrays = regression_rows(5_000, 0.0, 0.5)
    expected = compare("regression", REGRESSION, *arrays)
    stream = RegressionStream(REGRESSION)
    stream.add(*arrays)
    found = stream.comparisons()
    assert expected["rmse"].method.startswith("paired row bootstrap")
    assert found["rmse"].method == found["r2"].method == DELTA_METHOD
    assert found["mae"].method == expected["mae"].method == PAIRED_T
    for name in REGRESSION:  # the values are the same; only the interval's method differs
        assert found[name].candidate == pytest.approx(expected[name].candidate, abs=1e-12)


def test_a_perfect_regressor_streams_a_zero_slope() -> None:
    y, _, b = regression_rows(1_000, 0.0, 0.5)
    stream = RegressionStream(["rmse"])
    stream.add(y, y, b)
    expected = compare("regression", ["rmse"], y, y, b, seed=0)
    assert stream.comparisons()["rmse"].candidate == expected["rmse"].candidate == 0.0


def test_regression_stream_refusals_are_value_errors() -> None:
    stream = RegressionStream(["r2"])
    stream.add([1.0, 1.0, 1.0], [1.0, 2.0, 0.5], [1.0, 1.5, 0.0])
    with pytest.raises(ValueError, match="r2 is undefined"):
        stream.comparisons()
    with pytest.raises(ValueError, match="same length"):
        stream.add([1.0, 2.0], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        stream.add([1.0, np.nan], [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2 rows"):
        RegressionStream(["rmse"]).comparisons()
    with pytest.raises(ConfigError, match="roc_auc"):
        RegressionStream(["roc_auc"])
