"""Tests for ci_ml.models: skops round trips (the built-in pipeline of every supported
estimator), refusing pickles and untrusted types (eval, os.system...), the trust list kept
exact, and the digest check of load_candidate."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ci_ml import rundir
from ci_ml.config import ModelConfig, Task
from ci_ml.data import Dataset
from ci_ml.errors import ModelFileError, RunDirError
from ci_ml.export.convert import SUPPORTED_ESTIMATORS
from ci_ml.models import TRUSTED_TYPES, load_model, save_model, sha256_file
from ci_ml.project import load_candidate, open_project
from ci_ml.records import ModelCard, write_record
from ci_ml.training import train_builtin
from tests._custom_estimator import MeanThresholdClassifier

CUSTOM = f"{MeanThresholdClassifier.__module__}.{MeanThresholdClassifier.__qualname__}"


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    return x, (x.sum(axis=1) + rng.normal(0, 0.5, 120) > 0).astype(int)


@pytest.fixture(scope="module")
def fitted(xy: tuple[np.ndarray, np.ndarray]) -> object:
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(*xy)


def test_save_and_load_round_trip(
    fitted: object, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path = tmp_path / "model.skops"
    digest = save_model(fitted, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)
    assert zipfile.is_zipfile(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(xy[0]), fitted.predict_proba(xy[0]))
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]  # no temp file left


def test_the_same_fitted_model_saves_to_the_same_bytes(
    xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    # skops names arrays by object ids and stamps entries with the time; the saved file
    # must not: an identical retrain is the same registry version
    first = make_pipeline(StandardScaler(), LogisticRegression()).fit(*xy)
    again = make_pipeline(StandardScaler(), LogisticRegression()).fit(*xy)
    one = save_model(first, tmp_path / "one.skops")
    two = save_model(again, tmp_path / "two.skops")
    assert one == two
    assert (tmp_path / "one.skops").read_bytes() == (tmp_path / "two.skops").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.skops") as saved:
        assert {info.date_time for info in saved.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = load_model(tmp_path / "two.skops")
    np.testing.assert_array_equal(loaded.predict_proba(xy[0]), first.predict_proba(xy[0]))


def test_a_failed_save_keeps_the_old_file(fitted: object, tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    save_model(fitted, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="generator"):
        save_model((step for step in range(3)), path)  # skops cannot store a generator
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


def test_a_pickle_is_refused(fitted: object, tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(fitted))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a skops model file")
    assert "never pickle" in message


def test_a_broken_skops_file(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", "{not json")
    with pytest.raises(ModelFileError, match=r"broken skops file"):
        load_model(path)


def test_a_missing_model_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found; run 'ci-ml train'"):
        load_model(tmp_path / "model.skops")


@pytest.fixture(scope="module")
def custom_file(
    xy: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("custom") / "model.skops"
    sio.dump(MeanThresholdClassifier().fit(*xy), path)
    return path


def test_an_untrusted_custom_type_is_refused(custom_file: Path) -> None:
    assert CUSTOM in sio.get_untrusted_types(file=custom_file)
    with pytest.raises(ModelFileError) as info:
        load_model(custom_file)
    message = str(info.value)
    assert f"untrusted type(s) {CUSTOM}" in message
    assert "model.trusted_types" in message


def test_a_custom_type_listed_as_trusted_loads(
    custom_file: Path, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    model = load_model(custom_file, trusted=[CUSTOM])
    assert isinstance(model, MeanThresholdClassifier)
    expected = MeanThresholdClassifier().fit(*xy).predict(xy[0])
    np.testing.assert_array_equal(model.predict(xy[0]), expected)


def test_trusting_another_type_does_not_help(custom_file: Path) -> None:
    with pytest.raises(ModelFileError, match="untrusted type"):
        load_model(custom_file, trusted=["tests._custom_estimator.SomethingElse"])


# --- nothing that can run code is built ------------------------------------------

DANGEROUS: dict[str, Callable[..., Any]] = {
    "builtins.eval": eval,
    "builtins.exec": exec,
    "builtins.getattr": getattr,
    f"{os.system.__module__}.system": os.system,  # posix.system on Linux
    "subprocess.Popen": subprocess.Popen,
}


@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_a_file_that_would_call_something_dangerous_is_refused(
    name: str, fitted: object, tmp_path: Path
) -> None:
    path = tmp_path / "model.skops"
    # hidden inside an otherwise ordinary fitted pipeline
    model = make_pipeline(FunctionTransformer(func=DANGEROUS[name]), fitted)
    sio.dump(model, path)
    assert name in sio.get_untrusted_types(file=path)
    with pytest.raises(ModelFileError) as info:
        load_model(path, trusted=[CUSTOM])  # trusting something else does not help
    message = str(info.value)
    assert message.startswith(f"{path}: refuses to load untrusted type(s) {name};")
    assert "model.trusted_types" in message and "only if you trust" in message


def test_every_refused_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(FunctionTransformer(func=eval, inverse_func=os.system), path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert f"type(s) builtins.eval, {os.system.__module__}.system;" in str(info.value)


# --- the built-in pipeline of every supported estimator loads ---------------------

ESTIMATORS: dict[str, Task] = {
    "sklearn.ensemble.HistGradientBoostingClassifier": "classification",
    "sklearn.ensemble.RandomForestClassifier": "classification",
    "sklearn.ensemble.ExtraTreesClassifier": "classification",
    "sklearn.ensemble.GradientBoostingClassifier": "classification",
    "sklearn.tree.DecisionTreeClassifier": "classification",
    "sklearn.linear_model.LogisticRegression": "classification",
    "sklearn.ensemble.HistGradientBoostingRegressor": "regression",
    "sklearn.ensemble.RandomForestRegressor": "regression",
    "sklearn.ensemble.ExtraTreesRegressor": "regression",
    "sklearn.ensemble.GradientBoostingRegressor": "regression",
    "sklearn.tree.DecisionTreeRegressor": "regression",
    "sklearn.linear_model.LinearRegression": "regression",
    "sklearn.linear_model.Ridge": "regression",
    "sklearn.linear_model.Lasso": "regression",
    "sklearn.linear_model.ElasticNet": "regression",
}


def test_these_are_all_the_supported_estimators() -> None:
    assert {path.rpartition(".")[2] for path in ESTIMATORS} == SUPPORTED_ESTIMATORS


def small_dataset(task: Task) -> Dataset:
    """Numeric and categorical features with missing values; a string or numeric target."""
    rng = np.random.default_rng(1)
    n = 160
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 15, n),
            "age": rng.integers(18, 80, n),
            "owner": rng.integers(0, 2, n).astype(bool),
            "home": rng.choice(["owner", "rent", "parents"], n).astype(object),
        }
    )
    signal = frame["income"] / 15 + (frame["home"] == "rent") + rng.normal(0, 0.5, n)
    frame["y"] = np.where(signal > 4, "bad", "good") if task == "classification" else signal
    frame.loc[::9, "income"] = np.nan
    frame.loc[::13, "home"] = None
    features = ["income", "age", "owner", "home"]
    train, holdout = (
        frame.iloc[:120].reset_index(drop=True),
        frame.iloc[120:].reset_index(drop=True),
    )
    positive = "bad" if task == "classification" else None
    return Dataset(train, holdout, "y", task, features, positive)


@pytest.fixture(scope="module")
def builtin_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, Any, Dataset]]:
    """Each supported estimator's built-in pipeline, fitted and saved the way 'ci-ml train' does."""
    folder = tmp_path_factory.mktemp("builtin")
    models = {}
    for estimator, task in ESTIMATORS.items():
        dataset = small_dataset(task)
        params = {"n_estimators": 10} if "Forest" in estimator or "Trees" in estimator else {}
        path = folder / f"{estimator}.skops"
        model, _ = train_builtin(ModelConfig(estimator=estimator, params=params), dataset, path)
        models[estimator] = (path, model, dataset)
    return models


def test_the_trust_list_is_what_the_builtin_pipelines_need(
    builtin_models: dict[str, tuple[Path, Any, Dataset]],
) -> None:
    # exact both ways: a type the pipelines need is missing, or one no pipeline needs is listed
    needed = {
        t for path, _, _ in builtin_models.values() for t in sio.get_untrusted_types(file=path)
    }
    assert needed == TRUSTED_TYPES


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_the_builtin_pipeline_of_each_supported_estimator_loads(
    name: str, builtin_models: dict[str, tuple[Path, Any, Dataset]]
) -> None:
    path, fitted, dataset = builtin_models[name]
    loaded = load_model(path)
    rows = dataset.x("holdout")
    if ESTIMATORS[name] == "classification":
        np.testing.assert_array_equal(loaded.predict_proba(rows), fitted.predict_proba(rows))
    else:
        np.testing.assert_array_equal(loaded.predict(rows), fitted.predict(rows))


# --- load_candidate: the model must be the one that was trained ------------------

CONFIG = """\
data: {path: data.csv, target: y}
model: {estimator: sklearn.linear_model.LogisticRegression}
gates: [{metric: roc_auc, min: 0.5}]
"""


def write_card(run_dir: Path, digest: str) -> None:
    """A model.json as train writes it, for the model file of ``digest``."""
    card = ModelCard(
        estimator="sklearn.linear_model.LogisticRegression",
        params={},
        configured_params={},
        command=None,
        seed=0,
        threshold=0.5,
        task="classification",
        target="y",
        positive_class=1,
        classes=[0, 1],
        feature_schema=[],
        training_rows=10,
        digest=digest,
        created_at="2026-12-01T00:00:00+00:00",
        ci_ml_version="0.1.0",
        data_version="md5:x",
        git_sha=None,
        size_bytes=1,
        row_identity=["x0", "x1", "x2"],
    )
    write_record(run_dir, rundir.MODEL_CARD, card)


def candidate_run(tmp_path: Path, model: object) -> tuple[Path, Path]:
    (tmp_path / "ci-ml.yaml").write_text(CONFIG)
    run_dir = tmp_path / "run"
    digest = save_model(model, run_dir / rundir.MODEL)
    write_card(run_dir, digest)
    return tmp_path / "ci-ml.yaml", run_dir


def test_load_candidate_returns_the_trained_model(
    fitted: object, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    config, run_dir = candidate_run(tmp_path, fitted)
    model, card = load_candidate(open_project(config), run_dir)
    assert card.digest == sha256_file(run_dir / rundir.MODEL)
    np.testing.assert_array_equal(model.predict(xy[0]), fitted.predict(xy[0]))


def test_load_candidate_detects_a_swapped_model(
    fitted: object, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    config, run_dir = candidate_run(tmp_path, fitted)
    # a valid skops file, but not the one model.json describes
    other = LogisticRegression(C=0.01).fit(*xy)
    save_model(other, run_dir / rundir.MODEL)
    with pytest.raises(ModelFileError) as info:
        load_candidate(open_project(config), run_dir)
    message = str(info.value)
    assert "does not match the digest in model.json" in message
    assert "run 'ci-ml train' again" in message


def test_load_candidate_uses_the_projects_trusted_types(custom_file: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / rundir.MODEL).write_bytes(custom_file.read_bytes())
    write_card(run_dir, sha256_file(custom_file))
    config = tmp_path / "ci-ml.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ModelFileError, match="untrusted type"):
        load_candidate(open_project(config), run_dir)
    config.write_text(CONFIG.replace("model: {", f"model: {{trusted_types: [{CUSTOM}], "))
    model, _ = load_candidate(open_project(config), run_dir)
    assert isinstance(model, MeanThresholdClassifier)


def test_load_candidate_without_a_card(tmp_path: Path) -> None:
    (tmp_path / "ci-ml.yaml").write_text(CONFIG)
    with pytest.raises(RunDirError, match=r"model\.json is missing; run 'ci-ml train"):
        load_candidate(open_project(tmp_path / "ci-ml.yaml"), tmp_path)
