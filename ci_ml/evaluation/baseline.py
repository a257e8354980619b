"""The production model as the baseline: fetched from the registry, checked, predicted.

The baseline predicts the very holdout rows the candidate predicts. A
production model that cannot predict them (its schema changed, its file does
not verify) is not a crash: it becomes a :class:`Baseline` with a ``problem``,
and the gates apply the ``comparison.unusable_baseline`` policy.

The rows production trained on are known by their identities (``training-ids.parquet``,
registered with it; for versions registered before that file, the identities of its
``reference.parquet``): :func:`fresh_rows` keeps them out of the comparison, whatever
the split did (see docs/data.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ci_ml.data import Dataset, row_ids
from ci_ml.errors import CiMlError, ModelFileError
from ci_ml.evaluation.predict import predict
from ci_ml.models import load_model
from ci_ml.rundir import REFERENCE, TRAINING_IDS

BASELINE_DIR = "baseline"


@dataclass(frozen=True)
class TrainedRows:
    """The identities of production's training rows, and the columns they are made of.

    ``complete`` is False when only a sample of them is known (an old version's reference).
    """

    identity: tuple[str, ...]
    ids: np.ndarray
    complete: bool = True


@dataclass(frozen=True)
class Baseline:
    """The production version, its model (when usable) or the reason it is not."""

    version: str
    digest: str
    card: dict[str, Any]
    model: Any = None
    problem: str | None = None
    unread: bool = False  # a fork's pull request could not read the registry
    trained: TrainedRows | None = None


def fetch_production(registry: Any, run_dir: Path, trusted: list[str]) -> Baseline | None:
    """The registry's production model, copied into ``run_dir/baseline``; None if none."""
    production = registry.get_production()
    if production is None:
        return None
    dest = run_dir / BASELINE_DIR
    dest.mkdir(exist_ok=True)
    card: dict[str, Any] = {}  # kept when the model fails: the report still says what changed
    try:
        files = registry.fetch(production.version, dest)
        card = _card(files)
        model_path = files.get(production.model_file)
        if model_path is None:
            raise ModelFileError(
                f"production version {production.version} has no {production.model_file}"
            )
        model = load_model(model_path, trusted)
        trained = _trained_rows(files, card, production.version)
    except ModelFileError as exc:
        return Baseline(production.version, production.digest, card, problem=str(exc))
    return Baseline(production.version, production.digest, card, model, trained=trained)


def _trained_rows(files: dict[str, Path], card: dict[str, Any], version: str) -> TrainedRows:
    """Production's training rows by identity: its training-ids.parquet, else (a version
    registered before it) the rows of its reference.parquet keyed on all their columns."""
    import pandas as pd

    ids_path, reference = files.get(TRAINING_IDS), files.get(REFERENCE)
    try:
        if ids_path is not None and isinstance(card.get("row_identity"), list):
            ids = pd.read_parquet(ids_path)["row_id"].to_numpy(dtype=np.uint64)
            return TrainedRows(tuple(str(c) for c in card["row_identity"]), ids)
        if reference is not None:
            rows = pd.read_parquet(reference)
            target = card.get("target")
            identity = tuple(sorted(str(c) for c in rows.columns if c != target))
            complete = len(rows) >= int(card.get("training_rows") or 0)
            return TrainedRows(identity, row_ids(rows, identity), complete)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(
            f"production version {version}'s record of its training rows is unreadable ({exc})"
        ) from None
    raise ModelFileError(
        f"production version {version} has no record of the rows it trained on "
        f"({TRAINING_IDS} or {REFERENCE}), so no holdout row can be shown to be new to it"
    )


def fresh_rows(
    baseline: Baseline, dataset: Dataset, min_rows: int
) -> tuple[np.ndarray | None, str | None]:
    """A mask of the holdout rows production did not train on, or None and why the
    comparison cannot be made on enough of them."""
    trained = baseline.trained
    if trained is None:
        return None, f"production model {baseline.version} has no record of its training rows"
    if not trained.complete:
        return None, (
            f"production model {baseline.version} recorded only a sample of its training rows, "
            "so rows it trained on could reach the comparison; register it again with this "
            "ci-ml (or compare on a data.holdout.file it never saw)"
        )
    missing = [c for c in trained.identity if c not in dataset.holdout.columns]
    if missing:
        return None, (
            f"cannot tell which holdout rows production model {baseline.version} trained on: "
            f"its row identity column(s) {', '.join(missing)} are not in the data; set "
            "data.id to key columns that both versions have"
        )
    if trained.identity == dataset.identity and dataset.holdout_ids is not None:
        ids = dataset.holdout_ids
    else:
        ids = row_ids(dataset.holdout, trained.identity)
    fresh = ~np.isin(ids, trained.ids)
    if int(fresh.sum()) < min_rows:
        return None, (
            f"production model {baseline.version} trained on {int((~fresh).sum())} of the "
            f"{len(fresh)} holdout rows; the {int(fresh.sum())} left are fewer than "
            f"comparison.min_rows ({min_rows})"
        )
    return fresh, None


def _card(files: dict[str, Path]) -> dict[str, Any]:
    path = files.get("model.json")
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def schema_problem(baseline: Baseline, dataset: Dataset) -> str | None:
    """Why the baseline cannot read the current features, or None if it can."""
    schema = baseline.card.get("feature_schema") or []
    needed = [f["name"] for f in schema if isinstance(f, dict) and "name" in f]
    missing = [name for name in needed if name not in dataset.holdout.columns]
    if missing:
        return (
            f"production model {baseline.version} needs column(s) {', '.join(missing)} "
            "that the current data no longer has (the schema changed)"
        )
    if baseline.card.get("target") not in (None, dataset.target):
        return (
            f"production model {baseline.version} predicts '{baseline.card['target']}', "
            f"not '{dataset.target}'"
        )
    return class_problem(baseline, dataset)


def class_problem(baseline: Baseline, dataset: Dataset) -> str | None:
    """Why production's classes cannot be compared with the data's (a class added or gone:
    the target means something else now), or None."""
    known = [str(c) for c in baseline.card.get("classes") or []]
    if dataset.task != "classification" or not known:
        return None
    new = [c for c in dataset.classes if c not in known]
    gone = [c for c in known if c not in dataset.classes]
    if not new and not gone:
        return None
    what = []
    if new:
        what.append(f"class(es) {', '.join(map(repr, new))} that production never saw")
    if gone:
        what.append(f"no row of its class(es) {', '.join(map(repr, gone))}")
    return (
        f"production model {baseline.version} was trained on classes "
        f"{', '.join(map(repr, known))}; the data now has {' and '.join(what)}, so the "
        "two models do not predict the same set of labels"
    )


def predict_baseline(baseline: Baseline, dataset: Dataset) -> tuple[Any, Baseline]:
    """The baseline's predictions on the holdout, or None and the baseline with a problem."""
    if baseline.problem:
        return None, baseline
    problem = schema_problem(baseline, dataset)
    if problem is None:
        try:
            features = [f["name"] for f in baseline.card.get("feature_schema") or []]
            return predict(baseline.model, dataset, features or None), baseline
        except CiMlError as exc:
            problem = f"production model {baseline.version} cannot predict the holdout: {exc}"
    return None, Baseline(baseline.version, baseline.digest, baseline.card, None, problem)
