"""Paired, significance-aware comparison of a candidate model with production.

Both models are scored on the same holdout rows, so every interval is for the paired
difference ``delta = candidate - production``. The method depends on the metric:

    roc_auc                                   DeLong 1988, fast midranks (Sun & Xu 2014)
    accuracy precision recall f1              paired bootstrap on the 8 joint confusion
      balanced_accuracy                         counts (multinomial draws), percentile
    log_loss brier mae                        paired t interval on per-row loss differences
    rmse r2                                   up to 20,000 rows: paired row bootstrap
                                                (multinomial weights), percentile; above:
                                                delta method on the per-row squared errors
                                                (ci_ml.evaluation.regression)

Inputs follow :mod:`ci_ml.evaluation.metrics` (0/1 truth and probabilities of class 1 for
classification). Randomness comes only from ``np.random.default_rng(seed)``; each
bootstrap family starts from that seed, so an interval does not depend on which other
metrics were asked for. See ``docs/statistics.md`` for the formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ci_ml.evaluation.metrics import (
    CONFUSION_FORMULAS,
    DEFAULT_THRESHOLD,
    METRICS,
    ROW_LOSSES,
    FloatArray,
    MetricSpec,
    auc_components,
    check_inputs,
    evaluate_metrics,
    labels,
    resolve_metrics,
)
from ci_ml.evaluation.regression import SUMS_METRICS, paired_intervals

__all__ = [
    "METRICS",
    "Comparison",
    "DeLongResult",
    "MetricSpec",
    "compare",
    "delong_ci",
    "evaluate_metrics",
]

PAIRED_T = "paired t interval on per-row differences"


@dataclass(frozen=True)
class Comparison:
    """Candidate vs production on one metric: values, paired delta and its interval."""

    metric: str
    candidate: float
    production: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n: int


@dataclass(frozen=True)
class DeLongResult:
    """Two correlated ROC AUCs on the same rows and the DeLong test of their difference."""

    auc_a: float
    auc_b: float
    delta: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    confidence: float


@dataclass(frozen=True)
class _Inputs:
    y: FloatArray
    cand: FloatArray
    prod: FloatArray
    confidence: float
    n_resamples: int
    seed: int
    threshold: float


def _result(
    spec: MetricSpec,
    inp: _Inputs,
    cand: float,
    prod: float,
    interval: tuple[float, float],
    method: str,
) -> Comparison:
    low, high = interval
    return Comparison(
        spec.name, cand, prod, cand - prod, low, high, inp.confidence, method, inp.y.size
    )


# ---------------------------------------------------------------- DeLong


def delong_ci(
    y_true: ArrayLike, score_a: ArrayLike, score_b: ArrayLike, confidence: float = 0.95
) -> DeLongResult:
    """DeLong, DeLong & Clarke-Pearson (1988) test and interval for AUC(a) - AUC(b).

    ``y_true`` is 0/1 (positive = 1); scores are any finite numbers where higher means more
    likely positive. Var(delta) = Var(V10_a - V10_b) / n_pos + Var(V01_a - V01_b) / n_neg
    (sample variances); the interval is delta ± z * se and the p-value two-sided, normal.
    Needs at least two rows of each class (ValueError otherwise). O(n log n).
    """
    _check_confidence(confidence)
    y, a, b = check_inputs("regression", y_true, score_a, score_b)  # scores need not be in [0, 1]
    is_pos = _delong_classes(y)
    comp_a, comp_b = auc_components(is_pos, a), auc_components(is_pos, b)
    auc_a, auc_b = float(comp_a[is_pos].mean()), float(comp_b[is_pos].mean())
    diff = comp_a - comp_b
    var = (
        np.var(diff[is_pos], ddof=1) / is_pos.sum()
        + np.var(diff[~is_pos], ddof=1) / (~is_pos).sum()
    )
    se, delta = float(np.sqrt(var)), auc_a - auc_b
    half = float(sps.norm.ppf(0.5 + confidence / 2)) * se
    return DeLongResult(
        auc_a, auc_b, delta, se, delta - half, delta + half, _two_sided_p(delta, se), confidence
    )


def _two_sided_p(delta: float, se: float) -> float:
    if se == 0:  # identical rankings, or both AUCs at 0 or 1: no sampling variation left
        return 1.0 if delta == 0 else 0.0
    return float(2 * sps.norm.sf(abs(delta) / se))


def _delong_classes(y: FloatArray) -> np.ndarray:
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must hold only 0 and 1 (positive class = 1).")
    is_pos = y == 1
    if min(is_pos.sum(), (~is_pos).sum()) < 2:
        raise ValueError("The DeLong test needs at least 2 positive and 2 negative rows.")
    return is_pos


def _compare_delong(specs: list[MetricSpec], inp: _Inputs) -> dict[str, Comparison]:
    res = delong_ci(inp.y, inp.cand, inp.prod, inp.confidence)
    method = "DeLong 1988, normal interval (fast midranks, Sun & Xu 2014)"
    return {
        s.name: _result(s, inp, res.auc_a, res.auc_b, (res.ci_low, res.ci_high), method)
        for s in specs
    }


# ------------------------------------------------- bootstrap on confusion counts


def joint_cells(y: FloatArray, label_a: FloatArray, label_b: FloatArray) -> np.ndarray:
    """Counts of the 8 joint cells (truth, label a, label b), index 4*y + 2*a + b."""
    return np.bincount((4 * y + 2 * label_a + label_b).astype(np.intp), minlength=8)


def _model_counts(cells: np.ndarray, model: int) -> tuple[FloatArray, ...]:
    """``(tp, fp, fn, tn)`` of model 0 (a) or 1 (b) from joint cells of shape (..., 8)."""
    other_model_axis = -1 if model == 0 else -2
    by_truth_label = cells.reshape(*cells.shape[:-1], 2, 2, 2).sum(axis=other_model_axis)
    c = by_truth_label.astype(np.float64)
    return c[..., 1, 1], c[..., 0, 1], c[..., 1, 0], c[..., 0, 0]


def _compare_confusion(specs: list[MetricSpec], inp: _Inputs) -> dict[str, Comparison]:
    cells = joint_cells(inp.y, labels(inp.cand, inp.threshold), labels(inp.prod, inp.threshold))
    return compare_cells(specs, cells, inp.confidence, inp.n_resamples, inp.seed)


def compare_cells(
    specs: list[MetricSpec], cells: np.ndarray, confidence: float, n_resamples: int, seed: int
) -> dict[str, Comparison]:
    """The label metrics' comparisons from the 8 joint cells alone (see :func:`joint_cells`)."""
    n = int(cells.sum())
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=n_resamples)
    method = f"paired bootstrap on joint confusion counts, percentile, B={n_resamples}"
    out = {}
    for spec in specs:
        formula = CONFUSION_FORMULAS[spec.name]
        value_a = float(formula(*_model_counts(cells, 0)))
        value_b = float(formula(*_model_counts(cells, 1)))
        deltas = formula(*_model_counts(draws, 0)) - formula(*_model_counts(draws, 1))
        low, high = _percentile_interval(deltas, confidence)
        out[spec.name] = Comparison(
            spec.name, value_a, value_b, value_a - value_b, low, high, confidence, method, n
        )
    return out


def _percentile_interval(deltas: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(deltas, [tail, 1 - tail])
    return float(low), float(high)


# ------------------------------------------------- paired t on per-row losses


def _compare_mean_loss(specs: list[MetricSpec], inp: _Inputs) -> dict[str, Comparison]:
    n = inp.y.size
    quantile = float(sps.t.ppf(0.5 + inp.confidence / 2, df=n - 1))
    out = {}
    for spec in specs:
        loss_a = ROW_LOSSES[spec.name](inp.y, inp.cand)
        loss_b = ROW_LOSSES[spec.name](inp.y, inp.prod)
        value_a, value_b = float(loss_a.mean()), float(loss_b.mean())
        delta, diff = value_a - value_b, loss_a - loss_b
        half = quantile * float(diff.std(ddof=1)) / float(np.sqrt(n))
        interval = (delta - half, delta + half)
        out[spec.name] = _result(spec, inp, value_a, value_b, interval, PAIRED_T)
    return out


# ------------------------------------------------- rmse and r2 (regression.py)


def _compare_sums(specs: list[MetricSpec], inp: _Inputs) -> dict[str, Comparison]:
    found, method = paired_intervals(
        [s.name for s in specs],
        inp.y,
        inp.cand,
        inp.prod,
        confidence=inp.confidence,
        n_resamples=inp.n_resamples,
        seed=inp.seed,
    )
    out = {}
    for spec in specs:
        f = found[spec.name]
        interval = (f.ci_low, f.ci_high)
        out[spec.name] = _result(spec, inp, f.candidate, f.production, interval, method)
    return out


# ---------------------------------------------------------------- entry point

_Comparator = Callable[[list[MetricSpec], _Inputs], dict[str, Comparison]]
_COMPARATOR_OF: dict[str, _Comparator] = {
    "roc_auc": _compare_delong,
    **{name: _compare_confusion for name in CONFUSION_FORMULAS},
    **{name: _compare_mean_loss for name in ROW_LOSSES},
    **{name: _compare_sums for name in SUMS_METRICS},
}


def compare(
    task: str,
    metric_names: Iterable[str],
    y_true: ArrayLike,
    cand: ArrayLike,
    prod: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Comparison]:
    """Compare candidate and production on the same rows; one :class:`Comparison` per metric.

    ``task`` is "classification" (``y_true`` 0/1 with both classes present; ``cand`` and
    ``prod`` are probabilities of class 1, labelled ``proba >= threshold``) or "regression"
    (predicted values). ``delta = candidate - production`` for every metric, whatever its
    direction. Unknown task or metric -> ConfigError; bad arrays -> ValueError.
    """
    specs = resolve_metrics(task, metric_names)
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}.")
    y, a, b = check_inputs(task, y_true, cand, prod)
    if y.size < 2:
        raise ValueError("A comparison needs at least 2 rows.")
    inp = _Inputs(y, a, b, confidence, n_resamples, seed, threshold)
    groups: dict[_Comparator, list[MetricSpec]] = {}
    for spec in specs:
        groups.setdefault(_COMPARATOR_OF[spec.name], []).append(spec)
    results: dict[str, Comparison] = {}
    for comparator, group in groups.items():
        results.update(comparator(group, inp))
    return {spec.name: results[spec.name] for spec in specs}


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95); got {confidence}.")
