"""``ci-ml run`` on engines duckdb and spark without loading the whole data: training on a
seeded sample (:mod:`ci_ml.engines.rows`) and the holdout streamed
(:mod:`ci_ml.evaluation.streamed`), judged against a production model registered from a
pandas-engine run of the same files — the same verdict and numbers as the pandas engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.engines.rows import read_rows
from tests.conftest import REPO, run_and_promote, run_cli
from tests.engines.compare import config as data_config
from tests.engines.compare import write

RUN = ".ci-ml/runs/check"
# the example's gates, its estimator (fewer iterations: a fit of seconds) and no suite
GATES = yaml.safe_load((REPO / "ci-ml.yaml").read_text())["gates"]


@pytest.fixture(scope="module")
def production(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of two files (the credit data split in train and holdout) whose production
    model was registered by a ``ci-ml run`` on the pandas engine."""
    root = tmp_path_factory.mktemp("outofcore") / "project"
    (root / "data").mkdir(parents=True)
    frame = pd.read_csv(pulled_example / "data/credit_data.csv")
    frame = frame.drop_duplicates([c for c in frame.columns if c != "Status"])  # no leakage
    holdout = frame.sample(frac=0.25, random_state=1)
    frame.drop(holdout.index).to_csv(root / "data/train.csv", index=False)
    holdout.to_csv(root / "data/holdout.csv", index=False)
    configure(root, engine="pandas", params={"max_iter": 40})
    config = str(root / "ci-ml.yaml")
    run_and_promote(root, config)
    return root


def configure(root: Path, **data: Any) -> None:
    params = data.pop("params", {"max_iter": 60})
    gates = data.pop("gates", GATES)
    slices = data.pop("slices", {"columns": ["Home"], "min_size": 30})
    config = {
        "data": {
            "path": "data/train.csv",
            "target": "Status",
            "task": "classification",
            "positive_class": "bad",
            "holdout": {"file": "data/holdout.csv"},
            **data,
        },
        "model": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"learning_rate": 0.05, "max_leaf_nodes": 15, **params},
        },
        "metrics": ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "brier"],
        "gates": gates,
        "comparison": {"first_model": "pass"},
        "slices": slices,
        "registry": {"url": ".ci-ml/registry"},
    }
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_on(production: Path, dest: Path, **data: Any) -> tuple[Any, Path]:
    """``ci-ml run`` on a copy of the project (production registered) with these settings."""
    root = dest / str(data.get("engine", "pandas"))
    shutil.copytree(production, root)
    configure(root, **data)
    done = run_cli("run", "--config", str(root / "ci-ml.yaml"), "--run-dir", RUN, cwd=root)
    return done, root / RUN


def read(run_dir: Path, name: str) -> Any:
    return json.loads((run_dir / name).read_text())


def assert_same_numbers(found: Any, expected: Any) -> None:
    """Equal to 1e-9 (numbers), exactly (counts, text)."""
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected)
        for key in expected:
            if key != "method":  # the streamed AUC's says it is binned (exact here)
                assert_same_numbers(found[key], expected[key])
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for one, other in zip(found, expected, strict=True):
            assert_same_numbers(one, other)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, abs=1e-9, rel=0)
    else:
        assert found == expected


def compare_with_pandas(production: Path, dest: Path, engine: str) -> None:
    expected, pandas_run = run_on(production, dest, engine="pandas")
    assert expected.returncode == 0, expected.stderr
    found, run_dir = run_on(production, dest, engine=engine, streaming_rows=0)
    assert found.returncode == 0, found.stderr
    ours, theirs = read(run_dir, "evaluation.json"), read(pandas_run, "evaluation.json")
    assert ours["streamed"]["rows"] == theirs["rows"]["holdout"]
    assert ours["streamed"]["passes"] == 2  # roc_auc: DeLong's second pass
    assert ours["baseline"]["rows_compared"] == theirs["baseline"]["rows_compared"]
    assert_same_numbers(ours["comparisons"], theirs["comparisons"])
    assert "exact: one score per bin" in ours["comparisons"]["roc_auc"]["method"]
    assert ours["comparisons"]["log_loss"]["method"] == theirs["comparisons"]["log_loss"]["method"]
    assert_same_numbers(ours["candidate"]["metrics"], theirs["candidate"]["metrics"])
    churn = ours["candidate"]["operational"]["churn"]
    assert churn == pytest.approx(theirs["candidate"]["operational"]["churn"], abs=1e-12)
    assert len(theirs["slices"]) > 2 and any(not s["judged"] for s in theirs["slices"])
    assert_same_numbers(ours["slices"], theirs["slices"])  # values, counts, reasons
    assert ours["streamed"]["slice_problems"] == []
    assert not any("slices" in note for note in ours["streamed"]["left_out"])
    gate_ours, gate_theirs = read(run_dir, "gate-report.json"), read(pandas_run, "gate-report.json")
    assert gate_ours["verdict"] == gate_theirs["verdict"] == "pass"
    assert [(g["name"], g["verdict"]) for g in gate_ours["gates"]] == [
        (g["name"], g["verdict"]) for g in gate_theirs["gates"]
    ]
    smoke = read(run_dir, "smoke-sample.json")
    assert smoke == read(pandas_run, "smoke-sample.json")
    card = read(run_dir, "model.json")
    assert (
        card.get("train_sample") is None
        and card["digest"] == read(pandas_run, "model.json")["digest"]
    )
    assert "Streamed holdout" in (run_dir / "report.md").read_text()


def test_a_streamed_run_on_duckdb_judges_as_pandas_does(production: Path, tmp_path: Path) -> None:
    compare_with_pandas(production, tmp_path, "duckdb")


@pytest.mark.slow
def test_a_streamed_run_on_spark_judges_as_pandas_does(production: Path, tmp_path: Path) -> None:
    compare_with_pandas(production, tmp_path, "spark")


SLICE_GATES = [{"metric": "roc_auc", "change": {"margin": -0.5}, "slices": True}]


def test_a_slice_gate_judges_a_streamed_holdout_as_pandas_does(
    production: Path, tmp_path: Path
) -> None:
    slices = {"columns": ["Home", "Marital"], "min_size": 30}
    expected, pandas_run = run_on(production, tmp_path, gates=SLICE_GATES, slices=slices)
    found, run_dir = run_on(
        production, tmp_path, engine="duckdb", streaming_rows=0, gates=SLICE_GATES, slices=slices
    )
    assert found.returncode == expected.returncode == 0, found.stderr
    ours, theirs = read(run_dir, "gate-report.json"), read(pandas_run, "gate-report.json")
    per_slice = [g for g in ours["gates"] if "[" in g["name"]]
    assert len(per_slice) > 3 and all(g["verdict"] == "pass" for g in per_slice)
    assert [(g["name"], g["verdict"]) for g in ours["gates"]] == [
        (g["name"], g["verdict"]) for g in theirs["gates"]
    ]
    assert_same_numbers(
        read(run_dir, "evaluation.json")["slices"], read(pandas_run, "evaluation.json")["slices"]
    )


def test_a_slice_gate_fails_closed_on_a_column_the_stream_cannot_slice(
    production: Path, tmp_path: Path
) -> None:
    slices = {"columns": ["Home", "Age"], "min_size": 30}  # Age: numeric, quantile slices
    done, run_dir = run_on(
        production, tmp_path, engine="duckdb", streaming_rows=0, gates=SLICE_GATES, slices=slices
    )
    assert done.returncode == 1, done.stderr
    report = read(run_dir, "gate-report.json")
    assert report["verdict"] == "fail"
    failed = [g for g in report["gates"] if g["verdict"] == "fail"]
    assert [g["name"] for g in failed] == ["roc_auc change per slice"]
    assert "'Age' is numeric with more than 10 values" in failed[0]["reason"]
    streamed = read(run_dir, "evaluation.json")["streamed"]
    assert len(streamed["slice_problems"]) == 1
    assert streamed["slice_problems"][0] in failed[0]["reason"]
    assert any("Age" in note for note in streamed["left_out"])


def test_the_in_memory_branch_below_streaming_rows_is_the_pandas_evaluation(
    production: Path, tmp_path: Path
) -> None:
    expected, pandas_run = run_on(production, tmp_path, engine="pandas")
    found, run_dir = run_on(production, tmp_path, engine="duckdb")  # 5M rows: in memory
    assert found.returncode == expected.returncode == 0, found.stderr
    ours, theirs = read(run_dir, "evaluation.json"), read(pandas_run, "evaluation.json")
    assert ours.get("streamed") is None
    assert ours["comparisons"] == theirs["comparisons"]  # the same code on the same frames
    assert ours["slices"] == theirs["slices"] and ours["curves"] == theirs["curves"]
    assert ours["candidate"]["metrics"] == theirs["candidate"]["metrics"]


def test_training_on_a_sample_records_it(production: Path, tmp_path: Path) -> None:
    done, run_dir = run_on(production, tmp_path, engine="duckdb", train_rows=1000)
    assert done.returncode in (0, 1), done.stderr  # fewer rows: the gates may block it
    card = read(run_dir, "model.json")
    rows = len(pd.read_csv(production / "data/train.csv"))
    assert card["training_rows"] == 1000
    assert card["train_sample"]["rows"] == 1000
    assert card["train_sample"]["file_rows"] == rows
    ids = pd.read_parquet(run_dir / "training-ids.parquet")
    assert len(ids) == 1000


def test_the_train_sample_is_seeded_and_reproducible(tmp_path: Path, engine: str) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=3000),
            "c": rng.choice(["a", "b", None], size=3000),
            "label": rng.choice(["yes", "no"], size=3000),
        }
    )
    write(tmp_path / "train.parquet", frame)
    write(tmp_path / "holdout.parquet", frame.head(500))
    data = data_config("train.parquet", "holdout.parquet", engine, train_rows=700)
    first = read_rows(tmp_path, data, "classification")
    again = read_rows(tmp_path, data, "classification")
    other = read_rows(
        tmp_path,
        data.model_copy(update={"holdout": data.holdout.model_copy(update={"seed": 7})}),
        "classification",
    )
    assert first.sample is not None and first.sample.rows == 700
    assert first.sample.file_rows == 3000 and first.holdout_rows == 500
    pd.testing.assert_frame_equal(first.train, again.train)
    assert (
        not first.train["x"]
        .sort_values()
        .reset_index(drop=True)
        .equals(other.train["x"].sort_values().reset_index(drop=True))
    )
    assert set(first.train["x"]) <= set(frame["x"])
    assert first.counts is not None
    assert first.counts.to_dict() == {
        k: v for k, v in (pd.concat([frame, frame.head(500)])["label"].value_counts()).items()
    }
    whole = read_rows(tmp_path, data.model_copy(update={"train_rows": "all"}), "classification")
    assert whole.sample is None and len(whole.train) == 3000


def test_a_multiclass_holdout_above_streaming_rows_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"x": rng.normal(size=400), "label": rng.choice(["a", "b", "c"], size=400)}
    )
    (tmp_path / "data").mkdir()
    frame.iloc[:300].to_csv(tmp_path / "data/train.csv", index=False)
    frame.iloc[300:].to_csv(tmp_path / "data/holdout.csv", index=False)
    config = {
        "data": {
            "path": "data/train.csv",
            "target": "label",
            "holdout": {"file": "data/holdout.csv"},
            "engine": "duckdb",
            "streaming_rows": 50,
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "gates": [{"metric": "accuracy", "min": 0.0}],
        "registry": {"url": ".ci-ml/registry"},
    }
    (tmp_path / "ci-ml.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("run", "--config", str(tmp_path / "ci-ml.yaml"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("· ")]  # steps
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "100 rows, more than data.streaming_rows (50)" in lines[0]
    assert "multiclass comparison cannot be streamed" in lines[0]
