"""Model metrics for binary classification and regression, and the table that names them.

Input convention (every function here and in :mod:`ci_ml.evaluation.stats`):

* classification: ``y_true`` holds 0/1 (positive class = 1; bools and 0.0/1.0 are accepted)
  and both classes must be present; a model is given as its probability of the positive
  class, in [0, 1]. Label metrics use the label ``proba >= threshold`` (0.5 by default).
* regression: ``y_true`` and the predictions are finite numbers.

Bad arrays raise :class:`ValueError` with one sentence; a metric name that is not in
:data:`METRICS` (or belongs to the other task) raises :class:`ci_ml.errors.ConfigError`.

Ratios whose denominator is 0 (precision with no predicted positives, recall with no
positive rows, f1 with neither) are 0.0 — sklearn's ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ci_ml.errors import ConfigError

Task = Literal["classification", "regression"]
Needs = Literal["proba", "label", "value"]
FloatArray = NDArray[np.float64]
MetricFn = Callable[[FloatArray, FloatArray], float]
CountFormula = Callable[[FloatArray, FloatArray, FloatArray, FloatArray], FloatArray]

TASKS: tuple[Task, ...] = ("classification", "regression")
DEFAULT_THRESHOLD = 0.5
# operational metrics: all lower-is-better, judged by min/max gates only (not in METRICS)
OPERATIONAL = ("latency_p50_ms", "latency_p95_ms", "size_mb", "churn")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, task, direction, what it is computed from, and how."""

    name: str
    task: Task
    higher_is_better: bool
    needs: Needs
    function: MetricFn


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """``num / den`` elementwise, with 0/0 (and x/0) defined as 0.0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


# Confusion-matrix metrics as formulas of the counts, vectorised over any shape.
CONFUSION_FORMULAS: dict[str, CountFormula] = {
    "accuracy": lambda tp, fp, fn, tn: _ratio(tp + tn, tp + fp + fn + tn),
    "precision": lambda tp, fp, fn, tn: _ratio(tp, tp + fp),
    "recall": lambda tp, fp, fn, tn: _ratio(tp, tp + fn),
    "f1": lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn),
    "balanced_accuracy": lambda tp, fp, fn, tn: (_ratio(tp, tp + fn) + _ratio(tn, tn + fp)) / 2,
}


def confusion_counts(y_true: FloatArray, label: FloatArray) -> tuple[float, float, float, float]:
    """Return ``(tp, fp, fn, tn)`` for 0/1 arrays."""
    cells = np.bincount((2 * y_true + label).astype(np.intp), minlength=4)
    tn, fp, fn, tp = (float(c) for c in cells)
    return tp, fp, fn, tn


def _confusion_metric(name: str) -> MetricFn:
    formula = CONFUSION_FORMULAS[name]

    def metric(y_true: FloatArray, label: FloatArray) -> float:
        tp, fp, fn, tn = (np.asarray(c) for c in confusion_counts(y_true, label))
        return float(formula(tp, fp, fn, tn))

    metric.__name__ = name
    metric.__doc__ = f"{name} of 0/1 labels against 0/1 truth (0/0 counts as 0)."
    return metric


# Per-row losses whose mean is the metric; stats.py compares them row by row.
def _clip_proba(proba: FloatArray) -> FloatArray:
    eps = np.finfo(np.float64).eps  # as sklearn.metrics.log_loss: avoid log(0)
    return np.clip(proba, eps, 1 - eps)


ROW_LOSSES: dict[str, Callable[[FloatArray, FloatArray], FloatArray]] = {
    "log_loss": lambda y, p: -(y * np.log(_clip_proba(p)) + (1 - y) * np.log1p(-_clip_proba(p))),
    "brier": lambda y, p: (p - y) ** 2,
    "mae": lambda y, v: np.abs(v - y),
}


def _mean_loss(name: str) -> MetricFn:
    loss = ROW_LOSSES[name]

    def metric(y_true: FloatArray, pred: FloatArray) -> float:
        return float(np.mean(loss(y_true, pred)))

    metric.__name__ = name
    metric.__doc__ = f"Mean per-row {name}."
    return metric


def roc_auc(y_true: FloatArray, proba: FloatArray) -> float:
    """Area under the ROC curve (ties count one half), by midranks in O(n log n)."""
    is_pos = y_true == 1
    return float(auc_components(is_pos, proba)[is_pos].mean())


def auc_components(is_pos: NDArray[np.bool_], score: FloatArray) -> FloatArray:
    """DeLong's structural components in row order: V10 on positive rows, V01 on negative ones.

    V10 of a positive = share of negatives it outscores (ties count 1/2), so AUC = mean V10;
    V01 of a negative = share of positives that outscore it. From one sort (Sun & Xu 2014):
    V10 = (midrank among all - midrank among positives) / n_neg and
    V01 = 1 - (midrank among all - midrank among negatives) / n_pos.
    """
    order = np.argsort(score)
    sorted_scores, sorted_pos = score[order], is_pos[order]
    rank_all = midranks_of_sorted(sorted_scores)
    n_pos = int(sorted_pos.sum())
    n_neg = sorted_pos.size - n_pos
    out = np.empty(score.size)
    pos_ranks = midranks_of_sorted(sorted_scores[sorted_pos])
    out[order[sorted_pos]] = (rank_all[sorted_pos] - pos_ranks) / n_neg
    neg_ranks = midranks_of_sorted(sorted_scores[~sorted_pos])
    out[order[~sorted_pos]] = 1 - (rank_all[~sorted_pos] - neg_ranks) / n_pos
    return out


def rmse(y_true: FloatArray, value: FloatArray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((value - y_true) ** 2)))


def r2(y_true: FloatArray, value: FloatArray) -> float:
    """Coefficient of determination, 1 - SSE/SST; ValueError when y_true is constant."""
    sse = float(np.sum((value - y_true) ** 2))
    sst = float(np.sum((y_true - y_true.mean()) ** 2))
    if sst == 0:
        raise ValueError("r2 is undefined when y_true is constant; use rmse or mae instead.")
    return 1 - sse / sst


def midranks(x: FloatArray) -> FloatArray:
    """1-based ranks of ``x`` in original order, tied values sharing their mean rank."""
    order = np.argsort(x)
    ranks = np.empty(x.size)
    ranks[order] = midranks_of_sorted(x[order])
    return ranks


def midranks_of_sorted(xs: FloatArray) -> FloatArray:
    """Midranks of an already sorted array, in that sorted order."""
    n = xs.size
    starts_group = np.empty(n, dtype=bool)
    starts_group[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=starts_group[1:])
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], n)  # exclusive; the group holds ranks starts+1 .. ends
    return np.repeat((starts + ends + 1) / 2.0, ends - starts)


def _spec(name: str, task: Task, higher: bool, needs: Needs, fn: MetricFn) -> MetricSpec:
    return MetricSpec(name=name, task=task, higher_is_better=higher, needs=needs, function=fn)


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        _spec("roc_auc", "classification", True, "proba", roc_auc),
        *(
            _spec(n, "classification", True, "label", _confusion_metric(n))
            for n in CONFUSION_FORMULAS
        ),
        _spec("log_loss", "classification", False, "proba", _mean_loss("log_loss")),
        _spec("brier", "classification", False, "proba", _mean_loss("brier")),
        _spec("rmse", "regression", False, "value", rmse),
        _spec("mae", "regression", False, "value", _mean_loss("mae")),
        _spec("r2", "regression", True, "value", r2),
    ]
}


def resolve_metrics(task: str, metric_names: Iterable[str]) -> list[MetricSpec]:
    """Look the names up in :data:`METRICS`; ConfigError for an unknown task or name."""
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; allowed tasks: {', '.join(TASKS)}.")
    allowed = [name for name, spec in METRICS.items() if spec.task == task]
    names = list(metric_names)
    if not names:
        raise ConfigError(f"No metric given for {task}; choose from: {', '.join(allowed)}.")
    for name in names:
        if name not in allowed:
            raise ConfigError(
                f"Unknown {task} metric {name!r}; allowed {task} metrics: {', '.join(allowed)}."
            )
    return [METRICS[name] for name in dict.fromkeys(names)]


def as_vector(name: str, values: ArrayLike) -> FloatArray:
    """A 1-d float64 copy of ``values``; ValueError if it is not 1-d, empty or not finite."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array; got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values; drop or impute them first.")
    return array


def check_inputs(task: str, y_true: ArrayLike, *preds: ArrayLike) -> list[FloatArray]:
    """Validate ``y_true`` and the predictions for ``task``; return them as float arrays."""
    y = as_vector("y_true", y_true)
    arrays = [y] + [as_vector(f"predictions #{i + 1}", p) for i, p in enumerate(preds)]
    if any(a.size != y.size for a in arrays):
        sizes = ", ".join(str(a.size) for a in arrays)
        raise ValueError(f"y_true and predictions must have the same length; got {sizes}.")
    if task == "classification":
        _check_binary(y, arrays[1:])
    return arrays


def _check_binary(y: FloatArray, probas: list[FloatArray]) -> None:
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("Classification y_true must hold only 0 and 1 (positive class = 1).")
    if y.min() == y.max():
        raise ValueError(
            f"y_true holds only class {int(y[0])}; classification metrics need both 0 and 1 rows."
        )
    for proba in probas:
        if proba.min() < 0 or proba.max() > 1:
            raise ValueError(
                "Classification predictions must be probabilities of class 1, within [0, 1]."
            )


def labels(proba: FloatArray, threshold: float = DEFAULT_THRESHOLD) -> FloatArray:
    """0/1 labels: 1 where the probability of class 1 is at least ``threshold``."""
    return (proba >= threshold).astype(np.float64)


def model_inputs(spec: MetricSpec, pred: FloatArray, threshold: float) -> FloatArray:
    """What ``spec.function`` takes for one model: the label for label metrics, else ``pred``."""
    return labels(pred, threshold) if spec.needs == "label" else pred


def evaluate_metrics(
    task: str,
    metric_names: Iterable[str],
    y_true: ArrayLike,
    pred: ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Metric values for one model (no baseline), keyed by metric name.

    For classification ``pred`` is the probability of class 1 and label metrics use
    ``pred >= threshold``; for regression it is the predicted value.
    """
    specs = resolve_metrics(task, metric_names)
    y, p = check_inputs(task, y_true, pred)
    return {s.name: s.function(y, model_inputs(s, p, threshold)) for s in specs}
