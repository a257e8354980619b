"""A tiny user-defined estimator: a type that skops does not trust by default."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class MeanThresholdClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the positive class when the row mean exceeds the training mean."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> MeanThresholdClassifier:
        x = np.asarray(x, dtype=float)
        self.classes_ = np.unique(y)
        self.cut_ = float(x.mean())
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        above = (np.asarray(x, dtype=float).mean(axis=1) > self.cut_).astype(float)
        return np.column_stack([1 - above, above])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]
