"""The evaluate step's records, built without I/O: evaluation.json, metrics.json, the smoke sample.

:func:`evaluate` predicts the holdout with the candidate and (when it is usable) production,
compares them on the same rows and returns the records; the step in :mod:`ci_ml.api` fetches
production and writes the files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.evaluation import compare, curves
from ci_ml.evaluation.baseline import Baseline, fresh_rows, predict_baseline
from ci_ml.evaluation.changes import changes
from ci_ml.evaluation.multiclass import confusion_matrix
from ci_ml.evaluation.predict import Predictions, metric_names, predict
from ci_ml.quality import jsonable
from ci_ml.records import Evaluation, ModelCard, SmokeSample

PER_CLASS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Evaluated:
    """What the evaluate step writes: evaluation.json, metrics.json and the smoke sample;
    and the candidate's holdout predictions, registered for the monitor."""

    evaluation: Evaluation
    metrics: dict[str, Any]
    smoke: SmokeSample
    holdout: Predictions


def evaluate(
    config: Config,
    dataset: Dataset,
    data_version: str,
    model: Any,
    card: ModelCard,
    baseline: Baseline | None,
    created_at: str,
) -> Evaluated:
    """Candidate and production (``baseline``) on the same holdout rows, leaving out the rows
    production trained on (:func:`~ci_ml.evaluation.baseline.fresh_rows`)."""
    names = metric_names(config, dataset.task, dataset.multiclass)
    cand = predict(model, dataset)
    metrics = compare.metric_values(config, dataset, names, cand)
    ops: dict[str, Any] = compare.latency_ms(model, dataset.x("holdout"), dataset.task)
    ops["size_mb"] = card.size_bytes / 1e6
    prod, rows, cand_rows = None, dataset, cand
    if baseline is not None:
        prod, baseline = predict_baseline(baseline, dataset)
    if prod is not None and baseline is not None:
        fresh, problem = fresh_rows(baseline, dataset, config.comparison.min_rows)
        if fresh is None:
            prod, baseline = None, replace(baseline, model=None, problem=problem)
        else:
            rows, cand_rows, prod = only(dataset, fresh), cand.subset(fresh), prod.subset(fresh)
    record = compared_record(
        config,
        Compared(dataset, rows, cand_rows, prod, baseline),
        data_version,
        card,
        metrics,
        ops,
        created_at,
    )
    smoke = smoke_sample(config, dataset, cand)
    return Evaluated(record, {**metrics, **_present(ops)}, smoke, cand)


@dataclass(frozen=True)
class Compared:
    """What the two models are compared on: all the rows (``dataset``), the ``rows`` both
    predicted fresh, and each model's predictions of them (``prod`` None: not compared)."""

    dataset: Dataset
    rows: Dataset
    cand: Predictions
    prod: Predictions | None
    baseline: Baseline | None


def compared_record(
    config: Config,
    found: Compared,
    data_version: str,
    card: ModelCard,
    metrics: dict[str, float],
    ops: dict[str, Any],
    created_at: str,
) -> Evaluation:
    """evaluation.json from the two models' predictions of the same rows, however they were
    made (the evaluate step predicts the holdout; ``ci-ml shadow report`` takes the answers
    the service logged). Adds the churn to ``ops`` when production was compared."""
    dataset, rows, cand_rows, prod, baseline = (
        found.dataset,
        found.rows,
        found.cand,
        found.prod,
        found.baseline,
    )
    names = metric_names(config, dataset.task, dataset.multiclass)
    compared = {}
    if prod is not None:
        compared = compare.compare_overall(config, rows, names, cand_rows, prod)
        ops["churn"] = compare.churn(cand_rows, prod, dataset.task, config.model.threshold)
    summary = baseline_summary(baseline, compared, len(rows.holdout), len(dataset.holdout))
    return Evaluation.model_validate(
        {
            "task": dataset.task,
            "data_version": data_version,
            "rows": {"train": len(dataset.train), "holdout": len(dataset.holdout)},
            "positive_class": card.positive_class,
            "candidate": {"digest": card.digest, "metrics": metrics, "operational": ops},
            "baseline": summary,
            "comparisons": compared,
            "slices": compare.compare_slices(config, rows, names, cand_rows, prod),
            "model": card.model_dump(mode="json", include={"estimator", "params", "size_bytes"}),
            "created_at": created_at,
            "curves": curves.curves(dataset.task, cand_rows, prod),
            "changes": changes(card, baseline.card, baseline.version) if baseline else None,
            **(_multiclass(config, rows, cand_rows, prod) if dataset.multiclass else {}),
        }
    )


def _multiclass(
    config: Config, dataset: Dataset, cand: Predictions, prod: Predictions | None
) -> dict[str, Any]:
    """The class order, both models' confusion matrices and the per-class table (precision,
    recall and F1 of every class, paired intervals Bonferroni-corrected over the K classes)."""
    classes = list(dataset.classes)
    names = [f"{metric}[{label}]" for label in classes for metric in PER_CLASS]
    ours = compare.metric_values(config, dataset, names, cand)
    theirs = compare.metric_values(config, dataset, names, prod) if prod is not None else None
    found: dict[str, Any] = {}
    if prod is not None:
        confidence = compare.corrected_confidence(config, classes)
        found = compare.paired(config, dataset, names, cand, prod, confidence)
    support = np.bincount(cand.y_true.astype(np.intp), minlength=len(classes))
    per_class = [
        {
            "label": label,
            "support": int(support[k]),
            "candidate": {m: ours[f"{m}[{label}]"] for m in PER_CLASS},
            "production": None
            if theirs is None
            else {m: theirs[f"{m}[{label}]"] for m in PER_CLASS},
            "comparisons": {
                f"{m}[{label}]": asdict(found[f"{m}[{label}]"]) for m in PER_CLASS if found
            },
        }
        for k, label in enumerate(classes)
    ]
    confusion = {
        "classes": classes,
        "rows": int(cand.y_true.size),
        "candidate": confusion_matrix(
            cand.y_true, cand.score.argmax(axis=1), len(classes)
        ).tolist(),
        "production": None
        if prod is None
        else confusion_matrix(prod.y_true, prod.score.argmax(axis=1), len(classes)).tolist(),
    }
    return {"classes": classes, "confusion": confusion, "per_class": per_class}


def only(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """``dataset`` with only the holdout ``rows`` (a boolean mask)."""
    ids = dataset.holdout_ids[rows] if dataset.holdout_ids is not None else None
    holdout = dataset.holdout[rows].reset_index(drop=True)
    return replace(dataset, holdout=holdout, holdout_ids=ids)


def smoke_sample(config: Config, dataset: Dataset, cand: Predictions) -> SmokeSample:
    """Holdout rows and the candidate's own answers: deploy checks the service gives them."""
    n = min(config.deploy.smoke_rows, len(dataset.holdout))
    rows = dataset.x("holdout").head(n).to_dict(orient="records")
    if dataset.multiclass:
        proba = cand.score[:n]
        return SmokeSample(
            task=dataset.task,
            records=jsonable(rows),
            expected=[float(v) for v in proba.max(axis=1)],
            classes=list(dataset.classes),
            expected_probabilities=proba.tolist(),
        )
    return SmokeSample(
        task=dataset.task,
        records=jsonable(rows),
        expected=[float(v) for v in cand.score[:n]],
    )


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def baseline_summary(
    baseline: Baseline | None, compared: dict[str, Any], rows: int, holdout: int
) -> dict[str, Any] | None:
    """evaluation.json's ``baseline``: production, its metrics on the ``rows`` compared of the
    ``holdout``'s, or the problem that kept it from being compared (None: no production)."""
    if baseline is None:
        return None
    judged = bool(compared)
    return {
        "version": baseline.version,
        "digest": baseline.digest,
        "problem": baseline.problem,
        "unread": baseline.unread,
        "metrics": {name: c["production"] for name, c in compared.items()},
        "params": baseline.card.get("params"),
        "data_version": baseline.card.get("data_version"),
        "rows_compared": rows if judged else None,
        "rows_excluded": holdout - rows if judged else None,
    }
