"""Evaluation: the candidate's predictions and metrics on the holdout rows.

For binary classification ci-ml works with the probability of the positive class
(``data.positive_class``, by default the rarer class) and labels it with
``model.threshold``; for a multiclass target with the K class probabilities, columns in the
data's class order (``Dataset.classes``), and the label is the most probable class; for
regression with the predicted values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.errors import ModelFileError
from ci_ml.evaluation.metrics import OPERATIONAL

if TYPE_CHECKING:
    import numpy as np

DEFAULT_METRICS = {
    "classification": ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"],
    "multiclass": ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc_ovr"],
    "regression": ["rmse", "mae", "r2"],
}


@dataclass(frozen=True)
class Predictions:
    """One model's predictions on the holdout, and the truth.

    Binary: ``y_true`` 0/1 and ``score`` the probability of the positive class; multiclass:
    ``y_true`` the class index and ``score`` an (n, K) matrix of class probabilities;
    regression: values.
    """

    y_true: np.ndarray
    score: np.ndarray

    def subset(self, rows: np.ndarray) -> Predictions:
        """The predictions of the ``rows`` (a boolean mask) only."""
        return Predictions(self.y_true[rows], self.score[rows])

    def labels(self, threshold: float) -> np.ndarray:
        """The predicted class: its index (multiclass, the most probable) or 0/1 (binary)."""
        if self.score.ndim == 2:
            return self.score.argmax(axis=1)
        return (self.score >= threshold).astype(int)


def metric_names(config: Config, task: str, multiclass: bool = False) -> list[str]:
    """The configured metrics (or the task's defaults) plus every gated statistical metric."""
    default = DEFAULT_METRICS["multiclass" if multiclass else task]
    names = list(config.metrics) or list(default)
    for gate in config.gates:
        if gate.metric not in names and gate.metric not in OPERATIONAL:
            names.append(gate.metric)
    return names


def predict(model: Any, dataset: Dataset, features: list[str] | None = None) -> Predictions:
    """Predict the holdout (with ``features``, default all); errors are ModelFileError."""
    import numpy as np

    x = dataset.holdout[features] if features else dataset.x("holdout")
    try:
        if dataset.multiclass:
            return _multiclass(model, dataset, x)
        if dataset.task == "classification":
            classes = [str(c) for c in getattr(model, "classes_", [])]
            if str(dataset.positive_class) not in classes:
                raise ModelFileError(
                    f"the model knows classes {classes}, not the positive class "
                    f"{dataset.positive_class!r}; it was trained on another target."
                )
            column = classes.index(str(dataset.positive_class))
            score = np.asarray(model.predict_proba(x))[:, column]
            truth = (dataset.y("holdout").astype(str) == str(dataset.positive_class)).to_numpy()
            return Predictions(truth.astype(np.float64), score.astype(np.float64))
        score = np.asarray(model.predict(x), dtype=np.float64)
        return Predictions(dataset.y("holdout").to_numpy(dtype=np.float64), score)
    except ModelFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"the model cannot predict the holdout rows ({first}).") from None


def _multiclass(model: Any, dataset: Dataset, x: Any) -> Predictions:
    """The K class probabilities in the data's class order; a class the model never saw
    gets probability 0, a class the data no longer has is refused."""
    import numpy as np

    known = [str(c) for c in getattr(model, "classes_", [])]
    unknown = [c for c in known if c not in dataset.classes]
    if unknown or not known:
        raise ModelFileError(
            f"the model knows classes {known}, which the data's target '{dataset.target}' "
            f"({list(dataset.classes)}) does not all have; it was trained on another target."
        )
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    score = np.zeros((proba.shape[0], len(dataset.classes)))
    score[:, [dataset.classes.index(c) for c in known]] = proba
    index = {c: i for i, c in enumerate(dataset.classes)}
    truth = dataset.y("holdout").astype(str).map(index).to_numpy(dtype=np.int64)
    return Predictions(truth, score)
