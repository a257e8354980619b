"""Tests for ci_ml.export (convert, runtime) and ``ci-ml export``: real skl2onnx conversions and
real ONNX Runtime sessions of real scikit-learn fits (the example credit data and small
synthetic data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.config import DataConfig, ModelConfig, load_config
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import ModelFileError
from ci_ml.export.convert import export_onnx
from ci_ml.export.parity import parity, parity_gate
from ci_ml.models.runtime import OnnxPredictor
from ci_ml.serve.input import FeatureSchema, to_frame
from ci_ml.serve.model import LoadedModel
from ci_ml.training import build_pipeline, feature_schema, fit
from tests.conftest import REPO, run_cli
from tests.training.test_builtin import credit_like, many_valued

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


@pytest.fixture(scope="module")
def credit(pulled_example: Path) -> Dataset:
    """The example credit data, split as ci-ml.yaml says."""
    config = load_config(REPO / "ci-ml.yaml")
    return load_dataset(pulled_example, config.data)


@pytest.fixture(scope="module")
def example(credit: Dataset) -> tuple[Any, list[dict[str, Any]]]:
    """The example pipeline (HistGradientBoostingClassifier with ci-ml.yaml's params), fitted."""
    model_cfg = load_config(REPO / "ci-ml.yaml").model
    schema = feature_schema(credit.train, credit.features)
    return fit(build_pipeline(model_cfg, schema), credit, HGB), schema


def _fit(dataset: Dataset, estimator: str, **params: Any) -> tuple[Any, list[dict[str, Any]]]:
    schema = feature_schema(dataset.train, dataset.features)
    config = ModelConfig(estimator=estimator, params=params)
    return fit(build_pipeline(config, schema), dataset, estimator), schema


@pytest.fixture
def small(tmp_path: Path) -> Dataset:
    credit_like().to_csv(tmp_path / "credit.csv", index=False)
    return load_dataset(
        tmp_path, DataConfig(path="credit.csv", target="status", positive_class="bad")
    )


# -- parity ---------------------------------------------------------------------------------


def test_the_example_pipeline_passes_parity(example: Any, credit: Dataset, tmp_path: Path) -> None:
    model, schema = example
    path = export_onnx(model, schema, "classification", tmp_path / "model.onnx")
    record = parity(model, path, credit.x("holdout"), "classification", "bad", 0.5)
    assert record["success"], record
    assert record["rows"] == len(credit.holdout)
    assert record["max_abs_diff"] < 1e-5
    assert record["class_flips"] == 0
    assert record["max_diff_row"] in credit.holdout.index
    json.dumps(record, allow_nan=False)
    gate = parity_gate(record)
    assert (gate.kind, gate.verdict) == ("parity", "pass")
    assert "≤ 0.0001" in gate.rule and "no row changes class" in gate.rule


def test_a_float32_graph_of_the_example_fails_parity_naming_rows(
    example: Any, credit: Dataset, tmp_path: Path
) -> None:
    # a float32 scaler lands an ulp beside tree thresholds that sit on training values
    model, schema = example
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx", "float32")
    record = parity(model, path, credit.x("holdout"), "classification", "bad", 0.5)
    assert not record["success"]
    assert record["class_flips"] > 0 and record["max_abs_diff"] > 1e-2
    flipped = record["first_flipped_rows"][0]
    assert flipped["row"] in credit.holdout.index
    assert (flipped["original"] >= 0.5) != (flipped["onnx"] >= 0.5)
    gate = parity_gate(record)
    assert gate.verdict == "fail"
    assert f"row {flipped['row']}" in gate.reason and "change class" in gate.reason


def test_gradient_boosting_converts_with_the_pinned_protobuf(
    small: Dataset, tmp_path: Path
) -> None:
    # skl2onnx 1.20 writes Python bools into an int attribute of its tree converter;
    # protobuf 7 refuses them ("Expected an int, got a boolean"), so the extra pins protobuf<7
    model, schema = _fit(small, HGB, max_iter=10)
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    assert parity(model, path, small.x("holdout"), "classification", "bad", 0.5)["success"]


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.linear_model.LogisticRegression",
    ],
)
def test_other_classifiers_pass_parity(small: Dataset, tmp_path: Path, estimator: str) -> None:
    model, schema = _fit(small, estimator)
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    record = parity(model, path, small.x("holdout"), "classification", "bad", 0.5)
    assert record["success"], record


def _spend(tmp_path: Path) -> Dataset:
    frame = credit_like().drop(columns="status")
    frame["spend"] = frame["age"] * 3.5 + frame["income"].fillna(40) + 1000
    frame.to_csv(tmp_path / "spend.csv", index=False)
    return load_dataset(tmp_path, DataConfig(path="spend.csv", target="spend", task="regression"))


@pytest.mark.parametrize(
    "estimator", ["sklearn.linear_model.Ridge", "sklearn.linear_model.LinearRegression"]
)
def test_regressors_pass_parity(tmp_path: Path, estimator: str) -> None:
    data = _spend(tmp_path)
    model, schema = _fit(data, estimator)
    path = export_onnx(model, schema, "regression", tmp_path / "m.onnx")
    record = parity(model, path, data.x("holdout"), "regression", tolerance=1e-4)
    assert record["success"], record
    assert record["class_flips"] == 0 and "× max(1, |value|)" in record["rule"]


@pytest.mark.parametrize(
    "estimator",
    [HGB, "sklearn.ensemble.RandomForestClassifier", "sklearn.linear_model.LogisticRegression"],
)
def test_a_many_valued_categorical_exports(tmp_path: Path, estimator: str) -> None:
    # 60 categories: HistGradientBoosting is given a dense array, the others may get a sparse
    # matrix; the export takes both pipelines
    many_valued("classification").to_csv(tmp_path / "data.csv", index=False)
    config = DataConfig(path="data.csv", target="target", positive_class="bad")
    data = load_dataset(tmp_path, config)
    model, schema = _fit(data, estimator)
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    record = parity(model, path, data.x("holdout"), "classification", "bad", 0.5)
    assert record["success"], record


def test_tree_regressor_parity_fails_exactly_when_float32_inputs_cross_a_threshold(
    tmp_path: Path,
) -> None:
    # ONNX tree ensembles compare float32 inputs: a row whose preprocessed value rounds across
    # a split threshold lands in another leaf. scikit-learn given the same float32 values
    # shows whether that happens; the gate must pass exactly when it does not
    data = _spend(tmp_path)
    model, schema = _fit(data, "sklearn.ensemble.HistGradientBoostingRegressor")
    path = export_onnx(model, schema, "regression", tmp_path / "m.onnx")
    record = parity(model, path, data.x("holdout"), "regression", tolerance=1e-4)
    (_, prepare), (_, estimator) = model.steps
    z = prepare.transform(data.x("holdout"))
    exact = estimator.predict(z)
    rounded = estimator.predict(z.astype(np.float32).astype(np.float64))
    crosses = np.abs(exact - rounded) > 1e-4 * np.maximum(1.0, np.abs(exact))
    assert record["success"] == (not crosses.any()), record
    assert record["rows_over_tolerance"] >= int(crosses.sum())


# -- unsupported pipelines ------------------------------------------------------------------


def test_an_unsupported_estimator_is_named(small: Dataset, tmp_path: Path) -> None:
    model, schema = _fit(small, "sklearn.neighbors.KNeighborsClassifier")
    with pytest.raises(ModelFileError, match=r"KNeighborsClassifier.*not supported"):
        export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_unsupported_preprocessing_step_is_named(small: Dataset, tmp_path: Path) -> None:
    from sklearn.preprocessing import MinMaxScaler

    model, schema = _fit(small, "sklearn.linear_model.LogisticRegression")
    numeric = model.named_steps["prepare"].named_transformers_["numeric"]
    numeric.steps[1] = (
        "scale",
        MinMaxScaler().fit(numeric.steps[0][1].transform(small.train[["income", "age"]])),
    )
    with pytest.raises(ModelFileError, match=r"branch 'numeric' \(SimpleImputer -> MinMaxScaler\)"):
        export_onnx(model, schema, "classification", tmp_path / "m.onnx")


# -- answers: single row vs batch, nulls, unseen categories ---------------------------------


def _odd_rows(dataset: Dataset) -> list[dict[str, Any]]:
    """Holdout rows plus rows with nulls everywhere and categories the model never saw."""
    rows = dataset.x("holdout").head(6).astype(object)
    records = [
        {k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows.to_dict("records")
    ]
    blank = dict.fromkeys(dataset.features)
    unseen = {
        **records[0],
        **{c: "never-seen" for c in dataset.features if c in ("home", "Home", "Job", "Marital")},
    }
    return [*records, blank, unseen, {**records[1], "income": None, "Income": None}]


def _keep_features(rows: list[dict[str, Any]], features: list[str]) -> list[dict[str, Any]]:
    return [{k: r.get(k) for k in features} for r in rows]


@pytest.mark.parametrize("which", ["example", "small"])
def test_one_row_alone_and_in_a_batch_get_the_same_answer(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if which == "example":
        dataset: Dataset = request.getfixturevalue("credit")
        model, schema = request.getfixturevalue("example")
    else:
        dataset = request.getfixturevalue("small")
        model, schema = _fit(dataset, HGB, max_iter=30)
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    rows = _keep_features(_odd_rows(dataset), dataset.features)
    features = FeatureSchema.from_card(schema)
    onnx = OnnxPredictor(path, schema, "classification", positive_class="bad", threshold=0.5)
    sklearn = _served(model, features)
    for predictor in (onnx, sklearn):
        batch = predictor.predict(to_frame(rows, features))
        alone = [predictor.predict(to_frame([row], features))[0] for row in rows]
        assert alone == batch
    onnx_answers = onnx.predict(to_frame(rows, features))
    assert onnx.predict(rows) == onnx_answers  # records work like the service's frame
    for ours, theirs in zip(onnx_answers, sklearn.predict(to_frame(rows, features)), strict=True):
        assert ours["label"] == theirs["label"]
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-5)


def test_the_predictor_refuses_an_export_of_other_features(example: Any, tmp_path: Path) -> None:
    model, schema = example
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="not the model's features"):
        OnnxPredictor(path, [{"name": "other", "kind": "numeric"}], "classification")


# -- the command ----------------------------------------------------------------------------


def _trained_project(
    tmp_path: Path, data: Path, estimator: str, trusted: tuple[str, ...] = (), **params: Any
) -> Path:
    """A project (no DVC, no GX suite) with one trained run, made through the CLI."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(data, root / "credit.csv")
    config = {
        "data": {
            "path": "credit.csv",
            "target": "Status",
            "positive_class": "bad",
            "task": "classification",
            "holdout": {"fraction": 0.2, "seed": 42},
        },
        "model": {"estimator": estimator, "params": params, "trusted_types": list(trusted)},
        "gates": [{"metric": "roc_auc", "min": 0.5}],
    }
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config))
    for step in ("pull", "validate", "train"):
        done = run_cli(step, cwd=root)
        assert done.returncode == 0, done.stderr
    return root


@pytest.mark.slow
def test_export_command_passes_and_blocks(pulled_example: Path, tmp_path: Path) -> None:
    root = _trained_project(
        tmp_path,
        pulled_example / "data" / "credit_data.csv",
        HGB,
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
    )
    run_dir = (root / ".ci-ml" / "runs" / "latest").resolve()
    done = run_cli("export", "--format", "onnx", cwd=root)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "model.onnx").is_file()
    record = json.loads((run_dir / "parity.json").read_text())
    assert record["success"] and record["model_digest"]
    done = run_cli("export", "--numeric-dtype", "float32", "--run-dir", str(run_dir), cwd=root)
    assert done.returncode == 1, done.stderr
    record = json.loads((run_dir / "parity.json").read_text())
    first = record["first_flipped_rows"][0]
    assert "ONNX parity failed" in done.stderr and "change class" in done.stderr
    assert f"row {first['row']}" in done.stderr


@pytest.mark.slow
def test_export_command_names_the_unsupported_step(tmp_path: Path) -> None:
    data = tmp_path / "credit.csv"
    credit_like().rename(columns={"status": "Status"}).to_csv(data, index=False)
    # the model file holds a KD-tree, a type the user must trust (docs/config.md)
    trusted = (
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
    )
    root = _trained_project(tmp_path, data, "sklearn.neighbors.KNeighborsClassifier", trusted)
    done = run_cli("export", cwd=root)
    assert done.returncode == 2
    assert "sklearn.neighbors._classification.KNeighborsClassifier" in done.stderr
    assert "not supported" in done.stderr
    assert not (root / ".ci-ml" / "runs" / "latest" / "model.onnx").exists()


def test_the_export_serves_through_the_services_own_loaded_model(
    small: Dataset, tmp_path: Path
) -> None:
    # how `ci-ml serve` plugs it in: LoadedModel(model=OnnxPredictor(...).as_estimator(), ...)
    from ci_ml.serve.model import smoke_test

    model, schema = _fit(small, HGB, max_iter=30)
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    estimator = OnnxPredictor(path, schema, "classification", "bad").as_estimator()
    assert list(estimator.classes_) == list(model.classes_)
    features = FeatureSchema.from_card(schema)
    loaded = _served(estimator, features)
    rows = _keep_features(_odd_rows(small), small.features)
    smoke_test(loaded, rows)
    direct = OnnxPredictor(path, schema, "classification", "bad").predict(rows)
    assert loaded.predict(to_frame(rows, features)) == direct


def _served(model: Any, features: FeatureSchema) -> LoadedModel:
    """``model`` as `ci-ml serve` holds a binary classifier of the 'bad' class."""
    return LoadedModel(
        version="1",
        digest="x",
        loaded_at="now",
        model=model,
        schema=features,
        task="classification",
        threshold=0.5,
        classes=tuple(model.classes_.tolist()),
        positive_index=list(model.classes_).index("bad"),
    )
