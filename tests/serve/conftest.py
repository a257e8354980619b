"""Fixtures shared by the service's tests: a registry with two good versions, and models
that cannot be served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ci_ml.registry import ModelVersion
from ci_ml.registry.local import LocalRegistry
from tests._custom_estimator import MeanThresholdClassifier
from tests.serve.test_serve import ROWS, fit, make_data, own_answers, register, same_answers

Versions = tuple[LocalRegistry, ModelVersion, ModelVersion, dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def two_models() -> tuple[pd.DataFrame, Any, Any]:
    frame, y = make_data()
    return frame, fit(frame, y, max_iter=10), fit(frame, y, max_iter=30, learning_rate=0.2)


@pytest.fixture
def versions(two_models: tuple[pd.DataFrame, Any, Any], tmp_path: Path) -> Versions:
    """A registry with two good versions, the first in production, and each one's answers."""
    frame, first, second = two_models
    registry = LocalRegistry(tmp_path / "registry")
    v1 = register(registry, first, frame, tmp_path / "v1")
    v2 = register(registry, second, frame, tmp_path / "v2")
    registry.promote(v1.version, None, by="tests")
    answers = {v1.version: own_answers(first, ROWS), v2.version: own_answers(second, ROWS)}
    assert not same_answers(answers[v1.version], answers[v2.version])
    return registry, v1, v2, answers


@pytest.fixture(scope="module")
def broken_models() -> dict[str, Any]:
    """Models that cannot serve the data's rows, each with a word of the reason."""
    frame, y = make_data()
    return {
        # fitted on other columns: its smoke prediction raises
        "failed": fit(frame.rename(columns={"income": "salary"}), y),
        # a type that skops is not allowed to build
        "untrusted type": MeanThresholdClassifier().fit(frame[["age"]].to_numpy(), y),
    }
