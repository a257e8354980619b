"""Tests for ci_ml.training: the built-in Pipeline (real scikit-learn fits on small data), the
seed, bad estimators and params, and the user-command mode with a real training script."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ci_ml.config import DataConfig, ModelConfig
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import ConfigError, ModelFileError
from ci_ml.modelio import load_model, sha256_file
from ci_ml.training import (
    feature_schema,
    import_estimator,
    model_card,
    train_builtin,
    train_command,
)

LOGISTIC = "sklearn.linear_model.LogisticRegression"
FOREST = "sklearn.ensemble.RandomForestClassifier"


def credit_like(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A learnable target from a numeric and a categorical feature, with missing values."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, n)
    home = rng.choice(["owner", "rent", "parents"], n)
    risk = -0.08 * (income - 50) + np.where(home == "rent", 1.0, -0.5) + rng.normal(0, 0.7, n)
    frame = pd.DataFrame(
        {
            "income": income.round(2),
            "age": rng.integers(18, 80, n),
            "home": home,
            "status": np.where(risk > 0.6, "bad", "good"),
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "income"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "home"] = np.nan
    return frame


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    credit_like().to_csv(tmp_path / "credit.csv", index=False)
    return load_dataset(
        tmp_path, DataConfig(path="credit.csv", target="status", positive_class="bad")
    )


def positive_proba(model: Any, frame: pd.DataFrame, positive: str = "bad") -> np.ndarray:
    column = list(model.classes_).index(positive)
    return np.asarray(model.predict_proba(frame))[:, column]


def test_builtin_pipeline_fits_and_predicts(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "run" / "model.skops"
    model, digest = train_builtin(ModelConfig(estimator=LOGISTIC), dataset, path)
    assert digest == sha256_file(path)
    score = positive_proba(model, dataset.x("holdout"))
    assert score.shape == (len(dataset.holdout),)
    assert np.all((score >= 0) & (score <= 1))
    # it learned the signal, not just the base rate
    assert roc_auc_score(dataset.y("holdout") == "bad", score) > 0.75
    assert [name for name, _ in model.steps] == ["prepare", "model"]


def test_saved_model_predicts_like_the_fitted_one(dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    model, _ = train_builtin(ModelConfig(estimator=LOGISTIC), dataset, path)
    loaded = load_model(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(dataset.x("holdout")), model.predict_proba(dataset.x("holdout"))
    )


def test_unseen_categories_and_missing_values_are_handled(dataset: Dataset, tmp_path: Path) -> None:
    model, _ = train_builtin(ModelConfig(estimator=LOGISTIC), dataset, tmp_path / "m.skops")
    odd = pd.DataFrame(
        {"income": [np.nan, 40.0], "age": [30, 60], "home": ["castle", None]},
        columns=dataset.features,
    )
    assert positive_proba(model, odd).shape == (2,)


def fit_scores(dataset: Dataset, tmp_path: Path, name: str, **model: Any) -> np.ndarray:
    config = ModelConfig(estimator=FOREST, params={"n_estimators": 15, "max_depth": 4}, **model)
    fitted, _ = train_builtin(config, dataset, tmp_path / f"{name}.skops")
    return positive_proba(fitted, dataset.x("holdout"))


def test_same_seed_gives_identical_predictions(dataset: Dataset, tmp_path: Path) -> None:
    first = fit_scores(dataset, tmp_path, "a", seed=3)
    second = fit_scores(dataset, tmp_path, "b", seed=3)
    np.testing.assert_array_equal(first, second)


def test_the_seed_reaches_the_estimator(dataset: Dataset, tmp_path: Path) -> None:
    # the same-seed test above would pass for a seed that is ignored; this one would not
    assert not np.array_equal(
        fit_scores(dataset, tmp_path, "a", seed=3), fit_scores(dataset, tmp_path, "b", seed=4)
    )


def test_random_state_in_params_wins_over_the_seed(dataset: Dataset, tmp_path: Path) -> None:
    config = ModelConfig(estimator=FOREST, params={"n_estimators": 5, "random_state": 11}, seed=3)
    model, _ = train_builtin(config, dataset, tmp_path / "m.skops")
    assert model.steps[-1][1].random_state == 11


def test_feature_schema(dataset: Dataset) -> None:
    schema = {f["name"]: f for f in feature_schema(dataset.train, dataset.features)}
    assert schema["income"]["kind"] == "numeric"
    assert schema["age"]["kind"] == "numeric"
    assert schema["home"]["kind"] == "categorical"
    assert schema["home"]["categories"] == ["owner", "parents", "rent"]


def test_model_card_is_json_and_describes_the_model(dataset: Dataset, tmp_path: Path) -> None:
    config = ModelConfig(estimator=LOGISTIC, params={"C": 0.5})
    model, digest = train_builtin(config, dataset, tmp_path / "m.skops")
    card = model_card(config, dataset, model, digest, {"data_version": "md5:abc"})
    card = json.loads(json.dumps(card, allow_nan=False))
    assert card["estimator"] == LOGISTIC
    assert card["params"]["C"] == 0.5
    assert card["configured_params"] == {"C": 0.5}
    assert card["digest"] == digest
    assert card["classes"] == ["bad", "good"]
    assert card["positive_class"] == "bad"
    assert card["training_rows"] == len(dataset.train)
    assert card["data_version"] == "md5:abc"
    assert [f["name"] for f in card["feature_schema"]] == dataset.features


# --- bad estimators and params -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "sklearn.linear_model.LogisticRegresion",
            "'sklearn.linear_model.LogisticRegresion' cannot be imported",
        ),
        ("skleran.linear_model.LogisticRegression", "cannot be imported"),
        ("LogisticRegression", "give a full import path"),
        ("sklearn.metrics.roc_auc_score", "is not an estimator class with fit()"),
    ],
)
def test_unusable_estimator_paths(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        import_estimator(path)
    assert str(info.value).startswith("model.estimator: ")


def test_an_unknown_estimator_is_a_config_error_before_any_fit(
    dataset: Dataset, tmp_path: Path
) -> None:
    config = ModelConfig(estimator="sklearn.ensemble.GradientBoostedTrees")
    with pytest.raises(ConfigError, match="GradientBoostedTrees"):
        train_builtin(config, dataset, tmp_path / "m.skops")
    assert not (tmp_path / "m.skops").exists()


def test_an_unknown_param_names_the_estimator(dataset: Dataset, tmp_path: Path) -> None:
    config = ModelConfig(estimator=LOGISTIC, params={"max_iterations": 10})
    with pytest.raises(ConfigError) as info:
        train_builtin(config, dataset, tmp_path / "m.skops")
    message = str(info.value)
    assert message.startswith("model.params: ")
    assert LOGISTIC in message and "max_iterations" in message
    assert not (tmp_path / "m.skops").exists()


def test_a_bad_param_value_names_the_estimator(dataset: Dataset, tmp_path: Path) -> None:
    config = ModelConfig(estimator=LOGISTIC, params={"C": -1.0})
    with pytest.raises(ConfigError) as info:
        train_builtin(config, dataset, tmp_path / "m.skops")
    message = str(info.value)
    assert f"fitting {LOGISTIC} failed" in message
    assert "'C'" in message and "check model.params" in message
    assert "\n" not in message
    assert list(tmp_path.glob("*.skops")) == []


# --- the user's own training command -------------------------------------------------

TRAIN_SCRIPT = """\
import os, sys
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression

frame = pd.read_parquet(os.environ["CI_ML_TRAIN_DATA"])
target = os.environ["CI_ML_TARGET"]
numeric = frame.drop(columns=[target]).select_dtypes("number").fillna(0)
model = LogisticRegression(random_state=int(os.environ["CI_ML_SEED"])).fit(numeric, frame[target])
sio.dump(model, os.environ["CI_ML_MODEL_PATH"])
print("trained on", len(frame), "rows")
"""


def command_config(command: str, **options: Any) -> ModelConfig:
    return ModelConfig(command=command, output="build/model.skops", **options)


def test_user_command_trains_with_skops(
    dataset: Dataset, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    (tmp_path / "build").mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = command_config(f"{shlex.quote(sys.executable)} train.py", seed=5)
    model, digest = train_command(config, dataset, tmp_path, run_dir, run_dir / "model.skops")
    assert digest == sha256_file(run_dir / "model.skops")
    assert digest == sha256_file(tmp_path / "build" / "model.skops")
    assert model.random_state == 5
    assert sorted(model.feature_names_in_) == ["age", "income"]
    assert set(model.classes_) == {"bad", "good"}
    # the script's own output goes to stderr: stdout is kept for `ci-ml train --json`
    out, err = capfd.readouterr()
    assert f"trained on {len(dataset.train)} rows" in err
    assert "trained on" not in out


def test_a_failing_command_is_a_model_file_error(dataset: Dataset, tmp_path: Path) -> None:
    config = command_config("echo starting; exit 3")
    with pytest.raises(ModelFileError, match=r"'echo starting; exit 3' exited with 3"):
        train_command(config, dataset, tmp_path, tmp_path, tmp_path / "model.skops")
    assert not (tmp_path / "model.skops").exists()


def test_a_command_that_writes_nothing(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        train_command(command_config("true"), dataset, tmp_path, tmp_path, tmp_path / "model.skops")
    message = str(info.value)
    assert "wrote no model" in message
    assert str(tmp_path / "build" / "model.skops") in message
    assert not (tmp_path / "model.skops").exists()


def test_a_command_that_writes_a_pickle(dataset: Dataset, tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    command = (
        f'{shlex.quote(sys.executable)} -c "import pickle, os; '
        "pickle.dump({'a': 1}, open(os.environ['CI_ML_MODEL_PATH'], 'wb'))\""
    )
    with pytest.raises(ModelFileError, match="not a skops model file"):
        train_command(
            command_config(command), dataset, tmp_path, tmp_path, tmp_path / "model.skops"
        )
    assert not (tmp_path / "model.skops").exists()
