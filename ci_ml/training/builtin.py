"""The built-in trainer: a scikit-learn Pipeline around the configured estimator.

It imputes and scales numeric columns, imputes and one-hot encodes categorical ones, then
fits the configured estimator (any import path, e.g.
``sklearn.ensemble.HistGradientBoostingClassifier``, or a booster) with its params and a seed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ci_ml.config import ModelConfig
from ci_ml.data import Dataset
from ci_ml.errors import ConfigError, DataError, MissingExtra
from ci_ml.models import load_model, save_model
from ci_ml.models.bundle import framework_named, framework_of, save_bundle
from ci_ml.training.card import feature_schema, json_safe

# scikit-learn's default: a ColumnTransformer output below this density stays sparse
SPARSE_THRESHOLD = 0.3


def import_estimator(path: str) -> type:
    """The estimator class at ``module.Class``, or a ConfigError saying why not."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"model.estimator: found {path!r}; give a full import path such as "
            "'sklearn.ensemble.HistGradientBoostingClassifier'."
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        framework = framework_named(path)
        if framework is not None and exc.name == module_name.split(".")[0]:
            raise MissingExtra(
                f"model.estimator {path}", framework.extra, missing=framework.name
            ) from None
        raise ConfigError(
            f"model.estimator: {path!r} cannot be imported; check the spelling "
            "or install the package that provides it."
        ) from None
    except AttributeError:
        raise ConfigError(
            f"model.estimator: {path!r} cannot be imported; check the spelling "
            "or install the package that provides it."
        ) from None
    except Exception as exc:  # the module itself fails to import
        raise ConfigError(
            f"model.estimator: importing {module_name} failed ({type(exc).__name__}: "
            f"{_first_line(exc)}); fix that module or its installation."
        ) from None
    if not (isinstance(cls, type) and hasattr(cls, "fit")):
        raise ConfigError(f"model.estimator: {path!r} is not an estimator class with fit().")
    if not hasattr(cls, "predict"):
        raise ConfigError(
            f"model.estimator: {path!r} has no predict(), so it is not a model (a transformer?); "
            "give a classifier or a regressor, e.g. 'sklearn.ensemble.RandomForestClassifier'."
        )
    return cls


def make_estimator(config: ModelConfig, task: str | None = None) -> Any:
    """The configured estimator with its params and seed, checked to suit ``task`` (when
    known): a classifier with predict_proba for classification, no classifier for regression."""
    assert config.estimator is not None
    cls = import_estimator(config.estimator)
    params = {**_quiet_defaults(config), **config.params}
    try:
        estimator = cls(**params)
        known = estimator.get_params() if hasattr(estimator, "get_params") else {}
        if "random_state" in known and "random_state" not in params:
            estimator.set_params(random_state=config.seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model.params: {config.estimator} rejects them ({_first_line(exc)})."
        ) from None
    _check_params(config.estimator, estimator)
    if task is not None:
        _suits(config.estimator, estimator, task)
    return estimator


def _quiet_defaults(config: ModelConfig) -> dict[str, Any]:
    """What a boosting library needs to run quietly, leave no files behind and be seeded,
    unless model.params says otherwise: LightGBM and CatBoost log every iteration, CatBoost
    writes catboost_info/ into the current directory and takes its seed as random_seed."""
    framework = framework_named(config.estimator or "")
    if framework is None:
        return {}
    if framework.name == "lightgbm":
        return {"verbose": -1}
    if framework.name == "catboost":
        seeded = {"random_seed", "random_state"} & set(config.params)
        seed = {} if seeded else {"random_seed": config.seed}
        return {"verbose": False, "allow_writing_files": False, **seed}
    return {}


def _check_params(path: str, estimator: Any) -> None:
    """scikit-learn's own check of the param values (it runs at fit otherwise): a bad value is
    named before any data is read."""
    validate = getattr(estimator, "_validate_params", None)
    if not callable(validate):
        return
    try:
        validate()
    except Exception as exc:
        if _is_bad_param(exc):
            raise ConfigError(f"model.params: {path} rejects them ({_first_line(exc)}).") from None
        # anything else (e.g. an estimator without scikit-learn's constraints): fit decides


def _estimator_type(estimator: Any) -> str | None:
    """'classifier', 'regressor' or None (unknown), by scikit-learn's tags where it has them."""
    try:
        from sklearn.utils import get_tags

        return get_tags(estimator).estimator_type
    except Exception:  # not a scikit-learn estimator, or an older scikit-learn
        return getattr(estimator, "_estimator_type", None)


def _suits(path: str, estimator: Any, task: str) -> None:
    kinds = ("classifier", "regressor")
    wanted, other = kinds if task == "classification" else kinds[::-1]
    if _estimator_type(estimator) == other:
        raise ConfigError(
            f"model.estimator: {path} is a {other}, but the task is {task} (data.task, or "
            f"inferred from the target); give a {wanted} or set data.task."
        )
    if task == "classification" and not hasattr(estimator, "predict_proba"):
        raise ConfigError(
            f"model.estimator: {path} (with these model.params) has no predict_proba(); ci-ml "
            "scores a classifier by its probability of the positive class, so use one that has "
            "it (e.g. LogisticRegression rather than LinearSVC)."
        )


def accepts_sparse(estimator: Any) -> bool:
    """Whether the estimator says (through scikit-learn's tags) that it takes sparse input."""
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.sparse)
    except Exception:  # an older scikit-learn, or tags it cannot read: dense is always accepted
        return False


def build_pipeline(
    config: ModelConfig, schema: list[dict[str, Any]], task: str | None = None
) -> Any:
    """The preprocessing + estimator Pipeline for the built-in trainer.

    The one-hot columns reach the estimator as a sparse matrix only when it accepts one (by
    its tags); any other estimator (e.g. HistGradientBoosting) always gets a dense array.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    assert config.estimator is not None
    estimator = make_estimator(config, task)
    numeric = [f["name"] for f in schema if f["kind"] == "numeric"]
    categorical = [f["name"] for f in schema if f["kind"] == "categorical"]
    numeric_steps = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    # a branch without columns is left out: the ONNX converter has no graph for an empty one
    branches = [
        ("numeric", numeric_steps, numeric),
        ("categorical", categorical_steps, categorical),
    ]
    prepare = ColumnTransformer(
        [branch for branch in branches if branch[2]],
        sparse_threshold=SPARSE_THRESHOLD if accepts_sparse(estimator) else 0.0,
    )
    return Pipeline([("prepare", prepare), ("model", estimator)])


def fit(pipeline: Any, dataset: Dataset, estimator: str, y: Any = None) -> Any:
    """Fit the pipeline (on ``y``, else the target); a failure is a ConfigError naming the
    estimator, not a traceback."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    target = dataset.y("train") if y is None else y
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=".*feature names.*")
            return pipeline.fit(dataset.x("train"), target)
    except (ValueError, TypeError) as exc:
        first = _first_line(exc)
        if _is_bad_param(exc):
            raise ConfigError(
                f"model: fitting {estimator} failed ({first}); check model.params."
            ) from None
        raise ConfigError(
            f"model: fitting {estimator} on the {len(dataset.train)} training rows failed "
            f"({first}); see the estimator's documentation for what it accepts."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_bad_param(exc: Exception) -> bool:
    """scikit-learn's own error for a param value outside what the estimator allows."""
    try:
        from sklearn.utils._param_validation import InvalidParameterError
    except ImportError:
        return "parameter" in str(exc)
    return isinstance(exc, InvalidParameterError)


def train_builtin(config: ModelConfig, dataset: Dataset, model_path: Path) -> tuple[Any, str]:
    """Fit the built-in Pipeline and save it; returns (model, sha256)."""
    schema = feature_schema(dataset.train, dataset.features)
    pipeline = build_pipeline(config, schema, dataset.task)
    _categoricals_are_text(dataset, schema)
    if framework_of(pipeline.steps[-1][1]) is not None:
        return _train_booster(config, dataset, pipeline, model_path)
    model = fit(pipeline, dataset, str(config.estimator))
    return model, save_model(model, model_path)


def _train_booster(
    config: ModelConfig, dataset: Dataset, pipeline: Any, model_path: Path
) -> tuple[Any, str]:
    """Fit a booster (a classifier on the place of each row's class among the sorted
    classes) and save it as a model bundle; returns the bundle as loaded, and its sha256."""
    import numpy as np

    classes = None
    y = dataset.y("train")
    if dataset.task == "classification":
        values = np.unique(y.to_numpy())
        classes = [json_safe(v.item() if hasattr(v, "item") else v) for v in values]
        y = np.searchsorted(values, y.to_numpy())
    fitted = fit(pipeline, dataset, str(config.estimator), y)
    (_, prepare), (_, booster) = fitted.steps
    params = json_safe(booster.get_params(deep=False))
    digest = save_bundle(prepare, booster, dataset.task, classes, params, model_path)
    return load_model(model_path, config.trusted_types), digest


def _categoricals_are_text(dataset: Dataset, schema: list[dict[str, Any]]) -> None:
    """The built-in pipeline one-hot encodes a non-numeric column as text: true/false with
    missing values (pandas keeps them as objects) or other objects cannot be, so the column is
    named instead of the encoder's error."""
    import pandas as pd

    for feature in schema:
        if feature["kind"] != "categorical":
            continue
        name = feature["name"]
        values = pd.concat([dataset.train[name], dataset.holdout[name]], ignore_index=True)
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in ("string", "empty"):
            continue
        example = next((v for v in values.dropna() if not isinstance(v, str)), None)
        if example is None:
            continue
        what = "true/false values" if kind == "boolean" else f"{type(example).__name__} values"
        raise DataError(
            f"column '{name}' holds {what} (e.g. {example!r}) among missing ones or text, which "
            "the built-in trainer cannot one-hot encode; write the column as text (e.g. yes/no) "
            "or as numbers (e.g. 1/0, missing values as empty cells)."
        )
