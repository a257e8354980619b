"""A training command that writes its own ONNX model: a scikit-learn LogisticRegression
pipeline converted by skl2onnx, declared as docs/frameworks.md asks.

Run as a script it reads ci-ml's environment (``CI_ML_TRAIN_DATA``, ``CI_ML_TARGET``,
``CI_ML_FEATURES``, ``CI_ML_TASK``, ``CI_ML_SEED``) and writes ``$CI_ML_MODEL_PATH``; the
tests also call :func:`logistic_onnx` to make files that break the contract one way each.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd


def fit(frame: pd.DataFrame, target: str, features: list[str], seed: int) -> Any:
    """Impute + scale numerics, one-hot the categoricals (a missing one reaches the model as
    the empty string, as ci-ml feeds it), then a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = frame[features]
    numeric = [c for c in features if x[c].dtype.kind in "biuf"]
    categorical = [c for c in features if c not in numeric]
    x = x.astype({c: "float32" for c in numeric})
    x[categorical] = x[categorical].astype(object).fillna("")
    prepare = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    model = LogisticRegression(max_iter=1000, random_state=seed)
    return Pipeline([("prepare", prepare), ("model", model)]).fit(x, frame[target])


def logistic_onnx(
    frame: pd.DataFrame,
    target: str,
    features: list[str],
    seed: int = 0,
    task: str = "classification",
    zipmap: bool = False,
    classes: list[str] | None = None,
) -> bytes:
    """The fitted pipeline as ONNX with ``ci_ml.task`` and ``ci_ml.classes`` (the model's own
    classes unless ``classes`` says otherwise; ``[]`` leaves the key out)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    pipeline = fit(frame, target, features, seed)
    inputs = [
        (
            c,
            FloatTensorType([None, 1])
            if frame[c].dtype.kind in "biuf"
            else StringTensorType([None, 1]),
        )
        for c in features
    ]
    graph = convert_sklearn(
        pipeline,
        initial_types=inputs,
        target_opset={"": 17, "ai.onnx.ml": 3},
        options={id(pipeline.steps[-1][1]): {"zipmap": zipmap}},
    )
    named = [str(c) for c in pipeline.classes_] if classes is None else classes
    meta = {"ci_ml.task": task, **({"ci_ml.classes": named} if named else {})}
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return bytes(graph.SerializeToString())


def main() -> None:
    frame = pd.read_parquet(os.environ["CI_ML_TRAIN_DATA"])
    features = json.loads(os.environ["CI_ML_FEATURES"])
    model = logistic_onnx(
        frame,
        os.environ["CI_ML_TARGET"],
        features,
        int(os.environ["CI_ML_SEED"]),
        os.environ["CI_ML_TASK"],
    )
    Path(os.environ["CI_ML_MODEL_PATH"]).parent.mkdir(parents=True, exist_ok=True)
    Path(os.environ["CI_ML_MODEL_PATH"]).write_bytes(model)
    print(f"trained a logistic regression on {len(frame)} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
