"""Tests for ci_ml.export.boosters: the XGBoost, LightGBM and CatBoost boosters of model bundles
exported to ONNX, judged by the parity gate at 1e-5 on every holdout row, and served by
``load_version`` like the bundle. Real fits through the built-in trainer (``train_builtin``
writes and loads the bundle) on small synthetic data, and (slow) on the credit and hpc
examples."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml

from ci_ml import api, rundir
from ci_ml.config import DataConfig, ModelConfig, load_config
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.export.convert import export_onnx
from ci_ml.export.parity import parity
from ci_ml.models.runtime import OnnxPredictor
from ci_ml.project import open_project
from ci_ml.registry import open_registry
from ci_ml.serve.input import FeatureSchema, to_frame
from ci_ml.serve.model import LoadedModel, load_version
from ci_ml.training import feature_schema, train_builtin
from tests.cli.test_cli import assert_says_install, without
from tests.conftest import REPO, as_files, run_cli
from tests.hpc import HPC_CONFIG, hpc_project
from tests.training.test_builtin import credit_like, many_valued

TOLERANCE = 1e-5
FRAMEWORKS = ["xgboost", "lightgbm", "catboost"]
# small boosters: enough trees to be real models, few enough to fit in a second
ESTIMATORS = {
    ("xgboost", "classification"): ("xgboost.XGBClassifier", {"n_estimators": 30}),
    ("xgboost", "regression"): ("xgboost.XGBRegressor", {"n_estimators": 30}),
    ("lightgbm", "classification"): ("lightgbm.LGBMClassifier", {"n_estimators": 30}),
    ("lightgbm", "regression"): ("lightgbm.LGBMRegressor", {"n_estimators": 30}),
    ("catboost", "classification"): ("catboost.CatBoostClassifier", {"iterations": 30}),
    ("catboost", "regression"): ("catboost.CatBoostRegressor", {"iterations": 30}),
}


@dataclass(frozen=True)
class Exported:
    """A booster trained into a model bundle and its ONNX export."""

    framework: str
    dataset: Dataset
    model: Any
    schema: list[dict[str, Any]]
    bundle: Path
    onnx: Path


def export_booster(framework: str, dataset: Dataset, directory: Path, **params: Any) -> Exported:
    """Train ``framework``'s booster on ``dataset`` into a bundle, as `ci-ml train` does, and
    export the loaded bundle."""
    estimator, defaults = ESTIMATORS[(framework, dataset.task)]
    config = ModelConfig(estimator=estimator, params={**defaults, **params})
    directory.mkdir(parents=True, exist_ok=True)
    model, _digest = train_builtin(config, dataset, directory / "model.bundle")
    schema = feature_schema(dataset.train, dataset.features)
    path = export_onnx(model, schema, dataset.task, directory / "model.onnx")
    return Exported(framework, dataset, model, schema, directory / "model.bundle", path)


def judged(exported: Exported) -> dict[str, Any]:
    data = exported.dataset
    positive = data.positive_class if data.task == "classification" else None
    return parity(
        exported.model, exported.onnx, data.x("holdout"), data.task, positive, 0.5, TOLERANCE
    )


@pytest.fixture
def small(tmp_path: Path) -> Dataset:
    credit_like().to_csv(tmp_path / "credit.csv", index=False)
    config = DataConfig(path="credit.csv", target="status", positive_class="bad")
    return load_dataset(tmp_path, config)


@pytest.fixture
def spend(tmp_path: Path) -> Dataset:
    frame = credit_like().drop(columns="status")
    frame["spend"] = frame["age"] * 3.5 + frame["income"].fillna(40) + 1000
    frame.to_csv(tmp_path / "spend.csv", index=False)
    return load_dataset(tmp_path, DataConfig(path="spend.csv", target="spend", task="regression"))


# -- small data -----------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_booster_classifier_passes_parity_with_the_datas_labels(
    framework: str, small: Dataset, tmp_path: Path
) -> None:
    exported = export_booster(framework, small, tmp_path / framework)
    record = judged(exported)
    assert record["success"], record
    assert record["max_abs_diff"] < TOLERANCE and record["class_flips"] == 0
    graph = onnx.load(str(exported.onnx))
    meta = {p.key: json.loads(p.value) for p in graph.metadata_props}
    assert meta["ci_ml.classes"] == ["bad", "good"]
    assert meta["ci_ml.estimator"].startswith(f"{framework}.")
    assert meta["ci_ml.null_markers"] == {"home": "missing"}
    # the trees read and add in the library's float types (see ci_ml.export.boosters.casts)
    casts = [
        attribute.i
        for node in graph.graph.node
        if node.op_type == "Cast" and node.output[0].startswith("features_cast")
        for attribute in node.attribute
    ]
    float32, float64 = onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE
    assert (
        casts
        == {"xgboost": [float32], "lightgbm": [float64], "catboost": [float32, float64]}[framework]
    )
    # the graph's own label output names the data's classes, not the places 0/1
    predictor = OnnxPredictor(exported.onnx, exported.schema, "classification", "bad")
    rows = small.x("holdout")
    labels = predictor.session.run(["est_label"], predictor.feed(rows))[0]
    assert set(labels.tolist()) <= {"bad", "good"}
    np.testing.assert_array_equal(labels, exported.model.predict(rows))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_booster_regressor_passes_parity(framework: str, spend: Dataset, tmp_path: Path) -> None:
    record = judged(export_booster(framework, spend, tmp_path / framework))
    assert record["success"], record
    assert record["rows_over_tolerance"] == 0


def test_xgboost_on_a_sparse_matrix_takes_the_left_out_zeros_as_missing(tmp_path: Path) -> None:
    # a 60-valued categorical makes the ColumnTransformer output a sparse matrix, whose
    # unstored zeros XGBoost reads as missing (they follow each split's default branch);
    # the graph turns them into NaN, else most rows answer differently
    many_valued("classification").to_csv(tmp_path / "data.csv", index=False)
    config = DataConfig(path="data.csv", target="target", positive_class="bad")
    data = load_dataset(tmp_path, config)
    exported = export_booster("xgboost", data, tmp_path / "xgb")
    assert exported.model.named_steps["prepare"].sparse_output_
    record = judged(exported)
    assert record["success"], record
    unseen = pd.DataFrame({"amount": [0.0, np.nan], "branch": ["never-seen", None]})
    predictor = OnnxPredictor(exported.onnx, exported.schema, "classification", "bad")
    expected = exported.model.predict_proba(unseen)
    np.testing.assert_allclose(predictor.probabilities(unseen), expected, atol=TOLERANCE)


def test_lightgbm_compares_a_value_an_ulp_above_a_threshold_in_float64(
    small: Dataset, tmp_path: Path
) -> None:
    # LightGBM compares float64 values with float64 thresholds; in float32 both round to the
    # same number and the row would go left instead of right (hpc holdout row 548: Δp 0.073)
    exported = export_booster("lightgbm", small, tmp_path / "lgbm")
    prepare, model = (step for _, step in exported.model.steps)
    numeric = list(prepare.transformers_[0][2])
    scaler = prepare.named_transformers_["numeric"].named_steps["scale"]
    root = model.booster.dump_model()["tree_info"][0]["tree_structure"]
    feature, threshold = root["split_feature"], root["threshold"]
    assert feature < len(numeric), "the first split is on a numeric column"
    mean, scale = scaler.mean_[feature], scaler.scale_[feature]
    raw = threshold * scale + mean
    while (raw - mean) / scale <= threshold:  # the first raw value whose scaled one is above
        raw = np.nextafter(raw, np.inf)
    assert np.float32((raw - mean) / scale) == np.float32(threshold)
    above = small.x("holdout").head(1).copy()
    above[numeric[feature]] = raw
    below = above.copy()
    below[numeric[feature]] = np.nextafter(threshold * scale + mean, -np.inf)
    predictor = OnnxPredictor(exported.onnx, exported.schema, "classification", "bad")
    original = exported.model.predict_proba(pd.concat([above, below]))
    assert abs(original[0, 0] - original[1, 0]) > 1e-3, "the row must cross the split"
    np.testing.assert_allclose(predictor.probabilities(above), original[:1], atol=TOLERANCE)


@pytest.mark.parametrize(
    ("framework", "params", "named"),
    [
        ("xgboost", {"booster": "gblinear"}, "booster='gblinear'"),
        ("lightgbm", {"linear_tree": True}, "linear_tree=True"),
        ("catboost", {"grow_policy": "Depthwise"}, "grow_policy='Depthwise'"),
    ],
)
def test_a_booster_the_converters_cannot_take_is_named(
    framework: str, params: dict[str, Any], named: str, small: Dataset, tmp_path: Path
) -> None:
    with pytest.raises(ModelFileError, match=rf"cannot export to ONNX: .*{named}.*not supported"):
        export_booster(framework, small, tmp_path / framework, **params)
    assert not (tmp_path / framework / "model.onnx").exists()


def test_a_missing_onnxmltools_is_a_missing_extra(
    small: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxmltools", None)  # import onnxmltools fails
    with pytest.raises(MissingExtra) as caught:
        export_booster("xgboost", small, tmp_path / "xgb")
    assert str(caught.value) == (
        "ONNX export of XGBoost models needs the 'onnx' extra (onnxmltools is not installed); "
        "install it with: pip install 'ci-ml[onnx]'."
    )


# -- the examples (slow) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def credit(pulled_example: Path) -> Dataset:
    """The example credit data, split as ci-ml.yaml says."""
    return load_dataset(pulled_example, load_config(REPO / "ci-ml.yaml").data)


@pytest.fixture(scope="module")
def amount(pulled_example: Path) -> Dataset:
    """The credit data with the loan's Amount as a regression target."""
    data = load_config(REPO / "ci-ml.yaml").data
    regression = data.model_copy(update={"target": "Amount", "task": "regression"})
    return load_dataset(pulled_example, regression.model_copy(update={"positive_class": None}))


@pytest.fixture(scope="module")
def hpc(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The multiclass example (4 classes), pulled with DVC, split as its ci-ml.yaml says."""
    root = hpc_project(tmp_path_factory.mktemp("hpc"))
    subprocess.run([sys.executable, "-m", "dvc", "pull", "-q"], cwd=root, check=True)
    config = load_config(root / HPC_CONFIG)
    return load_dataset((root / HPC_CONFIG).parent, config.data)


EXAMPLES = [(f, d) for d in ("credit", "hpc", "amount") for f in FRAMEWORKS]


@pytest.fixture(scope="module", params=EXAMPLES, ids=[f"{f}-{d}" for f, d in EXAMPLES])
def example(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    framework, data = request.param
    dataset: Dataset = request.getfixturevalue(data)
    return export_booster(framework, dataset, tmp_path_factory.mktemp(f"{framework}-{data}"))


@pytest.mark.slow
def test_each_booster_of_the_examples_passes_parity_at_1e_5(example: Exported) -> None:
    record = judged(example)
    assert record["success"], record
    assert record["rows"] == len(example.dataset.holdout)
    assert record["rows_over_tolerance"] == 0
    assert record["class_flips"] == 0 and record["borderline_flips"] == 0
    if example.dataset.task == "classification":
        assert record["max_abs_diff"] <= TOLERANCE


@pytest.mark.slow
def test_each_booster_export_serves_like_its_bundle(example: Exported, tmp_path: Path) -> None:
    data = example.dataset
    version = _register(example, tmp_path)
    registry = open_registry(str(tmp_path / "registry"))
    loaded = load_version(registry, registry.get(version), [])
    assert loaded.runtime == "onnx"
    features = FeatureSchema.from_card(example.schema)
    rows = _odd_rows(data)
    frame = to_frame(rows, features)
    served = loaded.predict(frame)
    assert [loaded.predict(to_frame([row], features))[0] for row in rows] == served
    bundle = LoadedModel(
        version="bundle",
        digest="x",
        loaded_at="now",
        model=example.model,
        schema=features,
        task=loaded.task,
        threshold=0.5,
        classes=loaded.classes,
        positive_index=loaded.positive_index,
    )
    for ours, theirs in zip(served, bundle.predict(frame), strict=True):
        if data.task == "regression":
            assert ours["value"] == pytest.approx(theirs["value"], rel=TOLERANCE)
            continue
        assert ours["label"] == theirs["label"]
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=TOLERANCE)
        for name, p in theirs.get("probabilities", {}).items():
            assert ours["probabilities"][name] == pytest.approx(p, abs=TOLERANCE)


def _register(example: Exported, directory: Path) -> str:
    """The bundle, its export and model.json in a registry of ``directory``; the version."""
    data = example.dataset
    card = {
        "task": data.task,
        "positive_class": data.positive_class if data.task == "classification" else None,
        "threshold": 0.5,
        "feature_schema": example.schema,
    }
    (directory / "model.json").write_text(json.dumps(card), encoding="utf-8")
    files = {"model.bundle": example.bundle, "model.onnx": example.onnx}
    files["model.json"] = directory / "model.json"
    registry = open_registry(str(directory / "registry"))
    return registry.register(files, {}, by="tests", model_file="model.bundle").version


def _odd_rows(data: Dataset) -> list[dict[str, Any]]:
    """Holdout rows, a row of nulls, and a row whose categories the model never saw."""
    head = data.x("holdout").head(8).astype(object)
    rows = [{k: None if pd.isna(v) else v for k, v in r.items()} for r in head.to_dict("records")]
    categorical = [c for c in data.features if not pd.api.types.is_numeric_dtype(data.train[c])]
    unseen = {**rows[0], **dict.fromkeys(categorical, "never-seen")}
    return [*rows, dict.fromkeys(data.features), unseen]


@pytest.mark.slow
def test_export_command_on_a_booster_regression_project(
    pulled_example: Path, tmp_path: Path
) -> None:
    # a regressor of the credit data's Amount, as its ci-ml.yaml would say it
    root = tmp_path / "project"
    root.mkdir()
    (root / "credit.csv").write_bytes((pulled_example / "data/credit_data.csv").read_bytes())
    config = {
        "data": {
            "path": "credit.csv",
            "target": "Amount",
            "task": "regression",
            "holdout": {"fraction": 0.2, "seed": 42},
        },
        "model": {"estimator": "lightgbm.LGBMRegressor", "params": {"n_estimators": 30}},
        "gates": [{"metric": "rmse", "max": 1e6}],
        "export": {"format": "onnx", "tolerance": TOLERANCE},
    }
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config))
    for step in ("pull", "validate", "train"):
        done = run_cli(step, cwd=root)
        assert done.returncode == 0, done.stderr
    refused = without(["onnxmltools"], "export", cwd=root, tmp=tmp_path)
    line = assert_says_install(refused, "onnx")
    assert "ONNX export of LightGBM models needs the 'onnx' extra" in line
    assert not (root / ".ci-ml/runs/latest/model.onnx").exists()
    done = run_cli("export", cwd=root)
    assert done.returncode == 0, done.stderr
    record = json.loads((root / ".ci-ml/runs/latest/parity.json").read_text())
    assert record["success"] and record["tolerance"] == TOLERANCE
    assert record["compared"] == "predicted value" and record["rows"] > 800


@pytest.mark.slow
def test_run_exports_a_booster_gates_on_parity_and_serves_the_onnx(project: Path) -> None:
    # the example project with a LightGBM estimator: `ci-ml run` checks the config, trains a
    # bundle, exports it, gates on parity and registers both files
    path = project / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"] = {"estimator": "lightgbm.LGBMClassifier", "params": {"n_estimators": 100}}
    config["export"] = {"format": "onnx", "tolerance": TOLERANCE}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proj = open_project(path)
    results = as_files(api.run(proj, rundir.new_run_dir(proj.runs_dir)))
    gate = next(g for g in results["gate"]["gates"] if g["kind"] == "parity")
    assert gate["verdict"] == "pass", gate["reason"]
    version = results["register"]
    assert {"model.bundle", "model.onnx"} <= set(version.files)
    registry = open_registry(".ci-ml/registry", root=project)
    loaded = load_version(registry, registry.get(version.version), [])
    assert loaded.runtime == "onnx"
