"""The paired comparison of a holdout too large for memory: batches in, sufficient statistics out.

Binary classification (:class:`BinaryStream`). Each record batch (truth, candidate and
production probabilities of class 1) is reduced to statistics whose size does not depend on
the number of rows:

    accuracy precision recall f1        the 8 joint confusion counts (truth, label a, label b);
      balanced_accuracy                   the bootstrap draws from them (exact, same draws)
    log_loss brier                      per model the sum of per-row losses, and the count,
                                          mean and centred sum of squares of d = loss_a - loss_b
                                          (merged batch by batch, Chan et al.; exact)
    roc_auc                             per model and class a histogram of the scores in
                                          ``bins`` equal bins of [0, 1], and whether each bin
                                          holds more than one distinct score; a second pass
                                          over the batches accumulates the moments of the
                                          paired DeLong placement differences

DeLong on binned scores is exact DeLong on the scores rounded down to their bin; where a bin
holds one distinct score (scores on a grid of 1/bins, many ties, 0 and 1) nothing is rounded.
Otherwise the AUC of each model is within ``Σ_mixed pos_k·neg_k / (2·m·n)`` of the exact one
(m positives, n negatives; a pair in one bin counts 1/2 instead of 0 or 1) and the DeLong se
within a bound from the same histograms; the interval is widened by both, so it contains the
in-memory interval. See docs/statistics.md, "Holdouts larger than memory".

Regression (:class:`RegressionStream`): rmse, mae and r2 from the sums of the per-row squared
and absolute errors and the co-moments of (d, b, u, u², m) — d = sq_a - sq_b, b = sq_b,
u = y - shift (shift: the first batch's mean of y), m = |e_a| - |e_b| — merged batch by batch
(Chan et al.; exact to float rounding). The influence values of
:mod:`ci_ml.evaluation.regression`'s delta method are linear in those columns (the centred y²
is u² - 2ū·u + ū²), so the variance of each is gᵀ·C·g for the columns' covariance C: the
delta-method interval of rmse and r2, at every size (the in-memory comparison takes the exact
row bootstrap up to 20,000 rows), and the paired t interval of mae, as in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ci_ml.evaluation.binned_auc import Moments, PairedBins
from ci_ml.evaluation.metrics import (
    CONFUSION_FORMULAS,
    DEFAULT_THRESHOLD,
    ROW_LOSSES,
    FloatArray,
    as_vector,
    labels,
    resolve_metrics,
)
from ci_ml.evaluation.regression import DELTA_METHOD
from ci_ml.evaluation.stats import PAIRED_T, Comparison, compare_cells, joint_cells

# 2^20 bins of [0, 1]: 32 MiB of counts for both models and classes; a bin is ~1e-6 wide.
DEFAULT_BINS = 1 << 20
Batch = tuple[ArrayLike, ArrayLike, ArrayLike]
Batches = Callable[[], Iterable[Batch]]


@dataclass(frozen=True)
class _Settings:
    confidence: float
    n_resamples: int
    seed: int
    threshold: float


class BinaryStream:
    """Sufficient statistics of a binary holdout fed batch by batch (see the module doc).

    Feed every batch to :meth:`add`; if :attr:`needs_second_pass`, feed the same batches
    again to :meth:`add_second`; then :meth:`comparisons`. Memory: 8 counts, a few floats
    per loss and, for roc_auc, about 80 bytes per bin (80 MiB at 2^20 bins; ``sparse``: per
    bin a score fell in, as a slice's few rows need).
    """

    def __init__(
        self,
        metric_names: Iterable[str],
        threshold: float = DEFAULT_THRESHOLD,
        bins: int = DEFAULT_BINS,
        sparse: bool = False,
    ) -> None:
        self.specs = resolve_metrics("classification", metric_names)
        names = {s.name for s in self.specs}
        self.threshold = threshold
        self.cells = np.zeros(8, dtype=np.int64)
        self.losses = {name: [0.0, 0.0] for name in ROW_LOSSES if name in names}
        self.diffs = {name: Moments() for name in self.losses}
        self.needs_second_pass = "roc_auc" in names
        self.auc = PairedBins(bins, sparse) if self.needs_second_pass else None

    def add(self, y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> None:
        """First pass: one batch of truth and both models' probabilities of class 1."""
        yv, a, b = checked_batch(y, cand, prod)
        t = self.threshold
        self.cells += joint_cells(yv, labels(a, t), labels(b, t))
        for name, sums in self.losses.items():
            loss_a, loss_b = ROW_LOSSES[name](yv, a), ROW_LOSSES[name](yv, b)
            sums[0] += float(loss_a.sum())
            sums[1] += float(loss_b.sum())
            self.diffs[name].add(loss_a - loss_b)
        if self.auc is not None:
            self.auc.add(yv == 1, a, b)

    def add_second(self, y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> None:
        """Second pass (roc_auc only): the same batches again, for DeLong's paired part."""
        yv, a, b = checked_batch(y, cand, prod)
        if self.auc is not None:
            self.auc.add_second(yv == 1, a, b)

    def comparisons(
        self, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
    ) -> dict[str, Comparison]:
        """One :class:`Comparison` per metric, as :func:`ci_ml.evaluation.stats.compare`."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95); got {confidence}.")
        if n_resamples < 1:
            raise ValueError(f"n_resamples must be at least 1; got {n_resamples}.")
        self._check_classes()
        settings = _Settings(confidence, n_resamples, seed, self.threshold)
        label_specs = [s for s in self.specs if s.name in CONFUSION_FORMULAS]
        out = compare_cells(label_specs, self.cells, confidence, n_resamples, seed)
        out.update({name: self._paired_t(name, settings) for name in self.losses})
        if self.needs_second_pass:
            out["roc_auc"] = self._delong(settings)
        return {spec.name: out[spec.name] for spec in self.specs}

    def _check_classes(self) -> None:
        n, n_pos = int(self.cells.sum()), int(self.cells[4:].sum())
        if n_pos == 0 or n_pos == n:
            raise ValueError(
                "The streamed y_true holds only one class; classification metrics need "
                "both 0 and 1 rows."
            )

    def _paired_t(self, name: str, settings: _Settings) -> Comparison:
        diff = self.diffs[name]
        value_a, value_b = (total / diff.n for total in self.losses[name])
        quantile = float(sps.t.ppf(0.5 + settings.confidence / 2, df=diff.n - 1))
        half = quantile * float(np.sqrt(diff.variance())) / float(np.sqrt(diff.n))
        delta = value_a - value_b
        return Comparison(
            name, value_a, value_b, delta, delta - half, delta + half,
            settings.confidence, PAIRED_T, diff.n,
        )  # fmt: skip

    def _delong(self, settings: _Settings) -> Comparison:
        assert self.auc is not None  # only asked for when roc_auc is
        res = self.auc.result(settings.confidence)
        return Comparison(
            "roc_auc", res.auc_a, res.auc_b, res.delta, res.ci_low, res.ci_high,
            settings.confidence, res.method, int(self.cells.sum()),
        )  # fmt: skip


class CoMoments:
    """Count, means and centred cross-product sums of a stream of k-column rows (Chan et al.)."""

    def __init__(self, k: int) -> None:
        self.n = 0
        self.mean = np.zeros(k)
        self.m2 = np.zeros((k, k))

    def add(self, rows: FloatArray) -> None:
        """Merge a batch of shape (rows, k), centred on its own mean first."""
        if rows.shape[0] == 0:
            return
        size, batch_mean = rows.shape[0], rows.mean(axis=0)
        centred = rows - batch_mean
        total, shift = self.n + size, batch_mean - self.mean
        self.m2 += centred.T @ centred + np.outer(shift, shift) * (self.n * size / total)
        self.mean = self.mean + shift * (size / total)
        self.n = total

    def covariance(self) -> FloatArray:
        """Sample covariance matrix (denominator n - 1)."""
        return self.m2 / (self.n - 1)


D, B, U, U2, M = range(5)  # the co-moment columns of RegressionStream (see the module doc)


class RegressionStream:
    """Sufficient statistics of a regression holdout fed batch by batch (see the module doc).

    Feed every batch of (truth, candidate, production) values to :meth:`add`, then
    :meth:`comparisons`; one pass (:attr:`needs_second_pass` is False). Memory: a few floats.
    """

    needs_second_pass = False

    def __init__(self, metric_names: Iterable[str]) -> None:
        self.specs = resolve_metrics("regression", metric_names)
        self.sums = np.zeros(4)  # Σ sq_a, Σ sq_b, Σ |e_a|, Σ |e_b|
        self.moments = CoMoments(5)
        self.shift: float | None = None

    def add(self, y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> None:
        """One batch of truth and both models' predicted values."""
        yv, a, b = checked_values(y, cand, prod)
        if self.shift is None:
            self.shift = float(yv.mean())  # near the mean: u² keeps its digits
        err_a, err_b = a - yv, b - yv
        sq_a, sq_b, abs_a, abs_b = err_a**2, err_b**2, np.abs(err_a), np.abs(err_b)
        self.sums += [sq_a.sum(), sq_b.sum(), abs_a.sum(), abs_b.sum()]
        u = yv - self.shift
        self.moments.add(np.column_stack([sq_a - sq_b, sq_b, u, u**2, abs_a - abs_b]))

    def add_second(self, y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> None:
        """No second pass is needed (the interface of :class:`BinaryStream`)."""

    def comparisons(
        self, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
    ) -> dict[str, Comparison]:
        """One :class:`Comparison` per metric: rmse and r2 by the delta method (always),
        mae by the paired t interval; ``n_resamples`` and ``seed`` are not used."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95); got {confidence}.")
        n = self.moments.n
        if n < 2:
            raise ValueError("A comparison needs at least 2 rows.")
        values = self.values()
        cov = self.moments.covariance()
        z = float(sps.norm.ppf(0.5 + confidence / 2))
        out = {}
        for spec in self.specs:
            value_a, value_b = values[spec.name]
            delta = value_a - value_b
            if spec.name == "mae":
                quantile, method = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1)), PAIRED_T
                half = quantile * float(np.sqrt(cov[M, M])) / float(np.sqrt(n))
            else:
                g = self._gradient(spec.name, delta)
                se = float(np.sqrt(max(0.0, float(g @ cov @ g)))) / float(np.sqrt(n))
                half, method = z * se, DELTA_METHOD
            out[spec.name] = Comparison(
                spec.name, value_a, value_b, delta, delta - half, delta + half,
                confidence, method, n,
            )  # fmt: skip
        return out

    def values(self) -> dict[str, tuple[float, float]]:
        """Both models' value of each metric; ValueError for r2 when y is constant."""
        n = self.moments.n
        sq_a, sq_b, abs_a, abs_b = (float(s) / n for s in self.sums)
        out = {"rmse": (float(np.sqrt(sq_a)), float(np.sqrt(sq_b))), "mae": (abs_a, abs_b)}
        if any(spec.name == "r2" for spec in self.specs):
            sst = float(self.moments.m2[U, U])
            if sst == 0:
                raise ValueError(
                    "r2 is undefined when y_true is constant; use rmse or mae instead."
                )
            out["r2"] = (1 - float(self.sums[0]) / sst, 1 - float(self.sums[1]) / sst)
        return {spec.name: out[spec.name] for spec in self.specs}

    def _gradient(self, name: str, delta: float) -> FloatArray:
        """g with influence φ_i = g · (row i's columns - their means), as regression.py's."""
        n, g = self.moments.n, np.zeros(5)
        if name == "rmse":  # φ = c_a (sq_a - A) - c_b (sq_b - B), sq_a = d + sq_b
            c_a, c_b = (_root_slope(float(s) / n) for s in self.sums[:2])
            g[D], g[B] = c_a, c_a - c_b
        else:  # r2: φ = (-(d - D) - Δ (q - S)) / S, q = (y - ȳ)² = u² - 2ū u + ū²
            s = float(self.moments.m2[U, U]) / n
            g[D], g[U], g[U2] = -1 / s, 2 * delta * float(self.moments.mean[U]) / s, -delta / s
        return g


def _root_slope(mean: float) -> float:
    """d√x/dx at the mean squared error; 0 for a perfect model (its rmse does not vary)."""
    return 0.0 if mean == 0 else 1 / (2 * float(np.sqrt(mean)))


def checked_values(y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> list[FloatArray]:
    """One regression batch as float arrays; ValueError for NaN or unequal lengths."""
    arrays = [as_vector(name, v) for name, v in (("y_true", y), ("cand", cand), ("prod", prod))]
    if len({a.size for a in arrays}) != 1:
        sizes = ", ".join(str(a.size) for a in arrays)
        raise ValueError(f"y_true and predictions must have the same length; got {sizes}.")
    return arrays


def checked_batch(y: ArrayLike, cand: ArrayLike, prod: ArrayLike) -> list[FloatArray]:
    """One batch as float arrays; ValueError for NaN, unequal lengths, a y other than 0/1
    or a probability outside [0, 1] (a batch may hold one class only)."""
    arrays = [as_vector(name, v) for name, v in (("y_true", y), ("cand", cand), ("prod", prod))]
    if len({a.size for a in arrays}) != 1:
        sizes = ", ".join(str(a.size) for a in arrays)
        raise ValueError(f"y_true and predictions must have the same length; got {sizes}.")
    yv = arrays[0]
    if not np.all((yv == 0) | (yv == 1)):
        raise ValueError("Classification y_true must hold only 0 and 1 (positive class = 1).")
    if any(p.min() < 0 or p.max() > 1 for p in arrays[1:]):
        raise ValueError(
            "Classification predictions must be probabilities of class 1, within [0, 1]."
        )
    return arrays


def compare_stream(
    metric_names: Iterable[str],
    batches: Batches,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> dict[str, Comparison]:
    """Binary comparison of a holdout given as record batches; ``batches()`` yields
    ``(y_true, cand, prod)`` and is called twice when roc_auc is asked for (the same rows)."""
    stream = BinaryStream(metric_names, threshold, bins)
    _feed(stream.add, batches())
    if stream.needs_second_pass:
        _feed(stream.add_second, batches())
    return stream.comparisons(confidence, n_resamples, seed)


def _feed(add: Callable[[ArrayLike, ArrayLike, ArrayLike], None], batches: Iterable[Batch]) -> None:
    for y, cand, prod in batches:
        if np.size(y):  # a reader may yield an empty batch
            add(y, cand, prod)
