"""Coverage of the multiclass paired intervals by simulation (ci_ml/evaluation/multiclass.py).

A known population: classes with unequal shares, and two models whose logits are a class
signal (stronger for the candidate) plus noise they share and noise of their own. Its true
paired differences of accuracy, f1_macro and roc_auc_ovr are measured once on 600,000 rows
(their error there is under a tenth of one data set's standard error); then 200 data sets
are drawn and the share of 95% intervals that hold the true difference must be 95% ± 4
points, at K = 3 and K = 10.
"""

from __future__ import annotations

import numpy as np
import pytest

from ci_ml.evaluation.multiclass import compare_multiclass, evaluate_multiclass

METRICS = ["accuracy", "f1_macro", "roc_auc_ovr"]
DATA_SETS = 200
POPULATION_ROWS = 600_000


def draw(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` rows of the population with ``k`` classes: class indices and both models."""
    share = np.arange(1, k + 1) / np.arange(1, k + 1).sum()
    y = rng.choice(k, size=n, p=share)
    signal = np.eye(k)[y]
    shared = rng.normal(size=(n, k))
    cand = 1.5 * signal + shared + 0.7 * rng.normal(size=(n, k))
    prod = 1.3 * signal + shared + 0.7 * rng.normal(size=(n, k))
    return y, softmax(cand), softmax(prod)


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def true_differences(k: int) -> dict[str, float]:
    y, cand, prod = draw(POPULATION_ROWS, k, np.random.default_rng(1000 + k))
    classes = [str(c) for c in range(k)]
    a = evaluate_multiclass(METRICS, y, cand, classes)
    b = evaluate_multiclass(METRICS, y, prod, classes)
    return {name: a[name] - b[name] for name in METRICS}


@pytest.mark.slow
@pytest.mark.parametrize(("k", "rows"), [(3, 600), (10, 2000)])
def test_intervals_cover_the_true_difference_95_percent(k: int, rows: int) -> None:
    truth = true_differences(k)
    rng = np.random.default_rng(k)
    classes = [str(c) for c in range(k)]
    hits = {name: 0 for name in METRICS}
    for seed in range(DATA_SETS):
        found = compare_multiclass(METRICS, *draw(rows, k, rng), classes, seed=seed)
        for name, c in found.items():
            hits[name] += c.ci_low <= truth[name] <= c.ci_high
    coverage = {name: count / DATA_SETS for name, count in hits.items()}
    assert all(abs(share - 0.95) <= 0.04 for share in coverage.values()), coverage
