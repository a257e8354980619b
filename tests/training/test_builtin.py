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
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score

from ci_ml.config import DataConfig, ModelConfig
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import ConfigError, DataError, ModelFileError
from ci_ml.models import load_model, sha256_file
from ci_ml.training import (
    feature_schema,
    import_estimator,
    make_estimator,
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
    # scikit-learn's own check of the values runs before any fit
    assert message.startswith(f"model.params: {LOGISTIC} rejects them (")
    assert "'C' parameter" in message and "Got -1.0" in message
    assert "\n" not in message
    assert list(tmp_path.glob("*.skops")) == []


def test_a_transformer_is_not_a_model() -> None:
    with pytest.raises(ConfigError) as info:
        import_estimator("sklearn.preprocessing.StandardScaler")
    message = str(info.value)
    assert "'sklearn.preprocessing.StandardScaler' has no predict()" in message
    assert "classifier or a regressor" in message
    assert "another target" not in message


def test_a_regressor_for_a_classification_target(dataset: Dataset, tmp_path: Path) -> None:
    config = ModelConfig(estimator="sklearn.ensemble.RandomForestRegressor")
    with pytest.raises(ConfigError) as info:
        train_builtin(config, dataset, tmp_path / "m.skops")
    message = str(info.value)
    assert "RandomForestRegressor is a regressor, but the task is classification" in message
    assert "model.params" not in message
    assert not (tmp_path / "m.skops").exists()


def test_a_classifier_for_a_regression_target(tmp_path: Path) -> None:
    frame = credit_like().assign(status=lambda f: f["income"].fillna(0) * 2.5)
    frame.to_csv(tmp_path / "credit.csv", index=False)
    dataset = load_dataset(tmp_path, DataConfig(path="credit.csv", target="status"))
    assert dataset.task == "regression"
    with pytest.raises(ConfigError, match="LogisticRegression is a classifier, but the task is"):
        train_builtin(ModelConfig(estimator=LOGISTIC), dataset, tmp_path / "m.skops")


@pytest.mark.parametrize("estimator", ["sklearn.svm.LinearSVC", "sklearn.svm.SVC"])
def test_a_classifier_without_probabilities(
    dataset: Dataset, tmp_path: Path, estimator: str
) -> None:
    with pytest.raises(ConfigError) as info:
        train_builtin(ModelConfig(estimator=estimator), dataset, tmp_path / "m.skops")
    assert f"{estimator} (with these model.params) has no predict_proba()" in str(info.value)
    assert not (tmp_path / "m.skops").exists()


class FailsOnFit(ClassifierMixin, BaseEstimator):
    """An estimator whose fit refuses the data (not its params)."""

    def fit(self, x: Any, y: Any) -> FailsOnFit:
        raise ValueError("this estimator needs at least 10,000 rows")

    def predict(self, x: Any) -> Any:
        raise NotImplementedError

    def predict_proba(self, x: Any) -> Any:
        raise NotImplementedError


def test_a_fit_that_fails_on_the_data_does_not_blame_the_params(
    dataset: Dataset, tmp_path: Path
) -> None:
    config = ModelConfig(estimator="tests.training.test_builtin.FailsOnFit")
    with pytest.raises(ConfigError) as info:
        train_builtin(config, dataset, tmp_path / "m.skops")
    message = str(info.value)
    assert f"on the {len(dataset.train)} training rows failed" in message
    assert "needs at least 10,000 rows" in message
    assert "model.params" not in message


class MajorityModel:
    """A model outside scikit-learn's conventions: no get_params, no tags."""

    def fit(self, x: Any, y: Any) -> MajorityModel:
        values, counts = np.unique(np.asarray(y), return_counts=True)
        self.classes_ = values
        self.share_ = counts / counts.sum()
        return self

    def predict(self, x: Any) -> Any:
        return np.repeat(self.classes_[self.share_.argmax()], np.shape(x)[0])

    def predict_proba(self, x: Any) -> Any:
        return np.tile(self.share_, (np.shape(x)[0], 1))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_model_without_scikit_learn_tags_is_built(task: str) -> None:
    # no get_params and no tags: its kind is unknown, so neither task is refused
    config = ModelConfig(estimator="tests.training.test_builtin.MajorityModel", seed=3)
    assert isinstance(make_estimator(config, task), MajorityModel)


@pytest.mark.parametrize(
    ("values", "what"),
    [([True, False, None], "true/false values"), ([b"a", b"b", None], "bytes values")],
)
def test_a_non_text_categorical_is_named(tmp_path: Path, values: list[Any], what: str) -> None:
    frame = credit_like()
    frame["member"] = pd.Series(values * (len(frame) // 3 + 1), dtype=object)[: len(frame)]
    frame.to_parquet(tmp_path / "credit.parquet", index=False)
    dataset = load_dataset(
        tmp_path, DataConfig(path="credit.parquet", target="status", positive_class="bad")
    )
    with pytest.raises(DataError) as info:
        train_builtin(ModelConfig(estimator=LOGISTIC), dataset, tmp_path / "m.skops")
    message = str(info.value)
    assert f"column 'member' holds {what}" in message
    assert "model.params" not in message
    assert not (tmp_path / "m.skops").exists()


def test_a_true_false_column_with_missing_values_from_a_csv_is_named(tmp_path: Path) -> None:
    frame = credit_like()
    frame["member"] = (["True", "False", ""] * (len(frame) // 3 + 1))[: len(frame)]
    frame.to_csv(tmp_path / "credit.csv", index=False)
    dataset = load_dataset(
        tmp_path, DataConfig(path="credit.csv", target="status", positive_class="bad")
    )
    with pytest.raises(DataError, match="column 'member' holds true/false values"):
        train_builtin(ModelConfig(estimator=LOGISTIC), dataset, tmp_path / "m.skops")


# --- what the estimator is given: dense or sparse -----------------------------------


def many_valued(task: str, n: int = 480, seed: int = 0) -> pd.DataFrame:
    """A numeric feature and a 60-valued categorical: one-hot output of density ~3%."""
    rng = np.random.default_rng(seed)
    branch = rng.integers(0, 60, n)
    signal = rng.normal(size=n) + (branch % 3 == 0)
    frame = pd.DataFrame(
        {"amount": rng.normal(size=n).round(3), "branch": [f"b{b}" for b in branch]}
    )
    if task == "classification":
        frame["target"] = np.where(signal > 0.5, "bad", "good")
    else:
        frame["target"] = (signal * 10).round(3)
    return frame


CLASSIFIERS = {
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 20},
    "sklearn.ensemble.RandomForestClassifier": {"n_estimators": 10},
    "sklearn.ensemble.ExtraTreesClassifier": {"n_estimators": 10},
    "sklearn.ensemble.GradientBoostingClassifier": {"n_estimators": 10},
    "sklearn.tree.DecisionTreeClassifier": {},
    "sklearn.linear_model.LogisticRegression": {},
    "sklearn.naive_bayes.GaussianNB": {},
    "sklearn.neighbors.KNeighborsClassifier": {},
    "sklearn.linear_model.SGDClassifier": {"loss": "log_loss"},
    "sklearn.neural_network.MLPClassifier": {"max_iter": 50},
}
REGRESSORS = {
    "sklearn.ensemble.HistGradientBoostingRegressor": {"max_iter": 20},
    "sklearn.ensemble.RandomForestRegressor": {"n_estimators": 10},
    "sklearn.ensemble.ExtraTreesRegressor": {"n_estimators": 10},
    "sklearn.ensemble.GradientBoostingRegressor": {"n_estimators": 10},
    "sklearn.tree.DecisionTreeRegressor": {},
    "sklearn.linear_model.LinearRegression": {},
    "sklearn.linear_model.Ridge": {},
    "sklearn.linear_model.Lasso": {},
    "sklearn.linear_model.ElasticNet": {},
    "sklearn.neighbors.KNeighborsRegressor": {},
    "sklearn.svm.SVR": {},
}
ESTIMATORS = [("classification", e, p) for e, p in CLASSIFIERS.items()] + [
    ("regression", e, p) for e, p in REGRESSORS.items()
]


@pytest.mark.parametrize(
    ("task", "estimator", "params"),
    ESTIMATORS,
    ids=[e.rpartition(".")[2] for _, e, _ in ESTIMATORS],
)
def test_every_estimator_fits_a_many_valued_categorical(
    tmp_path: Path, task: str, estimator: str, params: dict[str, Any]
) -> None:
    import scipy.sparse
    from sklearn.utils import get_tags

    many_valued(task).to_csv(tmp_path / "data.csv", index=False)
    dataset = load_dataset(tmp_path, DataConfig(path="data.csv", target="target", task=task))
    config = ModelConfig(estimator=estimator, params=params)
    model, _ = train_builtin(config, dataset, tmp_path / "m.skops")
    prepared = model[:-1].transform(dataset.x("holdout"))
    # sparse only for an estimator that says it takes sparse input; dense for every other
    takes_sparse = get_tags(model[-1]).input_tags.sparse
    assert scipy.sparse.issparse(prepared) == takes_sparse
    if task == "classification":
        score = positive_proba(model, dataset.x("holdout"))
        assert np.all((score >= 0) & (score <= 1))
    else:
        score = np.asarray(model.predict(dataset.x("holdout")), dtype=float)
    assert score.shape == (len(dataset.holdout),) and np.all(np.isfinite(score))


def test_the_sparse_case_is_really_exercised() -> None:
    """At least one estimator of each kind above takes sparse input, and one does not."""
    from sklearn.utils import get_tags

    from ci_ml.training import import_estimator as load

    for group in (CLASSIFIERS, REGRESSORS):
        kinds = {get_tags(load(name)(**params)).input_tags.sparse for name, params in group.items()}
        assert kinds == {True, False}


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
