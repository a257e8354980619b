"""Evaluation: the candidate's predictions and metrics on the holdout rows.

For classification ci-ml works with the probability of the positive class
(``data.positive_class``, by default the rarer class) and labels it with
``model.threshold``; for regression with the predicted values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.errors import ModelFileError
from ci_ml.evaluation.metrics import OPERATIONAL, evaluate_metrics

if TYPE_CHECKING:
    import numpy as np

DEFAULT_METRICS = {
    "classification": ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"],
    "regression": ["rmse", "mae", "r2"],
}


@dataclass(frozen=True)
class Predictions:
    """One model's predictions on the holdout: probabilities (or values), and truth."""

    y_true: np.ndarray
    score: np.ndarray

    def subset(self, rows: np.ndarray) -> Predictions:
        """The predictions of the ``rows`` (a boolean mask) only."""
        return Predictions(self.y_true[rows], self.score[rows])


def metric_names(config: Config, task: str) -> list[str]:
    """The configured metrics (or the task's defaults) plus every gated statistical metric."""
    names = list(config.metrics) or list(DEFAULT_METRICS[task])
    for gate in config.gates:
        if gate.metric not in names and gate.metric not in OPERATIONAL:
            names.append(gate.metric)
    return names


def predict(model: Any, dataset: Dataset, features: list[str] | None = None) -> Predictions:
    """Predict the holdout (with ``features``, default all); errors are ModelFileError."""
    import numpy as np

    x = dataset.holdout[features] if features else dataset.x("holdout")
    try:
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


def candidate_metrics(config: Config, dataset: Dataset, preds: Predictions) -> dict[str, float]:
    """The candidate's metric values, keyed by name."""
    return evaluate_metrics(
        dataset.task,
        metric_names(config, dataset.task),
        preds.y_true,
        preds.score,
        threshold=config.model.threshold,
    )
