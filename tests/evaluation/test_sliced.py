"""Tests for ci_ml.evaluation.sliced: a streamed holdout's slices, fed in batches, are the
slices compare.compare_slices makes in memory; a column it cannot slice is named, not guessed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.evaluation.compare import compare_slices
from ci_ml.evaluation.predict import Predictions
from ci_ml.evaluation.sliced import MAX_SLICE_VALUES, StreamedSlices
from ci_ml.evaluation.streaming import BinaryStream

NAMES = ["roc_auc", "accuracy", "log_loss"]


def config(*columns: str) -> Config:
    return Config.model_validate(
        {
            "data": {"path": "d.csv", "target": "y"},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "gates": [{"metric": "roc_auc", "change": {"margin": -0.05}, "slices": True}],
            "slices": {"columns": list(columns)},
            "comparison": {"resamples": 200},
        }
    )


def frame(rows: int = 3000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    data = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", None], size=rows).astype(object),
            "level": rng.integers(1, 4, size=rows),  # ints, one gap below: read as floats
            "flag": rng.integers(0, 3, size=rows),  # ints throughout
        }
    )
    data.loc[7, "level"] = None
    truth = (rng.random(rows) < 0.4).astype(np.float64)
    # scores on a grid of 1/1024: one score per histogram bin, so the binned AUC is exact
    cand = np.round(np.clip(truth * 0.5 + rng.random(rows) * 0.5, 0, 1) * 1024) / 1024
    prod = np.round(np.clip(truth * 0.3 + rng.random(rows) * 0.7, 0, 1) * 1024) / 1024
    return data, truth, cand, prod


def streamed(cfg: Config, data: pd.DataFrame, arrays: list[np.ndarray]) -> StreamedSlices:
    """Fed in batches of 700 rows read back as a Parquet reader gives them (a batch of
    ints without a gap is ints)."""
    slices = StreamedSlices(cfg, lambda: BinaryStream(NAMES, sparse=True))
    for start in range(0, len(data), 700):
        part = data.iloc[start : start + 700].reset_index(drop=True)
        if part["level"].notna().all():
            part["level"] = part["level"].astype(np.int64)
        rows = [a[start : start + 700] for a in arrays]
        slices.see(part)
        slices.add(part, *rows)
    for start in range(0, len(data), 700):
        part = data.iloc[start : start + 700].reset_index(drop=True)
        slices.add_second(part, *[a[start : start + 700] for a in arrays])
    return slices


def test_streamed_slices_equal_the_in_memory_ones() -> None:
    data, truth, cand, prod = frame()
    cfg = config("region", "level", "flag")
    dataset = Dataset(data, data, "y", "classification", ["region", "level", "flag"], True)
    expected = compare_slices(
        cfg, dataset, NAMES, Predictions(truth, cand), Predictions(truth, prod)
    )
    found = streamed(cfg, data, [truth, cand, prod]).entries(NAMES, ["roc_auc"], paired=True)
    assert [(e["column"], e["value"]) for e in found] == [
        (e["column"], e["value"]) for e in expected
    ]
    assert {e["value"] for e in found} >= {"(missing)", "1.0", "0", "north"}
    for one, other in zip(found, expected, strict=True):
        assert_close(one, other)


def assert_close(found: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected)
        for key in expected:
            if key != "method":  # the streamed AUC's names its bins
                assert_close(found[key], expected[key])
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, abs=1e-9, rel=0)
    else:
        assert found == expected


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (lambda n: np.arange(n) % 11, "'c' is numeric with more than 10 values"),
        (
            lambda n: np.array([f"v{i % (MAX_SLICE_VALUES + 1)}" for i in range(n)], dtype=object),
            f"'c' has more than {MAX_SLICE_VALUES} distinct values",
        ),
    ],
    ids=["numeric", "text"],
)
def test_a_column_of_too_many_values_is_named_not_sliced(values: Any, match: str) -> None:
    data, truth, cand, prod = frame(1000)
    data["c"] = values(1000)
    slices = streamed(config("region", "c"), data, [truth, cand, prod])
    assert list(slices.problems) == ["c"] and match in slices.problems["c"]
    found = slices.entries(NAMES, ["roc_auc"], paired=True)
    assert {e["column"] for e in found} == {"region"}
