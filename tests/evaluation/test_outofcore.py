"""Tests for ci_ml.evaluation.outofcore: a Parquet holdout streamed through two fitted models
gives the comparison of the in-memory path on the same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ci_ml.errors import DataError, ModelFileError
from ci_ml.evaluation.outofcore import ParquetHoldout, Scorer, compare_parquet
from ci_ml.evaluation.stats import compare

NAMES = ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "brier"]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] - 1.3
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "age": x[:, 0],
            "calls": x[:, 1],
            "spend": x[:, 2],
            "churn": np.where(churned, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def models() -> tuple[Scorer, Scorer]:
    train = frame(5_000, 0)
    cand = ["age", "calls", "spend"]
    prod = ["calls", "age"]  # production reads fewer columns, in another order
    return (
        Scorer(LogisticRegression().fit(train[cand], train["churn"]), cand),
        Scorer(LogisticRegression().fit(train[prod], train["churn"]), prod),
    )


def test_streamed_parquet_equals_the_in_memory_comparison(
    tmp_path: Path, models: tuple[Scorer, Scorer]
) -> None:
    holdout = frame(40_000, 1)
    path = tmp_path / "holdout.parquet"
    holdout.to_parquet(path, row_group_size=10_000)
    cand, prod = models
    y = (holdout["churn"] == "yes").to_numpy(np.float64)
    a = cand.model.predict_proba(holdout[cand.features])[:, 1]
    b = prod.model.predict_proba(holdout[prod.features])[:, 1]
    memory = compare("classification", NAMES, y, a, b, seed=3)
    source = ParquetHoldout(path, "churn", "yes", batch_rows=3_000)
    streamed = compare_parquet(source, cand, prod, NAMES, seed=3)
    assert list(streamed) == NAMES
    for name in NAMES[1:]:
        for field in ("candidate", "production", "delta", "ci_low", "ci_high"):
            assert getattr(streamed[name], field) == pytest.approx(
                getattr(memory[name], field), abs=1e-9
            )
        assert streamed[name].n == 40_000
    auc, exact = streamed["roc_auc"], memory["roc_auc"]
    assert auc.candidate == pytest.approx(exact.candidate, abs=1e-6)
    assert auc.ci_low <= exact.ci_low and exact.ci_high <= auc.ci_high


def test_missing_file_or_column_is_a_data_error(
    tmp_path: Path, models: tuple[Scorer, Scorer]
) -> None:
    cand, prod = models
    with pytest.raises(DataError, match="cannot read"):
        compare_parquet(
            ParquetHoldout(tmp_path / "nope.parquet", "churn", "yes"), cand, prod, NAMES
        )
    path = tmp_path / "holdout.parquet"
    frame(100, 2).drop(columns="spend").to_parquet(path)
    with pytest.raises(DataError, match="lacks column\\(s\\) spend"):
        compare_parquet(ParquetHoldout(path, "churn", "yes"), cand, prod, NAMES)


def test_a_model_without_the_positive_class_is_a_model_file_error(
    tmp_path: Path, models: tuple[Scorer, Scorer]
) -> None:
    path = tmp_path / "holdout.parquet"
    frame(100, 2).to_parquet(path)
    cand, prod = models
    with pytest.raises(ModelFileError, match="positive class 'churned'"):
        compare_parquet(ParquetHoldout(path, "churn", "churned"), cand, prod, NAMES)
