"""What a trained model is: ``model.json``'s record, its feature schema, its file's name."""

from __future__ import annotations

import math
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml import __version__
from ci_ml.config import ModelConfig
from ci_ml.data import Dataset
from ci_ml.models.bundle import framework_named
from ci_ml.models.runtime import OnnxEstimator
from ci_ml.rundir import BUNDLE, MODEL, ONNX

if TYPE_CHECKING:
    import pandas as pd


def feature_schema(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Name, kind and dtype of each feature (categories for categoricals)."""
    schema: list[dict[str, Any]] = []
    for name in features:
        column = frame[name]
        if column.dtype.kind in "biufc":
            schema.append({"name": name, "kind": "numeric", "dtype": str(column.dtype)})
        else:
            values = sorted(map(str, column.dropna().unique().tolist()))
            schema.append(
                {"name": name, "kind": "categorical", "dtype": "object", "categories": values}
            )
    return schema


def model_file_name(config: ModelConfig) -> str:
    """The run's model file: ``model.bundle`` for a booster, ``model.onnx`` for a training
    command whose ``model.output`` is an ONNX file, else ``model.skops``."""
    if config.command is not None:
        return ONNX if config.writes_onnx else MODEL
    return BUNDLE if framework_named(config.estimator or "") else MODEL


def model_card(
    config: ModelConfig, dataset: Dataset, model: Any, digest: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``model.json`` record that goes with the model file."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    return {
        "estimator": config.estimator or _described(estimator),
        "params": json_safe(estimator.get_params(deep=False))
        if hasattr(estimator, "get_params")
        else {},
        "configured_params": dict(config.params),
        "command": config.command,
        "seed": config.seed,
        "threshold": config.threshold,
        "task": dataset.task,
        "target": dataset.target,
        "positive_class": json_safe(dataset.positive_class),
        "classes": json_safe(list(getattr(model, "classes_", []))),
        "feature_schema": feature_schema(dataset.train, dataset.features),
        "training_rows": len(dataset.train),
        "digest": digest,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ci_ml_version": __version__,
        **extra,
    }


def _described(estimator: Any) -> str:
    """The import path of a model's class; an ONNX model's producer (``onnx:skl2onnx``)."""
    if isinstance(estimator, OnnxEstimator):
        producer = estimator.predictor.session.get_modelmeta().producer_name
        return f"onnx:{producer}" if producer else "onnx"
    return f"{type(estimator).__module__}.{type(estimator).__name__}"


def json_safe(value: Any) -> Any:
    """JSON-safe copy of params: numbers, strings, lists; other objects (and NaN or
    infinite numbers, e.g. XGBoost's ``missing=nan``) by repr."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def git_sha(root: Path) -> str | None:
    """The commit being trained, from GITHUB_SHA or ``git rev-parse HEAD``."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None
