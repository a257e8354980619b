"""Multiclass metrics on one labelled sample (ci_ml/monitor/intervals.py, estimate_multiclass):
values as evaluate_multiclass, the noise of each family, and interval() / difference() on them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ci_ml.evaluation.metrics import METRICS
from ci_ml.evaluation.multiclass import (
    MULTICLASS_METRICS,
    check_multiclass,
    evaluate_multiclass,
    multiclass_spec,
)
from ci_ml.monitor.intervals import (
    OVR_ONE_SAMPLE,
    OVR_TWO_SAMPLE,
    difference,
    estimate,
    estimate_multiclass,
    interval,
)

CLASSES = ["ant", "bee", "cat", "dog"]
Z = 1.959963984540054


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and probabilities of one model on a sample of ``n`` rows."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    logits = 1.2 * np.eye(4)[y] + rng.normal(size=(n, 4))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return check_multiclass(y, proba, CLASSES)


NAMES = [*MULTICLASS_METRICS, "recall[cat]", "precision[dog]", "f1[ant]", "roc_auc[bee]"]


@pytest.mark.parametrize("name", NAMES)
def test_each_metric_gets_its_value_and_an_interval_around_it(name: str) -> None:
    y, proba = sample(600, seed=1)
    spec = multiclass_spec(name, CLASSES)
    found = estimate_multiclass(spec, y, proba, CLASSES, resamples=400, seed=0)
    assert found.value == pytest.approx(evaluate_multiclass([name], y, proba, CLASSES)[name])
    assert found.rows == 600
    ci = interval(spec, found, 0.95)
    assert ci.low <= ci.value <= ci.high
    assert 0 < ci.high - ci.low < 0.3


def test_label_metrics_bootstrap_the_confusion_counts() -> None:
    y, proba = sample(500, seed=2)
    spec = multiclass_spec("f1_macro", CLASSES)
    found = estimate_multiclass(spec, y, proba, CLASSES, resamples=300, seed=4)
    assert found.spread == "bootstrap" and found.draws is not None and found.draws.size == 300
    again = estimate_multiclass(spec, y, proba, CLASSES, resamples=300, seed=4)
    assert again.draws is not None
    np.testing.assert_array_equal(found.draws, again.draws)
    assert interval(spec, found, 0.9).method == "bootstrap on confusion counts, percentile, B=300"


def test_losses_use_the_variance_of_the_mean_loss() -> None:
    y, proba = sample(400, seed=3)
    spec = multiclass_spec("log_loss", CLASSES)
    found = estimate_multiclass(spec, y, proba, CLASSES, resamples=10, seed=0)
    rows = -np.log(proba[np.arange(400), y])
    assert found.spread == "t"
    assert found.variance == pytest.approx(rows.var(ddof=1) / 400)
    assert found.value == pytest.approx(skm.log_loss(y, proba, labels=range(4)), abs=1e-12)


def test_one_class_auc_has_the_binary_delong_variance() -> None:
    y, proba = sample(500, seed=5)
    spec = multiclass_spec("roc_auc[bee]", CLASSES)
    found = estimate_multiclass(spec, y, proba, CLASSES, resamples=10, seed=0)
    binary = estimate(METRICS["roc_auc"], (y == 1).astype(float), proba[:, 1], 0.5, 10, 0)
    assert found.value == pytest.approx(binary.value, abs=1e-12)
    assert found.variance == pytest.approx(binary.variance, rel=1e-12)


@pytest.mark.parametrize("name", ["roc_auc_ovr", "roc_auc_ovr_weighted"])
def test_averaged_auc_variance_matches_a_row_bootstrap_with_sklearn(name: str) -> None:
    y, proba = sample(1000, seed=6)
    spec = multiclass_spec(name, CLASSES)
    found = estimate_multiclass(spec, y, proba, CLASSES, resamples=10, seed=0)
    average = "macro" if name == "roc_auc_ovr" else "weighted"
    rng = np.random.default_rng(7)
    draws = []
    for _ in range(300):
        rows = rng.integers(0, 1000, size=1000)
        draws.append(skm.roc_auc_score(y[rows], proba[rows], multi_class="ovr", average=average))
    assert np.sqrt(found.variance) == pytest.approx(np.std(draws, ddof=1), rel=0.15)
    assert interval(spec, found, 0.95).method == OVR_ONE_SAMPLE


@pytest.mark.parametrize("name", ["accuracy", "recall[cat]", "brier", "roc_auc_ovr"])
def test_difference_of_two_samples_of_one_population_contains_zero(name: str) -> None:
    spec = multiclass_spec(name, CLASSES)
    (y1, p1), (y2, p2) = sample(800, seed=8), sample(900, seed=9)
    recent = estimate_multiclass(spec, y1, p1, CLASSES, resamples=500, seed=0)
    gate = estimate_multiclass(spec, y2, p2, CLASSES, resamples=500, seed=1)
    change = difference(spec, recent, gate, 0.95)
    assert change.value == pytest.approx(recent.value - gate.value)
    assert change.low <= 0 <= change.high
    if recent.spread == "normal":
        half = Z * np.sqrt(recent.variance + gate.variance)
        assert (change.low, change.high) == pytest.approx(
            (change.value - half, change.value + half)
        )
        assert change.method == OVR_TWO_SAMPLE


def test_a_class_without_rows_has_no_auc() -> None:
    y, proba = sample(300, seed=10)
    y[y == 3] = 0
    with pytest.raises(ValueError, match="class 'dog' vs rest"):
        estimate_multiclass(multiclass_spec("roc_auc_ovr", CLASSES), y, proba, CLASSES, 10, 0)
