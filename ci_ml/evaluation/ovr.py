"""One-vs-rest ROC AUC of K classes: averages of the per-class AUCs and their variance.

Class k vs rest is a binary problem on the same rows (positives: the rows of class k; score:
the probability of class k), with its AUC and DeLong structural components from
:func:`ci_ml.evaluation.metrics.auc_components`. An average ``Σ_k w_k A_k`` (macro: 1/K;
weighted: the class shares; one class: one-hot) gets its variance from per-row influence
values, which account for the K problems splitting the same rows differently; with one
weight 1 it is DeLong's variance (docs/statistics.md, "Multiclass").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ci_ml.evaluation.metrics import FloatArray, _ratio, auc_components

AucAverage = Literal["macro", "weighted"] | int  # an int: that class vs the rest
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class OvrAverage:
    """One average of one-vs-rest AUCs: its value for each model, and the variance of the
    first model's minus the second's (of the one model's value when there is one)."""

    values: tuple[float, ...]
    variance: float


def ovr_classes(average: AucAverage, k: int) -> list[int]:
    """The classes whose one-vs-rest problem an average uses: all K, or the one class."""
    return list(range(k)) if isinstance(average, str) else [average]


def auc_weights(average: AucAverage, counts: NDArray[np.int64]) -> FloatArray:
    """Weights of the K per-class AUCs: 1/K (macro), class shares (weighted), or one-hot."""
    k = counts.size
    if average == "macro":
        return np.full(k, 1 / k)
    if average == "weighted":
        return counts / counts.sum()
    return np.eye(k)[average]


def ovr_averages(
    y: IntArray,
    probas: Sequence[FloatArray],
    classes: Sequence[str],
    averages: Iterable[AucAverage],
    min_rows: int = 1,
) -> dict[AucAverage, OvrAverage]:
    """Each average of the one-vs-rest AUCs of one or two models, with its variance.

    With c_k(i) the DeLong component of row i in problem k (of the one model, or the first
    minus the second), A_k its mean over the rows of class k and m the size of row i's side
    (class k or the rest): φ_i = Σ_k w_k (c_k(i) − A_k) / √(m(m − 1)), plus
    (A_{y_i} − Σ_k w_k A_k) / √(n(n − 1)) for the class-share weights; Var = Σ_i φ_i². One
    class at a time, so memory is O(n) whatever K. ValueError when a class an average uses,
    or the rest, has fewer than ``min_rows`` rows; a side of one row adds 0 to the variance.
    """
    k, n = len(classes), y.size
    wanted = list(dict.fromkeys(averages))
    counts = np.bincount(y, minlength=k)
    weights = {average: auc_weights(average, counts) for average in wanted}
    aucs, contrast_aucs = np.zeros((len(probas), k)), np.zeros(k)
    phi = {average: np.zeros(n) for average in wanted if isinstance(average, str)}
    variance: dict[AucAverage, float] = {}
    for c in sorted({c for average in wanted for c in ovr_classes(average, k)}):
        is_c = _class_rows(y, c, classes, min_rows)
        comps = [auc_components(is_c, proba[:, c]) for proba in probas]
        aucs[:, c] = [float(m[is_c].mean()) for m in comps]
        contrast = comps[0] - comps[1] if len(comps) == 2 else comps[0]
        contrast_aucs[c] = float(contrast[is_c].mean())
        sides = np.where(is_c, counts[c], n - counts[c])
        influence = (contrast - contrast_aucs[c]) * _inverse_pairs(sides)
        if c in wanted:
            variance[c] = float(influence @ influence)
        for average, values in phi.items():
            values += weights[average][c] * influence
    if "weighted" in phi:
        overall = weights["weighted"] @ contrast_aucs
        phi["weighted"] += (contrast_aucs[y] - overall) * _inverse_pairs(np.array(n))
    variance.update({average: float(values @ values) for average, values in phi.items()})
    return {
        average: OvrAverage(tuple(float(v) for v in aucs @ weights[average]), variance[average])
        for average in wanted
    }


def _class_rows(y: IntArray, c: int, classes: Sequence[str], min_rows: int) -> np.ndarray:
    is_c = y == c
    n_c = int(is_c.sum())
    if min(n_c, y.size - n_c) < min_rows:
        raise ValueError(
            f"The AUC of class {classes[c]!r} vs rest needs at least {min_rows} rows of it and "
            f"{min_rows} of the other classes; y has {n_c} of {y.size} rows in it."
        )
    return is_c


def _inverse_pairs(m: NDArray[np.int64]) -> FloatArray:
    """1 / √(m(m − 1)), and 0 where m < 2."""
    pairs = (m * (m - 1)).astype(np.float64)
    return _ratio(np.ones_like(pairs), np.sqrt(pairs))
