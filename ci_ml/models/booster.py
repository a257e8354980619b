"""A booster loaded from a model bundle, behind scikit-learn's estimator interface.

Its input is what the bundle's ColumnTransformer outputs (dense or sparse). Binary
probabilities come as two columns, multiclass as K, in the order of ``classes_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class BoosterModel(BaseEstimator):
    """A fitted XGBoost, LightGBM or CatBoost booster answering ``predict_proba`` and
    ``predict`` with the data's labels (``classes_``)."""

    def __init__(
        self,
        framework: str,
        booster: Any,
        task: str,
        classes: list[Any] | None,
        params: dict[str, Any],
    ) -> None:
        self.framework = framework
        self.booster = booster
        self.task = task
        self.classes = classes
        self.params = params
        if classes is not None:
            self.classes_ = np.asarray(classes, dtype=object)

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The estimator's params when it was fitted (as ``model.json`` records them)."""
        return dict(self.params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier" if self.task == "classification" else "regressor"
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, *_: Any, **__: Any) -> BoosterModel:
        raise TypeError("a booster loaded from a bundle is fitted already; train a new one")

    def _raw(self, x: Any) -> np.ndarray:
        if self.framework == "catboost":
            dense = x.toarray() if hasattr(x, "toarray") else x
            kind = "Probability" if self.task == "classification" else "RawFormulaVal"
            return np.asarray(self.booster.predict(dense, prediction_type=kind), dtype=np.float64)
        if self.framework == "xgboost":
            return np.asarray(self.booster.inplace_predict(x), dtype=np.float64)
        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, a column per class of ``classes_``."""
        if self.task != "classification":
            raise AttributeError("a regressor has no predict_proba")
        raw = self._raw(x)
        if raw.ndim == 1:  # the probability of the second class
            raw = np.column_stack([1 - raw, raw])
        return raw

    def predict(self, x: Any) -> np.ndarray:
        """The most probable class (classification) or the predicted value."""
        if self.task == "classification":
            return np.asarray(self.classes_[self.predict_proba(x).argmax(axis=1)])
        return self._raw(x).reshape(-1)
