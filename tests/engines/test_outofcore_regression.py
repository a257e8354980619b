"""``ci-ml run`` on engine duckdb with a regression target and the holdout streamed
(:class:`ci_ml.evaluation.streaming.RegressionStream`), judged against a production model
registered from a pandas-engine run: the same verdict, gates, metrics and intervals to 1e-9.
The holdout has more than 20,000 rows, so the in-memory comparison takes the delta method too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.evaluation.regression import DELTA_METHOD, EXACT_BOOTSTRAP_MAX_ROWS
from ci_ml.evaluation.stats import PAIRED_T
from tests.conftest import run_and_promote, run_cli
from tests.engines.test_outofcore_run import RUN, assert_same_numbers, read

HOLDOUT_ROWS = 24_000
GATES = [
    {"metric": "rmse", "max": 10.0, "change": {"margin": -0.5}},
    {"metric": "r2", "min": 0.1, "change": {"margin": -0.05}},
    {"metric": "mae", "change": {"margin": -0.5}},
    {"metric": "rmse", "change": {"margin": -2.0}, "slices": True},
]
SLICES = {"columns": ["region", "x3"], "min_size": 30}  # x3: 5 numbers, sliced by value


def make_data(root: Path) -> None:
    """A noisy non-linear target of four features (one of them text) and a slice column."""
    rng = np.random.default_rng(3)
    n = 40_000 + HOLDOUT_ROWS
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.uniform(-2, 2, size=n),
            "x3": rng.integers(0, 5, size=n).astype(float),
            "region": rng.choice(["north", "south", "east"], size=n),
        }
    )
    bump = frame["region"].map({"north": 0.5, "south": -0.3, "east": 0.0})
    frame["y"] = (
        100 + 3 * frame["x1"] + np.sin(2 * frame["x2"]) * 2 + frame["x3"] ** 1.5 + bump
    ) + rng.normal(scale=1.5, size=n)
    (root / "data").mkdir(parents=True)
    frame.iloc[HOLDOUT_ROWS:].to_csv(root / "data/train.csv", index=False)
    frame.iloc[:HOLDOUT_ROWS].to_csv(root / "data/holdout.csv", index=False)


def configure(root: Path, iterations: int, **data: Any) -> None:
    gates = data.pop("gates", GATES)
    slices = data.pop("slices", SLICES)
    config = {
        "data": {
            "path": "data/train.csv",
            "target": "y",
            "task": "regression",
            "holdout": {"file": "data/holdout.csv"},
            **data,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": iterations, "max_leaf_nodes": 15},
        },
        "metrics": ["rmse", "mae", "r2"],
        "gates": gates,
        "comparison": {"first_model": "pass"},
        "registry": {"url": ".ci-ml/registry"},
        **({"slices": slices} if slices else {}),
    }
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression project whose production model (fewer boosting iterations than the
    candidate's) was registered by a ``ci-ml run`` on the pandas engine."""
    root = tmp_path_factory.mktemp("outofcore-regression") / "project"
    make_data(root)
    configure(root, iterations=15)
    config = str(root / "ci-ml.yaml")
    run_and_promote(root, config)
    return root


def run_on(production: Path, dest: Path, **data: Any) -> tuple[Any, Path]:
    """``ci-ml run`` of the candidate on a copy of the project with these data settings."""
    root = dest / str(data.get("engine", "pandas"))
    shutil.copytree(production, root)
    configure(root, iterations=40, **data)
    done = run_cli("run", "--config", str(root / "ci-ml.yaml"), "--run-dir", RUN, cwd=root)
    return done, root / RUN


@pytest.mark.slow  # three whole runs: about 40 s
def test_a_streamed_regression_run_judges_as_pandas_does(production: Path, tmp_path: Path) -> None:
    expected, pandas_run = run_on(production, tmp_path, engine="pandas")
    assert expected.returncode == 0, expected.stderr
    found, run_dir = run_on(production, tmp_path, engine="duckdb", streaming_rows=0)
    assert found.returncode == 0, found.stderr
    ours, theirs = read(run_dir, "evaluation.json"), read(pandas_run, "evaluation.json")
    assert ours["streamed"]["rows"] == theirs["rows"]["holdout"] == HOLDOUT_ROWS
    assert HOLDOUT_ROWS > EXACT_BOOTSTRAP_MAX_ROWS  # so memory takes the delta method too
    assert ours["streamed"]["passes"] == 1 and ours["streamed"]["auc_bins"] is None
    assert ours["baseline"]["rows_compared"] == theirs["baseline"]["rows_compared"]
    for name in ("rmse", "r2"):
        assert ours["comparisons"][name]["method"] == DELTA_METHOD
    assert ours["comparisons"]["mae"]["method"] == PAIRED_T
    assert_same_numbers(ours["comparisons"], theirs["comparisons"])
    assert ours["streamed"]["slice_problems"] == []
    assert [c["method"] for c in ours["comparisons"].values()] == [
        c["method"] for c in theirs["comparisons"].values()
    ]
    assert_same_numbers(ours["candidate"]["metrics"], theirs["candidate"]["metrics"])
    assert ours["candidate"]["operational"].get("churn") is None
    gate_ours, gate_theirs = read(run_dir, "gate-report.json"), read(pandas_run, "gate-report.json")
    assert gate_ours["verdict"] == gate_theirs["verdict"] == "pass"
    assert [(g["name"], g["verdict"]) for g in gate_ours["gates"]] == [
        (g["name"], g["verdict"]) for g in gate_theirs["gates"]
    ]
    assert read(run_dir, "smoke-sample.json") == read(pandas_run, "smoke-sample.json")
    assert_same_slices(ours["slices"], theirs["slices"])


def assert_same_slices(ours: list[Any], theirs: list[Any]) -> None:
    """The same slices, rows, metrics and values to 1e-9; the intervals of slices of at most
    20,000 rows differ by method (memory: the exact bootstrap; the stream: the delta method)."""
    assert [(s["column"], s["value"], s["n"]) for s in ours] == [
        (s["column"], s["value"], s["n"]) for s in theirs
    ]
    assert {s["value"] for s in ours} >= {"north", "south", "east", "0.0", "4.0"}
    for one, other in zip(ours, theirs, strict=True):
        assert one["judged"] == other["judged"] and one["reason"] == other["reason"]
        assert_same_numbers(one["metrics"], other["metrics"])
        found, expected = one["comparisons"]["rmse"], other["comparisons"]["rmse"]
        assert found["method"] == DELTA_METHOD and expected["n"] <= EXACT_BOOTSTRAP_MAX_ROWS
        for key in ("candidate", "production", "delta", "confidence"):
            assert found[key] == pytest.approx(expected[key], abs=1e-9, rel=0)
