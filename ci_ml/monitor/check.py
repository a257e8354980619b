"""Monitoring: recent production data against the production model's reference data.

Three checks, one status:

* **feature drift** (:mod:`ci_ml.monitor.drift`): every feature of the model's schema, and the share
  of its missing values, recent rows vs ``reference.parquet`` (the model's training rows,
  stored with the version in the registry);
* **prediction drift**: the production model's predictions on the recent rows vs its
  predictions on its holdout at the gate (``holdout-predictions.parquet``, rows it did not
  train on): the probability of the positive class and the predicted label; the predicted
  value for regression. A version registered without them (by an older ci-ml) is compared
  with its predictions on its training rows, and the record's ``notes`` say so;
* **performance decay** (:mod:`ci_ml.monitor.decay`), where rows carry the outcome (the
  target column, or ``--labels``, joined by request id when it holds outcomes alone,
  :mod:`ci_ml.monitor.outcomes`): each metric on those rows vs the same metric on the
  holdout at the gate, judged with both samples' noise.

Status: ``stale`` when performance decayed, else ``drifting`` when features or predictions
drifted, else ``fine``. :func:`check` builds the record (a
:class:`~ci_ml.records.MonitorReport`); :func:`run` writes it as ``monitor-report.json``,
with ``monitor-report.md`` beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ci_ml import __version__, rundir
from ci_ml.errors import BadInputError
from ci_ml.monitor.decay import DECAYED, Decay, DecaySettings, decay, judged_metrics
from ci_ml.monitor.drift import (
    DriftThresholds,
    FeatureDrift,
    categorical_drift,
    compare_frames,
    numeric_drift,
)
from ci_ml.monitor.outcomes import labelled_rows, truth
from ci_ml.monitor.report import render
from ci_ml.monitor.sources import (
    HOLDOUT,
    Production,
    Recent,
    conform,
    load_production,
    parse_since,
    predict_scores,
    read_recent,
    read_requests,
)
from ci_ml.records import MONITOR_REPORT, MonitorReport, write_record

if TYPE_CHECKING:
    import pandas as pd

    from ci_ml.registry import Registry

MONITOR_MD = "monitor-report.md"
FINE, DRIFTING, STALE = "fine", "drifting", "stale"
STATUSES = (FINE, DRIFTING, STALE)


@dataclass(frozen=True)
class MonitorSettings:
    """Thresholds for drift, the decay rule, the metrics to judge (default: all recorded)."""

    drift: DriftThresholds = field(default_factory=DriftThresholds)
    decay: DecaySettings = field(default_factory=DecaySettings)
    metrics: tuple[str, ...] = ()
    min_labelled: int = 30


@dataclass(frozen=True)
class Sources:
    """Where the recent rows come from: ``recent`` (file or folder) or ``requests`` (log)."""

    recent: Path | None = None
    requests: Path | None = None
    since: str | None = None
    labels: Path | None = None
    target: str | None = None
    reference: Path | None = None
    pull: bool = True


# ------------------------------------------------------------------ loading


def load_recent(root: Path, sources: Sources) -> Recent:
    """The recent rows from exactly one of ``sources.recent`` and ``sources.requests``."""
    if (sources.recent is None) == (sources.requests is None):
        raise BadInputError(
            "give the recent data with exactly one of --recent PATH (a file or folder, "
            "usually DVC-tracked) and --requests DIR (the ci-ml serve request log)."
        )
    if sources.since is not None and sources.requests is None:
        raise BadInputError(
            f"--since {sources.since} picks requests of the request log; use it with "
            "--requests DIR, or give --recent only the rows to check."
        )
    if sources.requests is not None:
        folder = sources.requests if sources.requests.is_absolute() else root / sources.requests
        return read_requests(folder, parse_since(sources.since))
    assert sources.recent is not None
    return read_recent(root, sources.recent, pull=sources.pull)


# ------------------------------------------------------------------ predictions


def prediction_drift(
    production: Production, ref: np.ndarray, cur: np.ndarray, settings: MonitorSettings
) -> list[FeatureDrift]:
    """Drift of the predictions: the score, and for classification the predicted label."""
    import pandas as pd

    th = settings.drift
    if production.task != "classification":
        return [numeric_drift("prediction", np.sort(ref), np.sort(cur), th)]
    if production.multiclass:
        classes = production.classes

        def class_mix(scores: np.ndarray) -> pd.Series:
            found = np.bincount(scores.argmax(axis=1), minlength=len(classes))
            return pd.Series(dict(zip(classes, found.tolist(), strict=True)))

        return [
            categorical_drift("predicted class", class_mix(ref), class_mix(cur), th),
            numeric_drift(
                "P(predicted class)", np.sort(ref.max(axis=1)), np.sort(cur.max(axis=1)), th
            ),
        ]
    positive = str(production.card.get("positive_class"))
    cut = settings.decay.threshold

    def label_counts(scores: np.ndarray) -> pd.Series:
        hits = int((scores >= cut).sum())
        return pd.Series({positive: hits, f"not {positive}": scores.size - hits})

    return [
        numeric_drift(f"P({positive})", np.sort(ref), np.sort(cur), th),
        categorical_drift("predicted label", label_counts(ref), label_counts(cur), th),
    ]


# ------------------------------------------------------------------ decay


def decay_check(
    production: Production, labelled: Recent, target: str, settings: MonitorSettings
) -> tuple[list[Decay], int, str | None]:
    """Decay per metric, the number of labelled rows, and why decay was not judged."""
    frame = labelled.frame
    if target not in frame.columns:
        where = labelled.source.get("path")
        return [], 0, f"no outcomes: the rows of {where} have no '{target}' column"
    rows = frame[frame[target].notna()]
    if len(rows) < settings.min_labelled:
        return [], len(rows), f"{len(rows)} labelled rows; at least {settings.min_labelled} needed"
    names = judged_metrics(
        production.task, production.metrics, settings.metrics, production.classes
    )
    if not names:
        return [], len(rows), "no metric was recorded at the production model's gate"
    y = truth(rows[target], production, target)  # first: a foreign encoding is bad input
    x = conform(rows, production.kinds, f"the labelled rows ({labelled.source.get('path')})")
    scores = predict_scores(production, x)
    if production.task == "classification" and y.min() == y.max():
        only = rows[target].astype(str).iloc[0]
        need = "at least two" if production.multiclass else "both"
        return [], len(rows), f"the labelled rows hold only the class '{only}'; decay needs {need}"
    try:
        found = decay(
            production.task,
            production.metrics,
            y,
            scores,
            names,
            settings.decay,
            production.holdout,
            production.classes if production.multiclass else (),
        )
    except ValueError as exc:
        return [], len(rows), str(exc).rstrip(".")
    return found, len(rows), None


# ------------------------------------------------------------------ the check


def check(
    production: Production,
    recent: Recent,
    settings: MonitorSettings,
    labelled: Recent | None = None,
    target: str | None = None,
) -> MonitorReport:
    """The monitor record (no I/O): drift, prediction drift, decay, status and reasons.

    ``labelled``: rows with outcomes (``--labels``), else the recent rows' own outcomes.
    """
    kinds = production.kinds
    ref = conform(production.reference, kinds, "the reference (training rows)")
    cur = conform(recent.frame, kinds, f"the recent data ({recent.source.get('path')})")
    features = compare_frames(ref, cur, kinds, settings.drift)
    notes = []
    if production.holdout is not None:
        reference_scores, whose = production.holdout.score, "holdout"
    else:
        reference_scores, whose = predict_scores(production, ref), "training"
        notes.append(no_holdout_note(production))
    predictions = prediction_drift(
        production, reference_scores, predict_scores(production, cur), settings
    )
    outcome = target or str(production.card.get("target"))
    with_labels = labelled_rows(recent, labelled, kinds, outcome)
    decays, n_labelled, note = decay_check(production, with_labels, outcome, settings)
    status, reasons = verdict(features, predictions, decays, len(kinds))
    record = {
        "status": status,
        "reasons": reasons,
        "notes": notes,
        "production": _production_summary(production),
        "reference": {
            "rows": len(ref),
            "predictions": whose,
            "prediction_rows": int(reference_scores.shape[0]),
        },
        "recent": {"rows": len(cur), "source": dict(recent.source)},
        "labelled": {
            "rows": n_labelled,
            "target": outcome,
            "source": dict(with_labels.source),
            "note": note,
        },
        "settings": _settings_summary(settings),
        "features": [f.as_dict() for f in features],
        "predictions": [p.as_dict() for p in predictions],
        "decay": [d.as_dict() for d in decays],
        "problems": {
            "drift": any(f.drifted for f in [*features, *predictions]),
            "decay": status == STALE,
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ci_ml_version": __version__,
    }
    return MonitorReport.model_validate(record)


def no_holdout_note(production: Production) -> str:
    """Why a version registered without its holdout predictions is judged less well."""
    return (
        f"production version {production.version} was registered without {HOLDOUT} (by an "
        "older ci-ml): prediction drift compares with its predictions on its training rows, "
        "which a model that fits them closely predicts more confidently than new rows, and "
        "decay takes the metrics recorded at the gate as exact; register the model again "
        "with this ci-ml to judge both against its holdout"
    )


def verdict(
    features: Sequence[FeatureDrift],
    predictions: Sequence[FeatureDrift],
    decays: Sequence[Decay],
    n_features: int,
) -> tuple[str, list[str]]:
    """The status and its reasons (one short sentence each), the most serious first."""
    reasons = []
    decayed = [d.metric for d in decays if d.verdict == DECAYED]
    if decayed:
        reasons.append(
            f"performance decayed on {len(decayed)} of {len(decays)} metric(s): "
            + ", ".join(decayed)
        )
    drifted = [f.feature for f in features if f.drifted]
    if drifted:
        reasons.append(f"drift in {len(drifted)} of {n_features} features: " + ", ".join(drifted))
    moved = [p.feature for p in predictions if p.drifted]
    if moved:
        reasons.append("predictions drifted: " + ", ".join(moved))
    status = STALE if decayed else DRIFTING if drifted or moved else FINE
    return status, reasons


def _production_summary(production: Production) -> dict[str, Any]:
    card = production.card
    return {
        "version": production.version,
        "digest": production.digest,
        "task": production.task,
        "target": card.get("target"),
        "positive_class": card.get("positive_class"),
        "data_version": card.get("data_version"),
        "metrics_at_gate": dict(production.metrics),
    }


def _settings_summary(settings: MonitorSettings) -> dict[str, Any]:
    decay_settings = asdict(settings.decay)
    decay_settings["max_drop_by_metric"] = dict(settings.decay.max_drop_by_metric or {})
    return {
        "drift": asdict(settings.drift),
        "decay": decay_settings,
        "metrics": list(settings.metrics),
        "min_labelled": settings.min_labelled,
    }


# ------------------------------------------------------------------ files


def run(
    root: Path,
    registry: Registry,
    out_dir: Path,
    sources: Sources,
    settings: MonitorSettings | None = None,
    trusted: Sequence[str] = (),
) -> MonitorReport:
    """Load everything, check, and write monitor-report.json and .md into ``out_dir``."""
    settings = settings or MonitorSettings()
    reference = None
    if sources.reference is not None:
        reference = (
            sources.reference if sources.reference.is_absolute() else root / sources.reference
        )
    recent = load_recent(root, sources)  # first: bad input fails before the model loads
    labelled = (
        read_recent(root, sources.labels, pull=sources.pull, flag="--labels")
        if sources.labels
        else None
    )
    production = load_production(registry, out_dir, trusted, reference)
    record = check(production, recent, settings, labelled, sources.target)
    write_record(out_dir, MONITOR_REPORT, record)
    rundir.write_text(out_dir / MONITOR_MD, render(record))
    return record
