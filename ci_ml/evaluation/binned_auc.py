"""DeLong's paired AUC comparison from score histograms, in two passes over record batches.

Pass 1 counts each model's scores by class in ``bins`` equal bins of [0, 1] (bin
floor(score·bins), 1.0 in the last) and notes which bins hold two distinct scores ("mixed").
The histograms give every row's placement value: V10 of a positive = share of negatives in
lower bins + half those in its bin, V01 of a negative likewise, so AUC = Σ_k pos_k·V10_k / m.
Pass 2 looks each row's V10 (V01) up for both models and accumulates the moments of their
difference, the paired part of DeLong's variance s²(D10)/m + s²(D01)/n.

This is exact DeLong of the scores rounded down to their bin: exact for the scores themselves
when no bin is mixed. Otherwise, per model (m positives, n negatives):

    |AUC - AUC_binned| <= Σ_mixed pos_k·neg_k / (2mn)   (a pair in one bin counts 1/2, not 0 or 1)

and a row's placement is off by at most e = half the other class's share in its mixed bin, so
(|sd(x) - sd(y)| <= ||x - y|| / √(k - 1), and se is the norm of (s10/√m, s01/√n))

    |se - se_binned| <= hypot((||e10_a|| + ||e10_b||) / √(m(m-1)),
                              (||e01_a|| + ||e01_b||) / √(n(n-1)))

The interval is delta ± (z·se + both AUC bounds + z·se bound): it contains the exact interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ci_ml.evaluation.metrics import FloatArray


@dataclass
class Moments:
    """Count, mean and centred sum of squares of a stream of values (Chan et al. 1979)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: FloatArray) -> None:
        """Merge a batch, summarised two-pass (so no Σx² - (Σx)²/n cancellation)."""
        if values.size == 0:
            return
        k, batch_mean = values.size, float(values.mean())
        batch_m2 = float(np.sum((values - batch_mean) ** 2))
        total, shift = self.n + k, batch_mean - self.mean
        self.mean += shift * k / total
        self.m2 += batch_m2 + shift * shift * self.n * k / total
        self.n = total

    def variance(self) -> float:
        """Sample variance (denominator n - 1)."""
        return self.m2 / (self.n - 1)


class ScoreBins:
    """One model's scores by class in equal bins of [0, 1], and which bins are mixed."""

    def __init__(self, bins: int) -> None:
        if bins < 1:
            raise ValueError(f"bins must be a positive number of score bins; got {bins}.")
        self.bins = bins
        self.counts = np.zeros((2, bins), dtype=np.int64)  # [negatives, positives]
        self.first = np.full(bins, np.nan)  # a score seen in the bin
        self.mixed = np.zeros(bins, dtype=bool)  # the bin has held two distinct scores

    def codes(self, score: FloatArray) -> np.ndarray:
        """Bin index of each score: floor(score * bins), 1.0 in the last bin."""
        return np.minimum((score * self.bins).astype(np.intp), self.bins - 1)

    def add(self, is_pos: np.ndarray, score: FloatArray) -> None:
        codes = self.codes(score)
        keyed = codes + self.bins * is_pos
        self.counts += np.bincount(keyed, minlength=2 * self.bins).reshape(2, self.bins)
        unseen = np.isnan(self.first[codes])
        self.first[codes[unseen]] = score[unseen]
        self.mixed[codes[score != self.first[codes]]] = True

    def placements(self) -> tuple[FloatArray, FloatArray]:
        """Per bin: V10 of a positive in it and V01 of a negative in it (ties count 1/2)."""
        neg, pos = self.counts.astype(np.float64)
        below = np.cumsum(neg) - neg
        above = pos.sum() - np.cumsum(pos)
        with np.errstate(divide="ignore", invalid="ignore"):  # one class: result() refuses
            return (below + neg / 2) / neg.sum(), (above + pos / 2) / pos.sum()

    def auc(self) -> float:
        v10, _ = self.placements()
        return float(np.dot(self.counts[1], v10) / self.counts[1].sum())

    def rounding(self) -> tuple[float, float, float]:
        """Bounds on the binning error: of the AUC, and ||e|| over positives and negatives,
        where e bounds each row's placement error (half its mixed bin's other class)."""
        neg, pos = np.where(self.mixed, self.counts, 0).astype(np.float64)
        m, n = self.counts[1].sum(), self.counts[0].sum()
        auc = float(np.dot(pos, neg) / (2 * m * n))
        norm10 = float(np.sqrt(np.dot(pos, (neg / (2 * n)) ** 2)))
        norm01 = float(np.sqrt(np.dot(neg, (pos / (2 * m)) ** 2)))
        return auc, norm10, norm01


class SparseScoreBins(ScoreBins):
    """:class:`ScoreBins` holding only the bins a score fell in (sorted), for the many small
    histograms of slices: the same bins, counts and results, memory by occupied bin."""

    def __init__(self, bins: int) -> None:
        if bins < 1:
            raise ValueError(f"bins must be a positive number of score bins; got {bins}.")
        self.bins = bins
        self.occupied = np.zeros(0, dtype=np.intp)  # the bins seen, ascending
        self.counts = np.zeros((2, 0), dtype=np.int64)
        self.first = np.zeros(0)
        self.mixed = np.zeros(0, dtype=bool)

    def codes(self, score: FloatArray) -> np.ndarray:
        """Position of each score's bin among the occupied ones (pass 2: all were seen)."""
        return np.searchsorted(self.occupied, super().codes(score))

    def add(self, is_pos: np.ndarray, score: FloatArray) -> None:
        if score.size == 0:
            return
        bins = super().codes(score)
        merged, where = np.unique(np.concatenate([self.occupied, bins]), return_inverse=True)
        old, new = where[: self.occupied.size], where[self.occupied.size :]
        counts = np.zeros((2, merged.size), dtype=np.int64)
        counts[:, old] = self.counts
        np.add.at(counts, (is_pos.astype(np.intp), new), 1)
        first = np.full(merged.size, np.nan)
        first[old] = self.first
        mixed = np.zeros(merged.size, dtype=bool)
        mixed[old] = self.mixed
        unseen = np.isnan(first[new])
        first[new[unseen]] = score[unseen]  # numpy keeps one of the repeated positions' values
        mixed[new[score != first[new]]] = True
        self.occupied, self.counts, self.first, self.mixed = merged, counts, first, mixed


@dataclass(frozen=True)
class BinnedDeLong:
    """DeLong on binned scores: AUCs, delta, se, the rounding bounds and the widened interval."""

    auc_a: float
    auc_b: float
    delta: float
    se: float
    auc_error_a: float
    auc_error_b: float
    se_error: float
    ci_low: float
    ci_high: float
    confidence: float
    bins: int

    @property
    def method(self) -> str:
        """The comparison's method string, with the rounding bound it was widened by."""
        grid = f"2^{self.bins.bit_length() - 1}" if self.bins & (self.bins - 1) == 0 else self.bins
        error = max(self.auc_error_a, self.auc_error_b)
        bound = "exact: one score per bin" if error == 0 else f"AUC within {error:.1e}; widened"
        return f"DeLong 1988 on scores in {grid} bins of [0 1] ({bound}), normal interval"


class PairedBins:
    """Both models' :class:`ScoreBins` (pass 1) and their paired placement moments (pass 2)."""

    def __init__(self, bins: int, sparse: bool = False) -> None:
        kind = SparseScoreBins if sparse else ScoreBins
        self.models = (kind(bins), kind(bins))
        self.pairs = (Moments(), Moments())  # D10 over positives, D01 over negatives
        self._tables: list[tuple[FloatArray, FloatArray]] = []
        self._seen = np.zeros(4, dtype=np.int64)  # pass 2: rows, positives, code sums a and b

    def add(self, is_pos: np.ndarray, a: FloatArray, b: FloatArray) -> None:
        """Pass 1: one batch."""
        self.models[0].add(is_pos, a)
        self.models[1].add(is_pos, b)

    def add_second(self, is_pos: np.ndarray, a: FloatArray, b: FloatArray) -> None:
        """Pass 2: the same batch again."""
        if not self._tables:
            self._tables = [model.placements() for model in self.models]
        code_a, code_b = self.models[0].codes(a), self.models[1].codes(b)
        (v10_a, v01_a), (v10_b, v01_b) = self._tables
        self.pairs[0].add(v10_a[code_a[is_pos]] - v10_b[code_b[is_pos]])
        self.pairs[1].add(v01_a[code_a[~is_pos]] - v01_b[code_b[~is_pos]])
        self._seen += [is_pos.size, int(is_pos.sum()), int(code_a.sum()), int(code_b.sum())]

    def result(self, confidence: float) -> BinnedDeLong:
        """The comparison; ValueError with fewer than 2 rows of a class or unequal passes."""
        self._check()
        m, n = (int(c) for c in self.models[0].counts[::-1].sum(axis=1))
        auc_a, auc_b = (model.auc() for model in self.models)
        se = float(np.sqrt(self.pairs[0].variance() / m + self.pairs[1].variance() / n))
        (err_a, p_a, q_a), (err_b, p_b, q_b) = (model.rounding() for model in self.models)
        se_err = float(
            np.hypot((p_a + p_b) / np.sqrt(m * (m - 1)), (q_a + q_b) / np.sqrt(n * (n - 1)))
        )
        z = float(sps.norm.ppf(0.5 + confidence / 2))
        delta, half = auc_a - auc_b, z * se + err_a + err_b + z * se_err
        return BinnedDeLong(
            auc_a, auc_b, delta, se, err_a, err_b, se_err,
            delta - half, delta + half, confidence, self.models[0].bins,
        )  # fmt: skip

    def _check(self) -> None:
        counts = self.models[0].counts
        m, n = int(counts[1].sum()), int(counts[0].sum())
        if min(m, n) < 2:
            raise ValueError("The DeLong test needs at least 2 positive and 2 negative rows.")
        sums = [
            int(model.counts.sum(axis=0) @ np.arange(model.counts.shape[1], dtype=np.int64))
            for model in self.models
        ]
        if not np.array_equal(self._seen, [m + n, m, *sums]):
            raise ValueError(
                "The second pass over the batches did not see the rows of the first (rows, "
                "classes or scores differ); feed the same batches to both passes."
            )
