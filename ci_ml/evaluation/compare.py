"""Candidate vs production on the same holdout rows: paired intervals, slices, operations.

The statistics live in :mod:`ci_ml.evaluation.stats`; this module decides what to compare
(every statistical metric overall, the sliced gates' metrics per slice) and
measures the operational numbers (latency, size, churn).

Slices are tested many at once, so their intervals are widened with the
Bonferroni correction: with k judged slices each interval has confidence
``1 - (1 - confidence) / k``, which keeps the chance of any false verdict
among them at most ``1 - confidence``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import evaluate_metrics
from ci_ml.evaluation.predict import Predictions
from ci_ml.evaluation.stats import compare

if TYPE_CHECKING:
    import pandas as pd

LATENCY_BATCH = 100
LATENCY_MAX_BATCHES = 40
LATENCY_BUDGET_S = 2.0
NUMERIC_SLICE_BINS = 4


def compare_overall(
    config: Config, dataset: Dataset, names: list[str], cand: Predictions, prod: Predictions
) -> dict[str, dict[str, Any]]:
    """Paired comparison of every statistical metric on the whole holdout."""
    comparisons = compare(
        dataset.task,
        names,
        cand.y_true,
        cand.score,
        prod.score,
        confidence=config.comparison.confidence,
        n_resamples=config.comparison.resamples,
        seed=config.comparison.seed,
        threshold=config.model.threshold,
    )
    return {name: asdict(c) for name, c in comparisons.items()}


def slice_masks(config: Config, holdout: pd.DataFrame) -> list[tuple[str, str, Any]]:
    """(column, value label, boolean mask) for every slice of the configured columns."""
    import pandas as pd

    if config.slices is None:
        return []
    out = []
    for column in config.slices.columns:
        if column not in holdout.columns:
            raise ConfigError(
                f"slices.columns: column '{column}' is not in the data; "
                f"columns are {', '.join(map(str, holdout.columns[:12]))}."
            )
        values = holdout[column]
        if values.dtype.kind in "iuf" and values.nunique() > 10:
            values = pd.qcut(values, NUMERIC_SLICE_BINS, duplicates="drop").astype(str)
        labels = values.astype(object).where(values.notna(), "(missing)").astype(str)
        for label in sorted(labels.unique()):
            out.append((column, label, (labels == label).to_numpy()))
    return out


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
    judged = [m for m in masks if _too_small(config, dataset.task, cand, m[2]) is None]
    confidence = 1 - (1 - config.comparison.confidence) / max(1, len(judged))
    results = []
    for column, label, mask in masks:
        n = int(mask.sum())
        entry: dict[str, Any] = {
            "column": column,
            "value": label,
            "n": n,
            "class_counts": _class_counts(dataset.task, cand, mask),
            "metrics": {},
            "comparisons": {},
            "judged": False,
            "reason": "",
        }
        small = _too_small(config, dataset.task, cand, mask)
        if small is not None:
            entry["reason"] = small
            results.append(entry)
            continue
        y, score = cand.y_true[mask], cand.score[mask]
        try:
            entry["metrics"] = evaluate_metrics(
                dataset.task, names, y, score, threshold=config.model.threshold
            )
            if prod is not None and gated:
                found = compare(
                    dataset.task,
                    gated,
                    y,
                    score,
                    prod.score[mask],
                    confidence=confidence,
                    n_resamples=config.comparison.resamples,
                    seed=config.comparison.seed,
                    threshold=config.model.threshold,
                )
                entry["comparisons"] = {k: asdict(v) for k, v in found.items()}
            entry["judged"] = True
        except ValueError as exc:
            entry["reason"] = f"not judged: {exc}"
        results.append(entry)
    return results


def _class_counts(task: str, cand: Predictions, mask: Any) -> dict[str, int] | None:
    """Positive and negative rows of a slice (classification)."""
    if task != "classification":
        return None
    positives = int(cand.y_true[mask].sum())
    return {"positive": positives, "negative": int(mask.sum()) - positives}


def _too_small(config: Config, task: str, cand: Predictions, mask: Any) -> str | None:
    """Why a slice is too small to judge (rows, or rows of a class), or None."""
    min_size = config.slices.min_size if config.slices else 30
    min_class = config.slices.min_class_count if config.slices else 20
    n = int(mask.sum())
    if n < min_size:
        return f"{n} rows, fewer than slices.min_size ({min_size}); not judged"
    counts = _class_counts(task, cand, mask)
    if counts is not None and min(counts.values()) < min_class:
        return (
            f"{counts['positive']} positive and {counts['negative']} negative rows, fewer "
            f"than slices.min_class_count ({min_class}) of a class; not judged"
        )
    return None


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
    return float(np.mean((cand.score >= threshold) != (prod.score >= threshold)))
