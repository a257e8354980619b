"""Candidate vs production on the same holdout rows: paired intervals, slices, operations.

The statistics live in :mod:`ci_ml.evaluation.stats`; this module decides what to compare
(every statistical metric overall, the sliced gates' metrics per slice) and
measures the operational numbers (latency, size, churn).

Slices are tested many at once, so their intervals are widened with the
Bonferroni correction: with k judged slices each interval has confidence
``1 - (1 - confidence) / k``, which keeps the chance of any false verdict
among them at most ``1 - confidence``. A multiclass model's per-class metrics
(``recall[L]``) are corrected the same way: the change gates on k per-class
metrics each judge an interval at ``1 - (1 - confidence) / k``, and the report's
per-class table (precision, recall and F1 of all K classes) at ``1 - (1 - c) / K``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import evaluate_metrics
from ci_ml.evaluation.multiclass import compare_multiclass, evaluate_multiclass, is_per_class
from ci_ml.evaluation.predict import Predictions
from ci_ml.evaluation.stats import Comparison, compare

if TYPE_CHECKING:
    import pandas as pd

LATENCY_BATCH = 100
LATENCY_MAX_BATCHES = 40
LATENCY_BUDGET_S = 2.0
NUMERIC_SLICE_BINS = 4


def metric_values(
    config: Config, dataset: Dataset, names: list[str], preds: Predictions
) -> dict[str, float]:
    """One model's metric values, keyed by name (binary, multiclass or regression)."""
    if dataset.multiclass:
        return evaluate_multiclass(names, preds.y_true, preds.score, list(dataset.classes))
    return evaluate_metrics(
        dataset.task, names, preds.y_true, preds.score, threshold=config.model.threshold
    )


def paired(
    config: Config,
    dataset: Dataset,
    names: list[str],
    cand: Predictions,
    prod: Predictions,
    confidence: float,
) -> dict[str, Comparison]:
    """Candidate vs production on the same rows at ``confidence``, one comparison per name."""
    if not names:
        return {}
    if dataset.multiclass:
        return compare_multiclass(
            names,
            cand.y_true,
            cand.score,
            prod.score,
            list(dataset.classes),
            confidence=confidence,
            n_resamples=config.comparison.resamples,
            seed=config.comparison.seed,
        )
    return compare(
        dataset.task,
        names,
        cand.y_true,
        cand.score,
        prod.score,
        confidence=confidence,
        n_resamples=config.comparison.resamples,
        seed=config.comparison.seed,
        threshold=config.model.threshold,
    )


def compare_overall(
    config: Config, dataset: Dataset, names: list[str], cand: Predictions, prod: Predictions
) -> dict[str, dict[str, Any]]:
    """Paired comparison of every statistical metric on the whole holdout; the per-class
    metrics of change gates Bonferroni-corrected among themselves."""
    confidence = config.comparison.confidence
    per_class = [n for n in names if is_per_class(n)] if dataset.multiclass else []
    gated = {g.metric for g in config.gates if g.change is not None}
    corrected = [n for n in per_class if n in gated]
    plain = [n for n in names if n not in corrected]
    found = paired(config, dataset, plain, cand, prod, confidence)
    found.update(
        paired(config, dataset, corrected, cand, prod, corrected_confidence(config, corrected))
    )
    return {name: asdict(found[name]) for name in names}


def corrected_confidence(config: Config, judged: list[Any]) -> float:
    """Bonferroni: each of ``len(judged)`` intervals at ``1 - (1 - confidence) / k``."""
    return 1 - (1 - config.comparison.confidence) / max(1, len(judged))


def slice_masks(config: Config, holdout: pd.DataFrame) -> list[tuple[str, str, Any]]:
    """(column, value label, boolean mask) for every slice of the configured columns."""
    import pandas as pd

    if config.slices is None:
        return []
    out = []
    for column in config.slices.columns:
        if column not in holdout.columns:
            raise missing_slice_column(column, list(holdout.columns))
        values = holdout[column]
        if values.dtype.kind in "iuf" and values.nunique() > 10:
            values = pd.qcut(values, NUMERIC_SLICE_BINS, duplicates="drop").astype(str)
        labels = values.astype(object).where(values.notna(), "(missing)").astype(str)
        for label in sorted(labels.unique()):
            out.append((column, label, (labels == label).to_numpy()))
    return out


def missing_slice_column(column: str, columns: list[Any]) -> ConfigError:
    """The error for a slice column the holdout does not have."""
    return ConfigError(
        f"slices.columns: column '{column}' is not in the data; "
        f"columns are {', '.join(map(str, columns[:12]))}."
    )


def compare_slices(
    config: Config,
    dataset: Dataset,
    names: list[str],
    cand: Predictions,
    prod: Predictions | None,
) -> list[dict[str, Any]]:
    """Per-slice metrics and (for the sliced gates' metrics) Bonferroni-corrected comparisons."""
    masks = slice_masks(config, dataset.holdout)
    if not masks:
        return []
    gated = [g.metric for g in config.gates if g.slices]
    judged = [m for m in masks if _too_small(config, dataset, cand, m[2]) is None]
    confidence = corrected_confidence(config, judged)
    results = []
    for column, label, mask in masks:
        n = int(mask.sum())
        entry: dict[str, Any] = {
            "column": column,
            "value": label,
            "n": n,
            "class_counts": class_counts(dataset, cand, mask),
            "metrics": {},
            "comparisons": {},
            "judged": False,
            "reason": "",
        }
        small = _too_small(config, dataset, cand, mask)
        if small is not None:
            entry["reason"] = small
            results.append(entry)
            continue
        part = cand.subset(mask)
        try:
            entry["metrics"] = metric_values(config, dataset, names, part)
            if prod is not None and gated:
                found = paired(config, dataset, gated, part, prod.subset(mask), confidence)
                entry["comparisons"] = {k: asdict(v) for k, v in found.items()}
            entry["judged"] = True
        except ValueError as exc:
            entry["reason"] = f"not judged: {exc}"
        results.append(entry)
    return results


def class_counts(dataset: Dataset, cand: Predictions, mask: Any) -> dict[str, int] | None:
    """Rows of each class in a slice: positive and negative (binary), or by class."""
    import numpy as np

    if dataset.task != "classification":
        return None
    if dataset.multiclass:
        found = np.bincount(cand.y_true[mask].astype(np.intp), minlength=len(dataset.classes))
        return {label: int(n) for label, n in zip(dataset.classes, found, strict=True)}
    positives = int(cand.y_true[mask].sum())
    return {"positive": positives, "negative": int(mask.sum()) - positives}


def _too_small(config: Config, dataset: Dataset, cand: Predictions, mask: Any) -> str | None:
    """Why a slice is too small to judge (rows, or rows of a class), or None."""
    counts = class_counts(dataset, cand, mask)
    return too_small(config, int(mask.sum()), counts, dataset.multiclass)


def too_small(
    config: Config, n: int, counts: dict[str, int] | None, multiclass: bool = False
) -> str | None:
    """Why a slice of ``n`` rows (``counts`` by class, None for regression) is too small to
    judge, or None."""
    min_size = config.slices.min_size if config.slices else 30
    min_class = config.slices.min_class_count if config.slices else 20
    if n < min_size:
        return f"{n} rows, fewer than slices.min_size ({min_size}); not judged"
    if counts is None or min(counts.values()) >= min_class:
        return None
    if multiclass:
        few = [f"{n} of class {label!r}" for label, n in counts.items() if n < min_class]
        return (
            f"{', '.join(few[:3])}{' …' if len(few) > 3 else ''} rows, fewer than "
            f"slices.min_class_count ({min_class}) of a class; not judged"
        )
    return (
        f"{counts['positive']} positive and {counts['negative']} negative rows, fewer "
        f"than slices.min_class_count ({min_class}) of a class; not judged"
    )


def latency_ms(model: Any, x: pd.DataFrame, task: str) -> dict[str, float]:
    """Per-row prediction latency (p50/p95 over batches of 100 holdout rows), in ms.

    Measured on one thread: OpenMP threads fighting over a busy CI runner's cores
    make multi-threaded timings swing tenfold, and a web service predicts one
    request per thread anyway.
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    predict = model.predict_proba if task == "classification" else model.predict
    per_row = []
    started = time.perf_counter()
    with threadpool_limits(1):
        for start in range(0, len(x), LATENCY_BATCH):
            batch = x.iloc[start : start + LATENCY_BATCH]
            t0 = time.perf_counter()
            predict(batch)
            per_row.append((time.perf_counter() - t0) * 1000 / len(batch))
            elapsed = time.perf_counter() - started
            if len(per_row) >= LATENCY_MAX_BATCHES or elapsed > LATENCY_BUDGET_S:
                break
    values = np.asarray(per_row)
    return {
        "latency_p50_ms": float(np.percentile(values, 50)),
        "latency_p95_ms": float(np.percentile(values, 95)),
    }


def churn(cand: Predictions, prod: Predictions, task: str, threshold: float) -> float | None:
    """Share of rows whose predicted class differs from production's (classification)."""
    import numpy as np

    if task != "classification":
        return None
    return float(np.mean(cand.labels(threshold) != prod.labels(threshold)))
