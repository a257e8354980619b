"""Curves of the candidate and production on the same holdout rows, on grids fixed in advance.

A fixed grid keeps evaluation.json small whatever the number of rows, and lines two runs'
curves up point for point (``dvc plots diff``):

roc                  true positive rate at false positive rate 0, 0.05, …, 1: linear between
                     the ROC curve's corners, the top of a vertical step
precision_recall     interpolated precision at recall 0, 0.05, …, 1: the best precision at that
                     recall or more
calibration          10 equal-width bins of the predicted probability (as
                     ``sklearn.calibration.calibration_curve``): the observed positive rate, the
                     mean prediction and the rows of each
predicted_vs_actual  10 equal-count bins of the actual value, in rank order: the mean actual
                     value (the grid, the same for both models) and each model's mean prediction
residuals            quantiles 5%, 10%, …, 95% of actual − predicted

A multiclass model's roc and precision_recall are macro averages of the one-vs-rest curves (over
the classes with rows of both kinds), its calibration that of the predicted class (confidence
vs accuracy). :func:`dvc_rows` gives a curve as the rows of a DVC plot file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from ci_ml.evaluation.predict import Predictions
from ci_ml.records import Curve, CurveName

FloatArray = NDArray[np.float64]
CURVE_NAMES: tuple[str, ...] = get_args(CurveName)

RATES = np.round(np.linspace(0.0, 1.0, 21), 2)  # 0, 0.05, …, 1: exact decimals
BINS = 10
LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)  # residual quantiles
MACRO = "macro average of one-vs-rest"
TOP_LABEL = "the predicted class: confidence vs accuracy"


def roc_at(y_true: FloatArray, score: FloatArray, fpr: FloatArray = RATES) -> FloatArray:
    """True positive rate at each false positive rate in ``fpr``."""
    tps, fps = _cumulative(y_true, score)
    # np.interp takes the last of equal xp: the top of a vertical step
    return np.interp(fpr, np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]])


def precision_at(y_true: FloatArray, score: FloatArray, recall: FloatArray = RATES) -> FloatArray:
    """Interpolated precision at each ``recall``: the best precision at that recall or more."""
    tps, fps = _cumulative(y_true, score)
    precision = tps / (tps + fps)
    best = np.maximum.accumulate(precision[::-1])[::-1]
    reached = np.searchsorted(tps / tps[-1], recall, side="left")
    return best[reached]


def _cumulative(y_true: FloatArray, score: FloatArray) -> tuple[FloatArray, FloatArray]:
    """True and false positives above each distinct threshold, highest threshold first."""
    order = np.argsort(-score, kind="mergesort")
    ranked, truth = score[order], y_true[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), truth.size - 1]
    tps = np.cumsum(truth)[last]
    return tps, (last + 1) - tps


def calibration_bins(
    y_true: FloatArray, proba: FloatArray, bins: int = BINS
) -> tuple[list[float | None], list[float | None], list[int]]:
    """Per equal-width bin of ``proba``: observed positive rate and mean prediction (None for
    an empty bin) and the rows."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], proba)  # as sklearn: bin k is (edge k, edge k+1]
    rows = np.bincount(ids, minlength=bins)
    observed = np.bincount(ids, weights=y_true, minlength=bins)
    predicted = np.bincount(ids, weights=proba, minlength=bins)
    return _means(observed, rows), _means(predicted, rows), [int(r) for r in rows]


def _means(sums: NDArray[Any], rows: NDArray[Any]) -> list[float | None]:
    return [float(s / n) if n else None for s, n in zip(sums, rows, strict=True)]


def actual_bins(y_true: FloatArray, bins: int = BINS) -> list[NDArray[np.intp]]:
    """The rows in ``bins`` equal-count groups of the actual value (ties in row order)."""
    order = np.argsort(y_true, kind="stable")
    return [group for group in np.array_split(order, min(bins, y_true.size)) if group.size]


def residual_quantiles(
    y_true: FloatArray, predicted: FloatArray, levels: FloatArray = LEVELS
) -> FloatArray:
    """Quantiles of actual − predicted (numpy's linear interpolation)."""
    return np.quantile(y_true - predicted, levels)


# --- the curves of evaluation.json ----------------------------------------------------------


def curves(task: str, cand: Predictions, prod: Predictions | None) -> list[Curve]:
    """Every curve of the task, candidate and (when compared) production on the same rows;
    none for a binary holdout without both classes."""
    if task == "regression":
        return _regression(cand, prod)
    if cand.score.ndim == 2:
        return _multiclass(cand, prod)
    if not 0 < cand.y_true.sum() < cand.y_true.size:
        return []
    return _ranked(cand, prod, lambda p, at: at(p.y_true, p.score), None, (lambda p: p, None))


def _ranked(
    cand: Predictions,
    prod: Predictions | None,
    rates: Callable[[Predictions, Any], Any],
    average: str | None,
    calibration: tuple[Callable[[Predictions], Predictions], str | None],
) -> list[Curve]:
    """ROC and precision-recall (``rates(p, roc_at)``: the curve's values on its grid, made by
    ``average``) and the calibration curve of ``calibrated(p)`` (made by its own average)."""
    calibrated, calibration_average = calibration
    return [
        _curve("roc", "fpr", "tpr", RATES, cand, prod, lambda p: _line(rates(p, roc_at)), average),
        _curve(
            "precision_recall",
            "recall",
            "precision",
            RATES,
            cand,
            prod,
            lambda p: _line(rates(p, precision_at)),
            average,
        ),
        _calibration(
            calibrated(cand), calibrated(prod) if prod is not None else None, calibration_average
        ),
    ]


def _regression(cand: Predictions, prod: Predictions | None) -> list[Curve]:
    groups = actual_bins(cand.y_true)
    grid = np.array([cand.y_true[g].mean() for g in groups])

    def means(p: Predictions) -> dict[str, Any]:
        return {
            "y": [float(p.score[g].mean()) for g in groups],
            "rows": [int(g.size) for g in groups],
        }

    def quantiles(p: Predictions) -> dict[str, Any]:
        return _line(residual_quantiles(p.y_true, p.score))

    return [
        _curve("predicted_vs_actual", "actual", "predicted", grid, cand, prod, means),
        _curve("residuals", "quantile", "residual", LEVELS, cand, prod, quantiles),
    ]


def _multiclass(cand: Predictions, prod: Predictions | None) -> list[Curve]:
    classes = [
        k
        for k in range(cand.score.shape[1])
        if 0 < np.count_nonzero(cand.y_true == k) < cand.y_true.size
    ]
    if not classes:
        return []

    def macro(p: Predictions, at: Any) -> Any:
        return np.mean([at((p.y_true == k).astype(np.float64), p.score[:, k]) for k in classes], 0)

    def top(p: Predictions) -> Predictions:
        label = p.score.argmax(axis=1)
        return Predictions((label == p.y_true).astype(np.float64), p.score.max(axis=1))

    return _ranked(cand, prod, macro, MACRO, (top, TOP_LABEL))


def _calibration(cand: Predictions, prod: Predictions | None, average: str | None) -> Curve:
    centres = (np.arange(BINS) + 0.5) / BINS

    def bins(p: Predictions) -> dict[str, Any]:
        observed, predicted, rows = calibration_bins(p.y_true, p.score)
        return {"y": observed, "rows": rows, "mean_x": predicted}

    return _curve("calibration", "predicted", "observed", centres, cand, prod, bins, average)


def _curve(
    name: str,
    x: str,
    y: str,
    grid: FloatArray,
    cand: Predictions,
    prod: Predictions | None,
    line: Any,
    average: str | None = None,
) -> Curve:
    return Curve.model_validate(
        {
            "name": name,
            "x": x,
            "y": y,
            "average": average,
            "grid": [float(v) for v in grid],
            "candidate": line(cand),
            "production": line(prod) if prod is not None else None,
        }
    )


def _line(values: FloatArray) -> dict[str, Any]:
    return {"y": [float(v) for v in values]}


# --- DVC plot files -------------------------------------------------------------------------


def dvc_rows(curve: Curve) -> list[dict[str, Any]]:
    """The curve as a DVC plot file: one row per grid point, the x field (e.g. ``fpr``), one
    column per model (``candidate``, ``production``) and, for binned curves, each model's
    ``<model>_rows`` (and ``<model>_mean_predicted`` for calibration)."""
    lines = {"candidate": curve.candidate, "production": curve.production}
    rows: list[dict[str, Any]] = []
    for i, x in enumerate(curve.grid):
        row: dict[str, Any] = {curve.x: x}
        for model, line in lines.items():
            if line is None:
                continue
            row[model] = line.y[i]
            if line.rows is not None:
                row[f"{model}_rows"] = line.rows[i]
            if line.mean_x is not None:
                row[f"{model}_mean_predicted"] = line.mean_x[i]
        rows.append(row)
    return rows
