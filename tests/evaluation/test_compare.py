"""Tests for ci_ml.evaluation.compare: which slices are judged, with what confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.evaluation.compare import compare_slices
from ci_ml.evaluation.predict import Predictions


def config(**slices: object) -> Config:
    return Config.model_validate(
        {
            "data": {"path": "d.csv", "target": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gates": [{"metric": "roc_auc", "change": {"margin": -0.05}, "slices": True}],
            "slices": {"columns": ["region"], **slices},
            "comparison": {"resamples": 200},
        }
    )


def holdout(rng: np.random.Generator) -> tuple[Dataset, Predictions, Predictions]:
    """Two regions: 'north' with plenty of both classes, 'south' with 10 positives in 332."""
    north = pd.DataFrame({"region": "north", "y": rng.random(600) < 0.4})
    south = pd.DataFrame({"region": "south", "y": np.arange(332) < 10})
    frame = pd.concat([north, south], ignore_index=True)
    truth = frame["y"].to_numpy(dtype=np.float64)
    better = np.clip(truth * 0.6 + rng.random(len(frame)) * 0.5, 0, 1)
    worse = np.clip(truth * 0.3 + rng.random(len(frame)) * 0.7, 0, 1)
    data = Dataset(frame, frame, "y", "classification", ["region"], True)
    return data, Predictions(truth, better), Predictions(truth, worse)


def test_a_slice_with_a_handful_of_one_class_is_shown_but_not_judged() -> None:
    data, cand, prod = holdout(np.random.default_rng(0))
    north, south = compare_slices(config(), data, ["roc_auc"], cand, prod)

    assert (north["value"], north["judged"]) == ("north", True)
    assert north["comparisons"]["roc_auc"]["confidence"] == 0.95  # one judged slice: no widening
    assert south["class_counts"] == {"positive": 10, "negative": 322}
    assert not south["judged"] and south["comparisons"] == {}
    assert "fewer than slices.min_class_count (20)" in south["reason"]


def test_the_class_minimum_is_configurable() -> None:
    data, cand, prod = holdout(np.random.default_rng(1))
    north, south = compare_slices(config(min_class_count=5), data, ["roc_auc"], cand, prod)
    assert north["judged"] and south["judged"]
    # two judged slices: each interval is Bonferroni-widened to 1 - 0.05 / 2
    assert south["comparisons"]["roc_auc"]["confidence"] == 0.975
