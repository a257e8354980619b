"""The paired comparison of a holdout too large for memory: batches in, sufficient statistics out.

Binary classification. Each record batch (truth, candidate and production probabilities of
class 1) is reduced to statistics whose size does not depend on the number of rows:

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
    per loss and, for roc_auc, about 80 bytes per bin (80 MiB at 2^20 bins).
    """

    def __init__(
        self,
        metric_names: Iterable[str],
        threshold: float = DEFAULT_THRESHOLD,
        bins: int = DEFAULT_BINS,
    ) -> None:
        self.specs = resolve_metrics("classification", metric_names)
        names = {s.name for s in self.specs}
        self.threshold = threshold
        self.cells = np.zeros(8, dtype=np.int64)
        self.losses = {name: [0.0, 0.0] for name in ROW_LOSSES if name in names}
        self.diffs = {name: Moments() for name in self.losses}
        self.needs_second_pass = "roc_auc" in names
        self.auc = PairedBins(bins) if self.needs_second_pass else None

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
