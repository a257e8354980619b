"""Multiclass classification metrics and their paired intervals (candidate vs production).

Input convention: ``y`` holds class indices 0..K-1 (K = ``len(classes)`` >= 3); a model is
given as its (n, K) class probabilities, columns in the order of ``classes``, each row
summing to 1 within 1e-6. The predicted label is the argmax (the first of tied maxima, as
numpy and sklearn). Bad arrays raise :class:`ValueError` with one sentence; an unknown
metric or class raises :class:`ci_ml.errors.ConfigError`.

Metrics (equal to ``sklearn.metrics`` with ``labels=range(K)``, ``zero_division=0``) and the
method of their paired interval:

    accuracy balanced_accuracy                   paired bootstrap on the K×K×K joint
    {f1,precision,recall}_{macro,micro,weighted}   confusion counts (truth, candidate label,
    {f1,precision,recall}[<class>]                 production label), percentile
    log_loss brier                               paired t interval on per-row differences
    roc_auc_ovr roc_auc_ovr_weighted             K one-vs-rest DeLong problems, covariance
    roc_auc[<class>]                               across classes from per-row influence
                                                   values, normal interval

``roc_auc`` means ``roc_auc_ovr``; plain ``f1``, ``precision`` and ``recall`` are refused
(which average?). The report's confusion counts: :func:`confusion_matrix`.
The AUC averages and their variance live in :mod:`ci_ml.evaluation.ovr`. Formulas:
docs/statistics.md, "Multiclass".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy import stats as sps

from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import FloatArray, Needs, _ratio
from ci_ml.evaluation.ovr import AucAverage, IntArray, ovr_averages
from ci_ml.evaluation.stats import PAIRED_T, Comparison, _check_confidence, _percentile_interval

Family = Literal["confusion", "loss", "auc"]
CountFormula = Callable[[FloatArray], FloatArray]  # confusion counts (..., K, K) -> (...)
RowLoss = Callable[[IntArray, FloatArray], FloatArray]

# Largest number of drawn cell counts the joint-count bootstrap holds at once (int64: 32 MiB).
MAX_DRAWN_CELLS = 1 << 22
ROW_SUM_TOLERANCE = 1e-6
EPS = np.finfo(np.float64).eps  # probabilities clipped to [EPS, 1 - EPS], as sklearn
PER_CLASS_METRICS = ("recall", "precision", "f1", "roc_auc")
CONFUSION_METHOD = "paired bootstrap on joint {k}×{k}×{k} confusion counts, percentile, B={b}"
OVR_METHOD = (
    "one-vs-rest DeLong per class, covariance across classes from per-row influence values, "
    "normal interval"
)
ONE_CLASS_METHOD = "DeLong 1988 on the class vs the rest, normal interval"


@dataclass(frozen=True)
class MulticlassSpec:
    """One multiclass metric: its name, direction, what it needs, and how it is computed.

    Exactly one of ``formula`` (family "confusion"), ``loss`` ("loss") and ``auc``
    ("auc": "macro", "weighted" or the index of one class) is set.
    """

    name: str
    higher_is_better: bool
    needs: Needs
    family: Family
    formula: CountFormula | None = None
    loss: RowLoss | None = None
    auc: AucAverage | None = None


# ------------------------------------------------------- confusion-count formulas


def _per_class(conf: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(tp, rows of the class, rows labelled the class) of counts (..., K, K), truth × label."""
    return np.diagonal(conf, axis1=-2, axis2=-1), conf.sum(axis=-1), conf.sum(axis=-2)


PER_CLASS: dict[str, Callable[[FloatArray, FloatArray, FloatArray], FloatArray]] = {
    "f1": lambda tp, true, pred: _ratio(2 * tp, true + pred),
    "precision": lambda tp, true, pred: _ratio(tp, pred),
    "recall": lambda tp, true, pred: _ratio(tp, true),
}
# from per-class values, tp and class sizes to the average; micro is Σtp / n for all three,
# since every row is counted once as a truth and once as a label
AVERAGES: dict[str, Callable[[FloatArray, FloatArray, FloatArray], FloatArray]] = {
    "macro": lambda values, tp, true: values.mean(axis=-1),
    "micro": lambda values, tp, true: tp.sum(axis=-1) / true.sum(axis=-1),
    "weighted": lambda values, tp, true: (values * true).sum(axis=-1) / true.sum(axis=-1),
}


def _accuracy(conf: FloatArray) -> FloatArray:
    tp, true, _ = _per_class(conf)
    return tp.sum(axis=-1) / true.sum(axis=-1)


def _balanced_accuracy(conf: FloatArray) -> FloatArray:
    """Mean recall over the classes that have rows (as sklearn's balanced_accuracy_score)."""
    tp, true, _ = _per_class(conf)
    return _ratio(_ratio(tp, true).sum(axis=-1), (true > 0).sum(axis=-1))


def _averaged(metric: str, average: str) -> CountFormula:
    per_class, combine = PER_CLASS[metric], AVERAGES[average]

    def formula(conf: FloatArray) -> FloatArray:
        tp, true, pred = _per_class(conf)
        return combine(per_class(tp, true, pred), tp, true)

    return formula


def _of_class(metric: str, k: int) -> CountFormula:
    per_class = PER_CLASS[metric]
    return lambda conf: per_class(*_per_class(conf))[..., k]


# ------------------------------------------------------------- per-row losses


def _log_loss_rows(y: IntArray, proba: FloatArray) -> FloatArray:
    return -np.log(np.clip(proba[np.arange(y.size), y], EPS, 1 - EPS))


def _brier_rows(y: IntArray, proba: FloatArray) -> FloatArray:
    """Σ_k (p_k − 1[y = k])², not halved (sklearn's brier_score_loss for 3+ classes)."""
    diff = proba.copy()
    diff[np.arange(y.size), y] -= 1
    return np.einsum("ij,ij->i", diff, diff)


ROW_LOSSES: dict[str, RowLoss] = {"log_loss": _log_loss_rows, "brier": _brier_rows}


# ---------------------------------------------------------------- the table


def _label(name: str, formula: CountFormula) -> MulticlassSpec:
    return MulticlassSpec(name, True, "label", "confusion", formula=formula)


def _auc(name: str, average: AucAverage) -> MulticlassSpec:
    return MulticlassSpec(name, True, "proba", "auc", auc=average)


MULTICLASS_METRICS: dict[str, MulticlassSpec] = {
    spec.name: spec
    for spec in [
        _label("accuracy", _accuracy),
        _label("balanced_accuracy", _balanced_accuracy),
        *(_label(f"{m}_{a}", _averaged(m, a)) for m in PER_CLASS for a in AVERAGES),
        *(MulticlassSpec(n, False, "proba", "loss", loss=fn) for n, fn in ROW_LOSSES.items()),
        _auc("roc_auc_ovr", "macro"),
        _auc("roc_auc_ovr_weighted", "weighted"),
        _auc("roc_auc", "macro"),
    ]
}


# every name allowed with 3+ classes, for error messages
MULTICLASS_HINT = ", ".join([*MULTICLASS_METRICS, *(f"{m}[<class>]" for m in PER_CLASS_METRICS)])


def is_per_class(name: str) -> bool:
    """Whether ``name`` has the per-class form ``metric[<class>]`` (the class is not checked)."""
    metric, bracket, rest = name.partition("[")
    return bool(bracket) and rest.endswith("]") and metric in PER_CLASS_METRICS


def is_multiclass_name(name: str) -> bool:
    """Whether ``name`` is a multiclass metric for some classes: a fixed or per-class name."""
    return name in MULTICLASS_METRICS or is_per_class(name)


def multiclass_spec(name: str, classes: Sequence[str]) -> MulticlassSpec:
    """The metric called ``name`` for ``classes``; ConfigError for an unknown metric or class."""
    if name in MULTICLASS_METRICS:
        return MULTICLASS_METRICS[name]
    names = [str(c) for c in classes]
    metric, _, rest = name.partition("[")
    if is_per_class(name):
        if rest[:-1] not in names:
            raise ConfigError(
                f"Unknown class {rest[:-1]!r} in metric {name!r}; classes: {', '.join(names)}."
            )
        k = names.index(rest[:-1])
        if metric == "roc_auc":
            return _auc(name, k)
        return _label(name, _of_class(metric, k))
    if name in PER_CLASS:
        raise ConfigError(
            f"Metric {name!r} needs an average with {len(names)} classes; use {name}_macro, "
            f"{name}_micro, {name}_weighted or {name}[<class>] (classes: {', '.join(names)})."
        )
    raise ConfigError(
        f"Unknown multiclass metric {name!r}; allowed: {MULTICLASS_HINT} "
        f"(classes: {', '.join(names)})."
    )


def resolve_multiclass(names: Iterable[str], classes: Sequence[str]) -> list[MulticlassSpec]:
    """:func:`multiclass_spec` of each name, duplicates dropped; ConfigError for none."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise ConfigError(f"No metric given; choose from: {', '.join(MULTICLASS_METRICS)}.")
    return [multiclass_spec(name, classes) for name in wanted]


# ---------------------------------------------------------------- input checks


def check_classes(classes: Sequence[object]) -> list[str]:
    """The class names as strings; ValueError for fewer than 3 or a repeated name."""
    names = [str(c) for c in classes]
    if len(names) < 3:
        raise ValueError(
            f"Multiclass metrics need at least 3 classes; got {len(names)} ({', '.join(names)}); "
            "use the binary metrics for two classes."
        )
    if len(set(names)) < len(names):
        twice = next(c for c in names if names.count(c) > 1)
        raise ValueError(f"Class names must be unique; {twice!r} appears more than once.")
    return names


def check_multiclass(
    y: ArrayLike, proba: ArrayLike, classes: Sequence[str]
) -> tuple[IntArray, FloatArray]:
    """Validate class indices and one model's (n, K) probabilities; return them as arrays."""
    indices, (checked,) = _check_named(y, {"proba": proba}, classes)
    return indices, checked


def _check_named(
    y: ArrayLike, probas: Mapping[str, ArrayLike], classes: Sequence[str]
) -> tuple[IntArray, list[FloatArray]]:
    """Validate the class indices and each named (n, K) probability array; return them."""
    names = check_classes(classes)
    indices = _class_indices(y, names)
    return indices, [check_proba(n, p, indices.size, len(names)) for n, p in probas.items()]


def _class_indices(y: ArrayLike, classes: list[str]) -> IntArray:
    array, k = np.asarray(y), len(classes)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"y must be a non-empty 1-d array of class indices; got {array.shape}.")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"y must hold class indices 0..{k - 1}; got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("y holds NaN or infinite values; drop those rows first.")
    bad = array[(array < 0) | (array >= k) | (array != np.round(array))]
    if bad.size:
        raise ValueError(
            f"y holds {bad[0]}, not a class index 0..{k - 1} of the classes {', '.join(classes)}."
        )
    return array.astype(np.intp)


def check_proba(name: str, proba: ArrayLike, n: int | None, k: int) -> FloatArray:
    """``proba`` as float64 of shape (n, K) (any n > 0 if None), in [0, 1], rows summing to 1."""
    array = np.asarray(proba, dtype=np.float64)
    rows = array.shape[0] if array.ndim == 2 else 0
    if array.ndim != 2 or array.shape[1] != k or rows == 0 or rows != (n or rows):
        raise ValueError(
            f"{name} must have shape (n, K) = ({n or 'n'}, {k}), one column per class; "
            f"got {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values; drop or impute them first.")
    if array.min() < 0 or array.max() > 1:
        outside = array.min() if array.min() < 0 else array.max()
        raise ValueError(f"{name} must hold probabilities within [0, 1]; found {outside}.")
    sums = array.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOLERANCE)
    if off.size:
        raise ValueError(
            f"{name} row {off[0]} sums to {sums[off[0]]:.9g}, not 1 (within 1e-6); pass class "
            "probabilities (predict_proba), not scores."
        )
    return array


# ---------------------------------------------------------------- one model


def confusion_matrix(y: ArrayLike, label: ArrayLike, k: int) -> NDArray[np.int64]:
    """K×K counts, truth × label, of class indices 0..K-1."""
    cells = np.asarray(y, dtype=np.intp) * k + np.asarray(label, dtype=np.intp)
    return np.bincount(cells, minlength=k * k).reshape(k, k)


def evaluate_multiclass(
    names: Iterable[str], y: ArrayLike, proba: ArrayLike, classes: Sequence[str]
) -> dict[str, float]:
    """Metric values of one model, keyed by metric name."""
    specs = resolve_multiclass(names, classes)
    indices, p = check_multiclass(y, proba, classes)
    k = len(classes)
    conf = confusion_matrix(indices, p.argmax(axis=1), k).astype(np.float64)
    averages = {s.name: _average(s) for s in specs if s.family == "auc"}
    aucs = ovr_averages(indices, [p], classes, averages.values()) if averages else {}
    out = {}
    for spec in specs:
        if spec.formula is not None:
            out[spec.name] = float(spec.formula(conf))
        elif spec.loss is not None:
            out[spec.name] = float(spec.loss(indices, p).mean())
        else:
            out[spec.name] = aucs[averages[spec.name]].values[0]
    return out


# ---------------------------------------------------------------- paired comparison


@dataclass(frozen=True)
class _Inputs:
    y: IntArray
    cand: FloatArray
    prod: FloatArray
    classes: list[str]
    confidence: float
    n_resamples: int
    seed: int


def _result(
    spec: MulticlassSpec,
    inp: _Inputs,
    values: tuple[float, float],
    interval: tuple[float, float],
    method: str,
) -> Comparison:
    (cand, prod), (low, high) = values, interval
    return Comparison(
        spec.name, cand, prod, cand - prod, low, high, inp.confidence, method, inp.y.size
    )


def joint_cells(y: IntArray, label_a: IntArray, label_b: IntArray, k: int) -> NDArray[np.int64]:
    """Counts of the K³ joint cells (truth, label a, label b), index K²·y + K·a + b."""
    return np.bincount((y * k + label_a) * k + label_b, minlength=k**3)


def joint_count_deltas(
    cells: NDArray[np.int64], k: int, formulas: Sequence[CountFormula], resamples: int, seed: int
) -> FloatArray:
    """``formula(a) − formula(b)`` on ``resamples`` bootstrap draws of the joint cells, (F, B).

    A row resample is a multinomial draw of n over the cells with probabilities count / n;
    only the non-empty cells are drawn (the others have probability 0). Draws are made in
    chunks of at most :data:`MAX_DRAWN_CELLS` counts from one generator, so the chunk size
    does not change them, and each chunk is summed into both models' K×K confusion counts.
    """
    filled = np.flatnonzero(cells)
    n = int(cells.sum())
    truth, label_a, label_b = filled // (k * k), filled // k % k, filled % k
    to_a, to_b = (_one_hot(truth * k + label, k * k) for label in (label_a, label_b))
    shares = cells[filled] / n
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, MAX_DRAWN_CELLS // max(filled.size, k * k)))
    deltas = np.empty((len(formulas), resamples))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.multinomial(n, shares, size=size)
        conf_a, conf_b = ((draws @ m).reshape(size, k, k).astype(np.float64) for m in (to_a, to_b))
        for row, formula in zip(deltas, formulas, strict=True):
            row[start : start + size] = formula(conf_a) - formula(conf_b)
    return deltas


def _one_hot(columns: IntArray, width: int) -> sparse.csr_array:
    rows = np.arange(columns.size)
    return sparse.csr_array((np.ones(columns.size, np.int64), (rows, columns)), (rows.size, width))


def _compare_confusion(specs: list[MulticlassSpec], inp: _Inputs) -> dict[str, Comparison]:
    k = len(inp.classes)
    cells = joint_cells(inp.y, inp.cand.argmax(axis=1), inp.prod.argmax(axis=1), k)
    by_model = cells.reshape(k, k, k)
    conf_a, conf_b = (by_model.sum(axis=axis).astype(np.float64) for axis in (2, 1))
    formulas = [s.formula for s in specs if s.formula is not None]
    deltas = joint_count_deltas(cells, k, formulas, inp.n_resamples, inp.seed)
    method = CONFUSION_METHOD.format(k=k, b=inp.n_resamples)
    return {
        spec.name: _result(
            spec,
            inp,
            (float(formula(conf_a)), float(formula(conf_b))),
            _percentile_interval(row, inp.confidence),
            method,
        )
        for spec, formula, row in zip(specs, formulas, deltas, strict=True)
    }


def _compare_losses(specs: list[MulticlassSpec], inp: _Inputs) -> dict[str, Comparison]:
    n = inp.y.size
    quantile = float(sps.t.ppf(0.5 + inp.confidence / 2, df=n - 1))
    out = {}
    for spec in specs:
        assert spec.loss is not None
        loss_a, loss_b = spec.loss(inp.y, inp.cand), spec.loss(inp.y, inp.prod)
        value_a, value_b = float(loss_a.mean()), float(loss_b.mean())
        half = quantile * float((loss_a - loss_b).std(ddof=1)) / float(np.sqrt(n))
        delta = value_a - value_b
        out[spec.name] = _result(
            spec, inp, (value_a, value_b), (delta - half, delta + half), PAIRED_T
        )
    return out


def _compare_aucs(specs: list[MulticlassSpec], inp: _Inputs) -> dict[str, Comparison]:
    z = float(sps.norm.ppf(0.5 + inp.confidence / 2))
    averages = [_average(s) for s in specs]
    found = ovr_averages(inp.y, [inp.cand, inp.prod], inp.classes, averages, min_rows=2)
    out = {}
    for spec, average in zip(specs, averages, strict=True):
        values, se = found[average].values, float(np.sqrt(found[average].variance))
        delta = values[0] - values[1]
        interval = (delta - z * se, delta + z * se)
        method = ONE_CLASS_METHOD if isinstance(average, int) else OVR_METHOD
        out[spec.name] = _result(spec, inp, (values[0], values[1]), interval, method)
    return out


def _average(spec: MulticlassSpec) -> AucAverage:
    assert spec.auc is not None, spec.name
    return spec.auc


_Comparator = Callable[[list[MulticlassSpec], _Inputs], dict[str, Comparison]]
_COMPARATOR_OF: dict[Family, _Comparator] = {
    "confusion": _compare_confusion,
    "loss": _compare_losses,
    "auc": _compare_aucs,
}


def compare_multiclass(
    names: Iterable[str],
    y: ArrayLike,
    cand_proba: ArrayLike,
    prod_proba: ArrayLike,
    classes: Sequence[str],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Compare candidate and production on the same rows; one Comparison per metric.

    ``delta = candidate − production`` whatever the metric's direction. Each bootstrap
    family starts from ``np.random.default_rng(seed)``. Unknown metric or class ->
    ConfigError; bad arrays, or a class an AUC needs with fewer than 2 rows -> ValueError.
    """
    specs = resolve_multiclass(names, classes)
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}.")
    y_idx, (a, b) = _check_named(y, {"cand_proba": cand_proba, "prod_proba": prod_proba}, classes)
    if y_idx.size < 2:
        raise ValueError("A comparison needs at least 2 rows.")
    inp = _Inputs(y_idx, a, b, check_classes(classes), confidence, n_resamples, seed)
    groups: dict[Family, list[MulticlassSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.family, []).append(spec)
    results: dict[str, Comparison] = {}
    for family, group in groups.items():
        results.update(_COMPARATOR_OF[family](group, inp))
    return {spec.name: results[spec.name] for spec in specs}
