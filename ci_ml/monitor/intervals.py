"""A metric on one labelled sample with its sampling noise, and intervals built from it.

:func:`estimate` measures a metric on one sample (recent rows, or the holdout at the
model's gate) together with what the decay check needs of its noise:

    roc_auc                                   DeLong variance of one AUC
    accuracy precision recall f1              bootstrap on the 4 confusion counts
      balanced_accuracy                         (multinomial draws)
    log_loss brier mae                        variance of the mean per-row loss
    rmse r2                                   row bootstrap (multinomial weights)

:func:`estimate_multiclass` does the same for a multiclass metric
(:mod:`ci_ml.evaluation.multiclass`): a bootstrap on the K×K confusion counts for the label
metrics, the variance of the mean per-row loss for log_loss and brier, and the
influence-function variance of the one-vs-rest AUCs (:mod:`ci_ml.evaluation.ovr`).

:func:`interval` is the interval of one sample's value; :func:`difference` the interval of
``recent - gate`` for two independent samples, with both samples' noise: a normal interval
on the summed DeLong variances, a Welch t interval on the per-row losses, or the
percentile interval of the differences of independent resamples of each sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from ci_ml.evaluation.metrics import (
    CONFUSION_FORMULAS,
    ROW_LOSSES,
    FloatArray,
    MetricSpec,
    auc_components,
    labels,
    model_inputs,
)
from ci_ml.evaluation.multiclass import MulticlassSpec, confusion_matrix
from ci_ml.evaluation.ovr import IntArray, ovr_averages
from ci_ml.evaluation.regression import resampled_sums

Spread = Literal["normal", "t", "bootstrap"]
AnySpec = MetricSpec | MulticlassSpec


@dataclass(frozen=True)
class Interval:
    """A value with its interval and how the interval was made."""

    value: float
    low: float
    high: float
    method: str


@dataclass(frozen=True)
class Estimate:
    """A metric on one sample: its value and its noise (a variance, or resampled values)."""

    value: float
    rows: int
    spread: Spread
    variance: float = 0.0  # of the value: normal and t
    draws: FloatArray | None = None  # the value on each resample: bootstrap


ONE_SAMPLE = {
    "normal": "DeLong variance of one AUC, normal interval",
    "t": "t interval on per-row losses",
    "bootstrap": "{what}, percentile, B={b}",
}
TWO_SAMPLE = {
    "normal": "DeLong variances of both samples, normal interval",
    "t": "Welch t interval on the per-row losses of both samples",
    "bootstrap": "independent {what} of both samples, percentile of the differences, B={b}",
}
OVR_ONE_SAMPLE = "influence-function variance of the one-vs-rest AUCs, normal interval"
OVR_TWO_SAMPLE = "influence-function variances of both samples' one-vs-rest AUCs, normal interval"
_BOOTSTRAPPED = {
    "confusion": ("bootstrap on confusion counts", "bootstraps on confusion counts"),
    "rows": ("row bootstrap (multinomial weights)", "row bootstraps (multinomial weights)"),
}


def estimate(
    spec: MetricSpec, y: FloatArray, pred: FloatArray, threshold: float, resamples: int, seed: int
) -> Estimate:
    """``spec`` on one sample (0/1 truth and probabilities, or values) with its noise."""
    if spec.name == "roc_auc":
        return _auc(y, pred)
    if spec.name in CONFUSION_FORMULAS:
        return _confusion(spec, y, labels(pred, threshold), resamples, seed)
    if spec.name in ROW_LOSSES:
        loss = ROW_LOSSES[spec.name](y, pred)
        return Estimate(float(loss.mean()), loss.size, "t", float(loss.var(ddof=1)) / loss.size)
    value = spec.function(y, model_inputs(spec, pred, threshold))
    return Estimate(value, y.size, "bootstrap", draws=_row_draws(spec, y, pred, resamples, seed))


def estimate_multiclass(
    spec: MulticlassSpec,
    y: IntArray,
    proba: FloatArray,
    classes: list[str],
    resamples: int,
    seed: int,
) -> Estimate:
    """``spec`` on one sample (class indices and (n, K) probabilities, as checked by
    :func:`ci_ml.evaluation.multiclass.check_multiclass`) with its noise."""
    k = len(classes)
    if spec.formula is not None:
        cells = confusion_matrix(y, proba.argmax(axis=1), k).ravel()
        draws = np.random.default_rng(seed).multinomial(y.size, cells / y.size, size=resamples)
        value = float(spec.formula(cells.reshape(k, k).astype(np.float64)))
        values = spec.formula(draws.reshape(resamples, k, k).astype(np.float64))
        return Estimate(value, y.size, "bootstrap", draws=values)
    if spec.loss is not None:
        loss = spec.loss(y, proba)
        return Estimate(float(loss.mean()), loss.size, "t", float(loss.var(ddof=1)) / loss.size)
    assert spec.auc is not None
    found = ovr_averages(y, [proba], classes, [spec.auc])[spec.auc]
    return Estimate(found.values[0], y.size, "normal", found.variance)


def _auc(y: FloatArray, p: FloatArray) -> Estimate:
    is_pos = y == 1
    comps = auc_components(is_pos, p)
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    var = np.var(comps[is_pos], ddof=1) / n_pos if n_pos > 1 else 0.0
    var += np.var(comps[~is_pos], ddof=1) / n_neg if n_neg > 1 else 0.0
    return Estimate(float(comps[is_pos].mean()), y.size, "normal", float(var))


def _confusion(
    spec: MetricSpec, y: FloatArray, label: FloatArray, resamples: int, seed: int
) -> Estimate:
    cells = np.bincount((2 * y + label).astype(np.intp), minlength=4)
    n = int(cells.sum())
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=resamples)
    formula = CONFUSION_FORMULAS[spec.name]

    def value(c: np.ndarray) -> FloatArray:  # cells: tn, fp, fn, tp
        c = c.astype(np.float64)
        return formula(c[..., 3], c[..., 1], c[..., 2], c[..., 0])

    return Estimate(float(value(cells)), n, "bootstrap", draws=value(draws))


def _row_draws(
    spec: MetricSpec, y: FloatArray, v: FloatArray, resamples: int, seed: int
) -> FloatArray:
    centred = y - y.mean()
    sums = resampled_sums(np.column_stack([(v - y) ** 2, centred, centred**2]), resamples, seed)
    n = y.size
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant resample has no r2
        if spec.name == "rmse":
            return np.sqrt(sums[:, 0] / n)
        return 1 - sums[:, 0] / (sums[:, 2] - sums[:, 1] ** 2 / n)


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2))


def _percentile(values: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _what(spec: AnySpec, two: bool) -> str:
    pair = _BOOTSTRAPPED["confusion" if spec.needs == "label" else "rows"]
    return pair[1] if two else pair[0]


def _method(spec: AnySpec, spread: Spread, two: bool) -> str:
    """The method of a normal or t interval (the bootstrap's names what was resampled)."""
    if spread == "normal" and isinstance(spec, MulticlassSpec):
        return OVR_TWO_SAMPLE if two else OVR_ONE_SAMPLE
    return (TWO_SAMPLE if two else ONE_SAMPLE)[spread]


def interval(spec: AnySpec, found: Estimate, confidence: float) -> Interval:
    """The interval of one sample's value at ``confidence``."""
    if found.spread == "bootstrap":
        assert found.draws is not None
        low, high = _percentile(found.draws, confidence)
        method = ONE_SAMPLE["bootstrap"].format(what=_what(spec, False), b=found.draws.size)
        return Interval(found.value, low, high, method)
    if found.spread == "t":
        quantile = float(sps.t.ppf(0.5 + confidence / 2, df=max(found.rows - 1, 1)))
    else:
        quantile = _z(confidence)
    half = quantile * float(np.sqrt(found.variance))
    method = _method(spec, found.spread, two=False)
    return Interval(found.value, found.value - half, found.value + half, method)


def difference(spec: AnySpec, recent: Estimate, gate: Estimate, confidence: float) -> Interval:
    """The interval of ``recent - gate`` (two independent samples) at ``confidence``."""
    delta = recent.value - gate.value
    if recent.spread == "bootstrap":
        assert recent.draws is not None and gate.draws is not None
        low, high = _percentile(recent.draws - gate.draws, confidence)
        method = TWO_SAMPLE["bootstrap"].format(what=_what(spec, True), b=recent.draws.size)
        return Interval(delta, low, high, method)
    variance = recent.variance + gate.variance
    if recent.spread == "t":
        quantile = float(sps.t.ppf(0.5 + confidence / 2, df=_welch_df(recent, gate)))
    else:
        quantile = _z(confidence)
    half = quantile * float(np.sqrt(variance))
    return Interval(delta, delta - half, delta + half, _method(spec, recent.spread, two=True))


def _welch_df(a: Estimate, b: Estimate) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two means."""
    total = a.variance + b.variance
    parts = a.variance**2 / max(a.rows - 1, 1) + b.variance**2 / max(b.rows - 1, 1)
    return float(total**2 / parts) if parts > 0 else float(a.rows + b.rows - 2)
