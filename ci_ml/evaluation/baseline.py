"""The production model as the baseline: fetched from the registry, checked, predicted.

The baseline predicts the very holdout rows the candidate predicts. A
production model that cannot predict them (its schema changed, its file does
not verify) is not a crash: it becomes a :class:`Baseline` with a ``problem``,
and the gates apply the ``comparison.unusable_baseline`` policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_ml.data import Dataset
from ci_ml.errors import CiMlError, ModelFileError
from ci_ml.evaluation.predict import predict
from ci_ml.modelio import load_model

BASELINE_DIR = "baseline"


@dataclass(frozen=True)
class Baseline:
    """The production version, its model (when usable) or the reason it is not."""

    version: str
    digest: str
    card: dict[str, Any]
    model: Any = None
    problem: str | None = None
    unread: bool = False  # a fork's pull request could not read the registry


def fetch_production(registry: Any, run_dir: Path, trusted: list[str]) -> Baseline | None:
    """The registry's production model, copied into ``run_dir/baseline``; None if none."""
    production = registry.get_production()
    if production is None:
        return None
    dest = run_dir / BASELINE_DIR
    dest.mkdir(exist_ok=True)
    try:
        files = registry.fetch(production.version, dest)
        card = _card(files)
        model_path = files.get("model.skops")
        if model_path is None:
            raise ModelFileError(f"production version {production.version} has no model.skops")
        model = load_model(model_path, trusted)
    except ModelFileError as exc:
        return Baseline(production.version, production.digest, {}, problem=str(exc))
    return Baseline(production.version, production.digest, card, model)


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
    return None


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
