"""The production models of the monitor's tests: real fits on the example credit data.

:func:`make_production` registers a model as ``ci-ml run`` does: its training rows as
``reference.parquet`` and its holdout predictions (truth and score) as
``holdout-predictions.parquet``, then promotes it in a registry of its own. ``example`` is a
logistic regression (quick; the monitor does not care which estimator); ``older`` the same
model registered without holdout predictions, as an older ci-ml did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from ci_ml import rundir, training
from ci_ml.api.files import write_holdout_predictions
from ci_ml.data import load_dataset
from ci_ml.evaluation.metrics import evaluate_metrics
from ci_ml.evaluation.predict import predict
from ci_ml.monitor.sources import Production, load_production
from ci_ml.project import open_project
from ci_ml.registry import open_registry

METRICS = ["roc_auc", "accuracy", "f1", "log_loss"]
LOGISTIC = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}}


@dataclass(frozen=True)
class Example:
    """The registered production model and the example data around it."""

    registry: Path
    production: Production
    holdout: pd.DataFrame
    train: pd.DataFrame


def make_production(
    example: Path,
    tmp: pytest.TempPathFactory,
    model: dict[str, Any],
    *,
    data: dict[str, Any] | None = None,
    rows: pd.DataFrame | None = None,
    metrics: list[str] = METRICS,
    holdout_predictions: bool = True,
) -> Example:
    """Fit ``model`` (estimator and params) on the example data (or ``rows``, with the data
    config changed by ``data``), register it as ``ci-ml run`` does and promote it."""
    project = open_project(example / "ci-ml.yaml")
    root, data_cfg = project.root, project.config.data.model_copy(update=data or {})
    if rows is not None:
        root = tmp.mktemp("data")
        rows.to_csv(root / "data.csv", index=False)
        data_cfg = data_cfg.model_copy(update={"path": "data.csv"})
    dataset = load_dataset(root, data_cfg)
    model_cfg = project.config.model.model_copy(update=model)
    run = tmp.mktemp("run")
    with threadpool_limits(1):  # the test machine has 2 busy cores
        fitted, digest = training.train_builtin(model_cfg, dataset, run / rundir.MODEL)
        holdout = predict(fitted, dataset)
    card = training.model_card(model_cfg, dataset, fitted, digest, {"data_version": "md5:test"})
    rundir.write_json(run, rundir.MODEL_CARD, card)
    rundir.write_json(run, rundir.GATE_REPORT, {"verdict": "pass"})
    dataset.train.to_parquet(run / rundir.REFERENCE, index=False)
    names = [rundir.MODEL, rundir.MODEL_CARD, rundir.GATE_REPORT, rundir.REFERENCE]
    if holdout_predictions:
        write_holdout_predictions(holdout, run)
        names.append(rundir.HOLDOUT_PREDICTIONS)
    found = evaluate_metrics(dataset.task, metrics, holdout.y_true, holdout.score)
    registry = open_registry(str(tmp.mktemp("registry")))
    keys = ("feature_schema", "task", "target", "positive_class", "data_version")
    version = registry.register(
        {name: run / name for name in names},
        {**{k: card[k] for k in keys}, "metrics": {**found, "latency_p95_ms": 1.0}},
        by="tests",
    )
    registry.promote(version.version, None, by="tests")
    production = load_production(registry, tmp.mktemp("monitor"))
    return Example(Path(registry.url), production, dataset.holdout, dataset.train)


@pytest.fixture(scope="session")
def example(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Example:
    return make_production(pulled_example, tmp_path_factory, LOGISTIC)


@pytest.fixture(scope="session")
def older(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Example:
    return make_production(pulled_example, tmp_path_factory, LOGISTIC, holdout_predictions=False)
