"""Paired intervals for rmse and r2: the exact row bootstrap on small holdouts, the delta method on
large ones.

rmse (a square root of a mean) and r2 (a ratio) are smooth functions of the means of four per-row
columns: the squared errors of both models and the centred truth and its square. Below
:data:`EXACT_BOOTSTRAP_MAX_ROWS` rows they get the paired row bootstrap (multinomial weights,
O(B·n)); above it the delta method on those means (O(n), no resampling). The point values are
the metric functions of :mod:`ci_ml.evaluation.metrics` either way; only the interval differs.
See ``docs/statistics.md`` for the formulas and why the threshold is where it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from ci_ml.evaluation.metrics import METRICS, FloatArray

# At n rows and B resamples the exact bootstrap draws B·n weights: 0.9 s at 20,000 rows and
# B = 2000 on a shared 2-core machine, 24-54 s at 1M. Both estimate the same first-order
# variance; already at 2,000 rows their se agree within 3% (docs/statistics.md), so above
# 20,000 rows the exact bootstrap would buy nothing but time.
EXACT_BOOTSTRAP_MAX_ROWS = 20_000
# Largest number of multinomial weights the row bootstrap holds at once (float64: 32 MiB).
MAX_WEIGHTS_PER_CHUNK = 1 << 22
DELTA_METHOD = "delta method on per-row squared errors, normal interval"
SUMS_METRICS = ("rmse", "r2")

Method = Literal["auto", "bootstrap", "delta"]


@dataclass(frozen=True)
class PairedInterval:
    """Both models' values of one metric and the interval of candidate - production."""

    candidate: float
    production: float
    ci_low: float
    ci_high: float


def paired_intervals(
    names: Iterable[str],
    y: FloatArray,
    cand: FloatArray,
    prod: FloatArray,
    *,
    confidence: float,
    n_resamples: int,
    seed: int,
    method: Method = "auto",
) -> tuple[dict[str, PairedInterval], str]:
    """Values and paired intervals of rmse and/or r2, and the method string used.

    ``method="auto"`` takes the exact bootstrap up to :data:`EXACT_BOOTSTRAP_MAX_ROWS` rows and
    the delta method above; "bootstrap" or "delta" force one. Inputs are checked arrays.
    """
    wanted = list(names)
    values = {n: (METRICS[n].function(y, cand), METRICS[n].function(y, prod)) for n in wanted}
    columns = sum_columns(y, cand, prod)
    if method == "auto":
        method = "bootstrap" if y.size <= EXACT_BOOTSTRAP_MAX_ROWS else "delta"
    if method == "bootstrap":
        deltas = bootstrap_deltas(wanted, columns, n_resamples, seed)
        bounds = {n: _percentile_interval(deltas[n], confidence) for n in wanted}
        label = f"paired row bootstrap (multinomial weights), percentile, B={n_resamples}"
    else:
        z = float(sps.norm.ppf(0.5 + confidence / 2))
        ses = delta_method_se(wanted, columns)
        bounds = {n: _normal_interval(values[n][0] - values[n][1], z * ses[n]) for n in wanted}
        label = DELTA_METHOD
    out = {n: PairedInterval(*values[n], *bounds[n]) for n in wanted}
    return out, label


def sum_columns(y: FloatArray, cand: FloatArray, prod: FloatArray) -> FloatArray:
    """Per-row (sq_a, sq_b, y_c, y_c²), shape (n, 4); y_c = y - mean(y) avoids cancellation."""
    centred = y - y.mean()
    return np.column_stack([(cand - y) ** 2, (prod - y) ** 2, centred, centred**2])


# ------------------------------------------------------------- exact row bootstrap


def resampled_sums(columns: FloatArray, n_resamples: int, seed: int) -> FloatArray:
    """Column sums of ``n_resamples`` row resamples (with replacement), shape (B, k).

    Each resample is a multinomial weight vector (how often each of the n uniform row
    draws hit each row). Weights are held for at most :data:`MAX_WEIGHTS_PER_CHUNK` cells
    at a time, so memory stays bounded, and summed as ``weights @ columns``. The chunk
    size does not change the resamples (only float rounding). Time is O(B * n).
    """
    n = columns.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, MAX_WEIGHTS_PER_CHUNK // n))
    weights = np.empty((chunk, n))
    sums = np.empty((n_resamples, columns.shape[1]))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        for row in weights[:size]:  # one resample at a time: n counters stay in cache
            row[:] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        sums[start : start + size] = weights[:size] @ columns
    return sums


# From column sums (sq_a, sq_b, y centred, y centred squared) to (metric a, metric b).
_FROM_SUMS: dict[str, Callable[[FloatArray, int], tuple[FloatArray, FloatArray]]] = {
    "rmse": lambda s, n: (np.sqrt(s[..., 0] / n), np.sqrt(s[..., 1] / n)),
    "r2": lambda s, n: (
        1 - s[..., 0] / (s[..., 3] - s[..., 2] ** 2 / n),
        1 - s[..., 1] / (s[..., 3] - s[..., 2] ** 2 / n),
    ),
}


def bootstrap_deltas(
    names: list[str], columns: FloatArray, n_resamples: int, seed: int
) -> dict[str, FloatArray]:
    """The B resampled deltas (candidate - production) of each metric, from one set of sums."""
    sums = resampled_sums(columns, n_resamples, seed)
    out = {}
    for name in names:
        with np.errstate(divide="ignore", invalid="ignore"):  # SST = 0 resamples -> nan
            boot_a, boot_b = _FROM_SUMS[name](sums, columns.shape[0])
        out[name] = boot_a - boot_b
    return out


def _percentile_interval(deltas: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(deltas, [tail, 1 - tail])
    return float(low), float(high)


# ------------------------------------------------------------------ delta method


def delta_method_se(names: list[str], columns: FloatArray) -> dict[str, float]:
    """Delta-method standard error of each metric's delta: sd(influence values) / √n."""
    n = columns.shape[0]
    return {
        name: float(_INFLUENCE[name](columns).std(ddof=1)) / float(np.sqrt(n)) for name in names
    }


def _rmse_influence(columns: FloatArray) -> FloatArray:
    """φ_i = (a_i - A) / (2√A) - (b_i - B) / (2√B): the gradient of √A - √B times the row's
    deviation from the means A, B of the squared errors."""
    return _root_slope(columns[:, 0]) - _root_slope(columns[:, 1])


def _root_slope(sq: FloatArray) -> FloatArray:
    mean = float(sq.mean())
    if mean == 0:  # a perfect model: every row is 0, its rmse does not vary
        return np.zeros_like(sq)
    return (sq - mean) / (2 * np.sqrt(mean))


def _r2_influence(columns: FloatArray) -> FloatArray:
    """Δr2 = (B - A) / S with S = mean y_c²: φ_i = ((b_i - B) - (a_i - A) - Δ·(y_c,i² - S)) / S.

    Estimating mean(y) inside S adds nothing to first order (the mean of y_c is 0).
    """
    a, b, sq_centred = columns[:, 0], columns[:, 1], columns[:, 3]
    mean_a, mean_b, s = float(a.mean()), float(b.mean()), float(sq_centred.mean())
    delta = (mean_b - mean_a) / s
    return ((b - mean_b) - (a - mean_a) - delta * (sq_centred - s)) / s


_INFLUENCE: dict[str, Callable[[FloatArray], FloatArray]] = {
    "rmse": _rmse_influence,
    "r2": _r2_influence,
}


def _normal_interval(delta: float, half: float) -> tuple[float, float]:
    return delta - half, delta + half
