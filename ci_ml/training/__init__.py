"""Training the candidate, in one of three ways (``model`` in ci-ml.yaml):

- :mod:`~ci_ml.training.builtin`: a scikit-learn Pipeline around an estimator by import path
  (scikit-learn, XGBoost, LightGBM, CatBoost), saved as skops or a booster bundle;
- :mod:`~ci_ml.training.command`: your own command, which writes a skops file or an ONNX model;
- :mod:`~ci_ml.training.stage`: a ``dvc.yaml`` stage, reproduced by DVC.

:mod:`~ci_ml.training.card` describes the result (``model.json``). The pipeline step
(``ci_ml.api.train``) uses the names below.
"""

from ci_ml.training.builtin import (
    build_pipeline,
    fit,
    import_estimator,
    make_estimator,
    train_builtin,
)
from ci_ml.training.card import feature_schema, git_sha, model_card, model_file_name
from ci_ml.training.command import command_env, train_command

__all__ = [
    "build_pipeline",
    "command_env",
    "feature_schema",
    "fit",
    "git_sha",
    "import_estimator",
    "make_estimator",
    "model_card",
    "model_file_name",
    "train_builtin",
    "train_command",
]
