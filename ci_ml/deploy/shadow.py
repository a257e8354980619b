"""``ci-ml shadow report``: a shadow version judged against production on live traffic.

The rows ``ci-ml serve --shadow VERSION`` logged with both answers (:mod:`ci_ml.monitor.pairs`)
are joined with their outcomes by request id (the monitor's label join,
:func:`~ci_ml.monitor.outcomes.join_by_request`), and the two logged answers of each row are
the two models' predictions — nothing is predicted again. From them the run directory gets
what the evaluate step writes (``evaluation.json``: the paired comparison with intervals,
slices, curves, live churn; the shadow's live milliseconds per row as its latency), a
``data-report.json`` of the live rows, the shadow version's ``model.json`` and model file from
the registry, then the gate step's own ``gate-report.json`` and ``report.md``
(:func:`ci_ml.api.gate`, :func:`ci_ml.api.report`). The candidate is the shadow, the baseline
production, so ``ci-ml deploy --run-dir`` verifies the record as any gate record: digests,
judged again, production unchanged since.

Fewer joined rows than ``comparison.min_rows`` compare nothing: the change gates take the
``comparison.unusable_baseline`` policy (fail, or approve: inconclusive) — never a pass on
nothing. Only rows answered by the registry's production version count.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ci_ml import api, quality, rundir
from ci_ml.data import Dataset
from ci_ml.errors import BadInputError, DataError
from ci_ml.evaluation import compare
from ci_ml.evaluation.baseline import Baseline
from ci_ml.evaluation.predict import Predictions, metric_names
from ci_ml.evaluation.record import Compared, compared_record, smoke_sample
from ci_ml.monitor.outcomes import join_by_request
from ci_ml.monitor.pairs import Pairs, read_pairs
from ci_ml.monitor.sources import REQUEST_ID, Recent, as_text, parse_since, read_recent
from ci_ml.project import Project, now
from ci_ml.records import DataReport, GateReport, ModelCard, read_record, write_record

if TYPE_CHECKING:
    import pandas as pd

    from ci_ml.registry import ModelVersion

POSITION = "_ci_ml_position"  # each logged row's place, carried through the label join
CARRIED = ("model.onnx", rundir.PARITY)  # what the gates may also read of the version


@dataclass(frozen=True)
class ShadowSources:
    """The request log, the outcomes, and the shadow version to judge."""

    requests: Path
    labels: Path
    version: str
    since: str | None = None
    target: str | None = None


def report(project: Project, run_dir: Path, sources: ShadowSources) -> GateReport:
    """Judge the shadow against production on the labelled live rows; writes the gate
    step's files into ``run_dir`` and returns the decision record."""
    registry = project.registry()
    production = registry.get_production()
    if production is None:
        raise BadInputError(
            f"nothing is in production in the registry at {registry.url}; a shadow is judged "
            "against production."
        )
    shadow = registry.get(sources.version)
    if shadow.digest == production.digest:
        raise BadInputError(f"version {shadow.version} is production already; nothing to judge.")
    folder = _under(project.root, sources.requests)
    pairs = read_pairs(folder, shadow.version, production.version, parse_since(sources.since))
    target = sources.target or project.config.data.target
    labels = read_recent(project.root, sources.labels, flag="--labels")
    joined = _joined(pairs, labels, target)
    card = _take_version(registry, shadow, run_dir)
    prod_card = _card_of(registry, production, run_dir / "baseline")
    baseline = Baseline(production.version, production.digest, prod_card)
    dataset = _live_dataset(joined.frame, card, target)
    positions = joined.frame[POSITION].to_numpy()
    y = _truth(dataset)
    cand = Predictions(y, _scores(pairs.shadow, positions, dataset))
    prod: Predictions | None = Predictions(y, _scores(pairs.production, positions, dataset))
    min_rows = project.config.comparison.min_rows
    if len(dataset.holdout) < min_rows:
        why = f"only {len(dataset.holdout)} labelled live rows; comparison.min_rows is {min_rows}"
        prod, baseline = None, replace(baseline, problem=why)
    data_version = f"live requests {pairs.first} to {pairs.last}"
    _write_records(project, run_dir, dataset, data_version, card, pairs, joined, cand)
    evaluation = compared_record(
        project.config,
        Compared(dataset, dataset, cand, prod, baseline),
        data_version,
        card,
        compare.metric_values(project.config, dataset, _names(project, dataset), cand),
        _operational(pairs, card),
        now(),
    )
    write_record(run_dir, rundir.EVALUATION, evaluation)
    record = api.gate(project, run_dir)
    text = api.report(project, run_dir)
    rundir.write_text(run_dir / rundir.REPORT, _heading(shadow, production, pairs, joined) + text)
    return record


def _under(root: Path, path: Path) -> Path:
    return path if path.is_absolute() else root / path


def _names(project: Project, dataset: Dataset) -> list[str]:
    return metric_names(project.config, dataset.task, dataset.multiclass)


def _joined(pairs: Pairs, labels: Recent, target: str) -> Recent:
    """The logged rows named by the outcomes, each with its outcome and its place."""
    if REQUEST_ID not in labels.frame.columns or target not in labels.frame.columns:
        raise DataError(
            f"{labels.source.get('path')} needs a '{REQUEST_ID}' column (the id ci-ml serve "
            f"answered and logged), the outcome '{target}', and perhaps 'row_index'; found "
            f"{', '.join(map(str, labels.frame.columns[:8]))}."
        )
    frame = pairs.recent.frame.assign(**{POSITION: np.arange(len(pairs.recent.frame))})
    return join_by_request(replace(pairs.recent, frame=frame), labels, target)


def _take_version(registry: Any, version: ModelVersion, run_dir: Path) -> ModelCard:
    """The version's model.json and model file (and its ONNX export and parity record) in
    ``run_dir``, as the train step leaves them."""
    with tempfile.TemporaryDirectory(prefix="ci-ml-shadow-") as tmp:
        files = registry.fetch(version.version, Path(tmp))
        for name in (rundir.MODEL_CARD, version.model_file, *CARRIED):
            if name in files:
                shutil.copy2(files[name], run_dir / name)
    card = read_record(run_dir / rundir.MODEL_CARD, ModelCard)
    if card.digest != version.digest:
        raise DataError(
            f"the registry's model.json of {version.version} names digest {card.digest[:12]}; "
            "the version is damaged — register it again."
        )
    return card


def _card_of(registry: Any, version: ModelVersion, dest: Path) -> dict[str, Any]:
    dest.mkdir(parents=True, exist_ok=True)
    files = registry.fetch(version.version, dest)
    if rundir.MODEL_CARD not in files:
        return {}
    found = rundir.read_json(dest, rundir.MODEL_CARD)
    return found if isinstance(found, dict) else {}


def _live_dataset(frame: pd.DataFrame, card: ModelCard, target: str) -> Dataset:
    """The labelled live rows as the holdout of a dataset (no training rows)."""
    features = [f.name for f in card.feature_schema]
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise DataError(
            f"the logged rows lack the shadow's feature column(s) {', '.join(missing)}; "
            "production's requests do not carry them."
        )
    rows = frame[[*features, target]].reset_index(drop=True)
    classes = tuple(str(c) for c in card.classes) if card.task == "classification" else ()
    return Dataset(
        train=rows.iloc[:0],
        holdout=rows,
        target=target,
        task=card.task,
        features=features,
        positive_class=card.positive_class if len(classes) == 2 else None,
        classes=classes,
    )


def _truth(dataset: Dataset) -> np.ndarray:
    """The outcomes as the evaluation takes them; DataError for another encoding."""
    values = dataset.y("holdout")
    if dataset.task != "classification":
        import pandas as pd

        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    text = as_text(values).astype(str)
    unknown = sorted(set(text) - set(dataset.classes))
    if unknown:
        raise DataError(
            f"the outcomes in '{dataset.target}' hold {unknown[:5]}, which are none of the "
            f"model's classes {list(dataset.classes)}; write the outcomes as its classes."
        )
    if dataset.multiclass:
        index = {c: i for i, c in enumerate(dataset.classes)}
        return text.map(index).to_numpy(dtype=np.int64)
    return (text == str(dataset.positive_class)).to_numpy(dtype=np.float64)


def _scores(answers: list[dict[str, Any]], positions: np.ndarray, dataset: Dataset) -> np.ndarray:
    """One model's logged answers of the joined rows as evaluation scores."""
    picked = [answers[int(i)] for i in positions]
    try:
        if dataset.multiclass:
            return np.array(
                [[a["probabilities"][c] for c in dataset.classes] for a in picked],
                dtype=np.float64,
            )
        key = "probability" if dataset.task == "classification" else "value"
        return np.array([a[key] for a in picked], dtype=np.float64)
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"a logged answer lacks {exc}; the request log was written by another kind of model."
        ) from None


def _operational(pairs: Pairs, card: ModelCard) -> dict[str, Any]:
    """The shadow's live latency (ms per row of its calls) and its size."""
    latency = np.asarray(pairs.latency_ms)
    return {
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p95_ms": float(np.percentile(latency, 95)),
        "size_mb": card.size_bytes / 1e6,
    }


def _write_records(
    project: Project,
    run_dir: Path,
    dataset: Dataset,
    data_version: str,
    card: ModelCard,
    pairs: Pairs,
    joined: Recent,
    cand: Predictions,
) -> None:
    """data-report.json of the live rows, and the smoke sample deploy checks the service with."""
    source = joined.source
    checks = [
        quality.Check(
            name="shadowed rows answered by production",
            success=True,
            severity="info",
            observed={"rows": len(pairs.production), **pairs.recent.source},
            details="rows the shadow scored beside production's answer in the request log",
        ),
        quality.Check(
            name="outcomes joined by request id",
            success=source.get("not_found", 0) == 0,
            severity="warning",
            observed={k: source.get(k) for k in ("outcomes", "joined", "not_found", "joined_on")},
            unexpected_count=source.get("not_found"),
            details="outcomes whose request id (and row index) the shadowed rows do not hold",
        ),
    ]
    extra = {
        "data_version": data_version,
        "task": dataset.task,
        "rows": {"train": 0, "holdout": len(dataset.holdout)},
        "suite": None,
        "created_at": now(),
    }
    report = DataReport.model_validate(quality.report(checks, extra))
    write_record(run_dir, rundir.DATA_REPORT, report)
    write_record(run_dir, rundir.SMOKE, smoke_sample(project.config, dataset, cand))


def _heading(shadow: ModelVersion, production: ModelVersion, pairs: Pairs, joined: Recent) -> str:
    source = joined.source
    return (
        f"### Shadow deployment: {shadow.version} beside production {production.version}\n\n"
        f"Judged on live traffic: {len(pairs.production)} rows the shadow scored from "
        f"{pairs.first} to {pairs.last}, {source.get('joined')} of them with an outcome "
        f"({source.get('not_found')} outcome(s) not found among them). Predictions are the "
        "answers both models gave; latency is the shadow's, in service.\n\n"
    )
