"""One-vs-rest ROC AUC of K classes: per-class DeLong components, weights, and the variance.

Class k vs rest is a binary problem on the same rows (positives: rows of class k, score:
the probability of class k). Its AUC and DeLong structural components come from
:func:`ci_ml.evaluation.metrics.auc_components`. An average ``Σ_k w_k A_k`` (macro: 1/K;
weighted: the class shares; one class: one-hot) gets its variance from per-row influence
values, which handle that the K problems split the rows differently; with one weight 1 the
variance is DeLong's (docs/statistics.md, "Multiclass").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ci_ml.evaluation.metrics import FloatArray, _ratio, auc_components

AucAverage = Literal["macro", "weighted"] | int  # an int: that class vs the rest
IntArray = NDArray[np.intp]


def ovr_components(
    y: IntArray,
    probas: Sequence[FloatArray],
    classes: Sequence[str],
    needed: Iterable[int],
    min_rows: int = 1,
) -> dict[int, list[FloatArray]]:
    """DeLong components of class k vs rest (score ``proba[:, k]``) of each model, per class.

    ValueError when class k, or the rest, has fewer than ``min_rows`` rows.
    """
    out: dict[int, list[FloatArray]] = {}
    for k in sorted(set(needed)):
        is_k = y == k
        n_k = int(is_k.sum())
        if min(n_k, y.size - n_k) < min_rows:
            raise ValueError(
                f"The AUC of class {classes[k]!r} vs rest needs at least {min_rows} rows of it "
                f"and {min_rows} of the other classes; y has {n_k} of {y.size} rows in it."
            )
        out[k] = [auc_components(is_k, proba[:, k]) for proba in probas]
    return out


def ovr_classes(average: AucAverage, k: int) -> list[int]:
    """The classes whose one-vs-rest problem an average uses: all K, or the one class."""
    return list(range(k)) if isinstance(average, str) else [average]


def auc_weights(average: AucAverage, y: IntArray, k: int) -> FloatArray:
    """Weights of the K one-vs-rest AUCs: 1/K (macro), class shares (weighted), or one-hot."""
    if average == "macro":
        return np.full(k, 1 / k)
    if average == "weighted":
        return np.bincount(y, minlength=k) / y.size
    return np.eye(k)[average]


def ovr_aucs(y: IntArray, components: Mapping[int, FloatArray], k: int) -> FloatArray:
    """Per-class AUC (mean V10 over the class's rows); 0 for the classes not given."""
    out = np.zeros(k)
    for c, comps in components.items():
        out[c] = comps[y == c].mean()
    return out


def ovr_variance(
    y: IntArray, components: Mapping[int, FloatArray], weights: FloatArray, by_prevalence: bool
) -> float:
    """Variance of Σ_k w_k A_k from per-row influence values φ_i (docs/statistics.md).

    ``components`` are one model's (or the difference of two models') components per class.
    φ_i = Σ_k w_k (c_k(i) − A_k) / √(m(m − 1)), m the size of row i's side of problem k, plus
    (A_{y_i} − Σ_k w_k A_k) / √(n(n − 1)) when the weights are the class shares; Var = Σ φ_i².
    With one weight 1 it is DeLong's variance. A side with one row contributes 0.
    """
    n, k = y.size, weights.size
    counts = np.bincount(y, minlength=k)
    aucs = ovr_aucs(y, components, k)
    phi = np.zeros(n)
    for c, comps in components.items():
        side = np.where(y == c, counts[c], n - counts[c])
        phi += weights[c] * (comps - aucs[c]) * _inverse_pairs(side)
    if by_prevalence:
        phi += (aucs[y] - weights @ aucs) * _inverse_pairs(np.array(n))
    return float(phi @ phi)


def _inverse_pairs(m: NDArray[np.int64]) -> FloatArray:
    """1 / √(m(m − 1)), and 0 where m < 2."""
    pairs = (m * (m - 1)).astype(np.float64)
    return _ratio(np.ones_like(pairs), np.sqrt(pairs))
