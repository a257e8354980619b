"""The built-in checks on engines duckdb and spark give what the pandas engine gives, on
clean and on adversarial data, from CSV and from Parquet (ci_ml.engines.builtins)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ci_ml.config import DataConfig, ExpectationsConfig, load_config
from ci_ml.data import load_dataset
from ci_ml.errors import DataError
from tests.engines.compare import assert_same, both, config, write

FORMATS = ["csv", "parquet"]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n).round(6),
            "kind": rng.choice(["a", "b", "c"], n),
            "count": rng.integers(0, 5, n),
            "label": rng.choice(["no", "yes", "maybe"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def files(root: Path, fmt: str, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    write(root / f"train.{fmt}", train)
    write(root / f"holdout.{fmt}", holdout)


def fmt_config(fmt: str, engine: str, **options: object) -> DataConfig:
    return config(f"train.{fmt}", f"holdout.{fmt}", engine, **options)


@pytest.mark.parametrize("fmt", FORMATS)
def test_clean_data(tmp_path: Path, fmt: str, engine: str) -> None:
    files(tmp_path, fmt, frame(300, 1), frame(80, 2))
    expected, found = both(tmp_path, fmt_config(fmt, engine))
    assert_same(expected, found)
    assert all(c.success for c in found)


@pytest.mark.parametrize("fmt", FORMATS)
def test_adversarial_data(tmp_path: Path, fmt: str, engine: str) -> None:
    """Missing labels, missing features, leaked rows with missing values (missing equals
    missing), a leaked row twice in the holdout, a class the holdout lacks."""
    train, holdout = frame(300, 1), frame(80, 2)
    holdout.loc[holdout["label"] == "maybe", "label"] = "no"
    train.loc[[3, 50], "label"] = None
    holdout.loc[[7], "label"] = None
    train.loc[[10, 11, 12], "x"] = np.nan
    train.loc[[13, 14], "kind"] = None
    holdout.loc[[20, 21], "x"] = np.nan
    holdout.loc[[21, 22], "kind"] = None
    leaked = holdout.iloc[[5, 20, 21, 22]]
    train = pd.concat([train, leaked], ignore_index=True)
    holdout = pd.concat([holdout, holdout.iloc[[5]]], ignore_index=True)
    files(tmp_path, fmt, train, holdout)
    expected, found = both(tmp_path, fmt_config(fmt, engine, max_overlap_percent=1))
    assert_same(expected, found)
    failed = {c.name: c for c in found if not c.success}
    assert set(failed) == {
        "target_valid",
        "holdout_has_every_class",
        "holdout_class_counts",
        "train_holdout_overlap",
    }
    assert failed["train_holdout_overlap"].unexpected_count == 5
    assert failed["target_valid"].unexpected_count == 3


@pytest.mark.parametrize("passes", [1, 3, 8])
def test_the_overlap_in_several_passes_finds_the_same_rows(
    tmp_path: Path, passes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holdout too large for one hash join in data.memory_limit is joined in slices of its
    keys; every slice count finds the same leaked rows (missing equals missing) as pandas."""
    from ci_ml.engines import builtins

    assert builtins.overlap_passes(20_000_000, 10**9) == 2  # 100M rows at 1GB: the benchmark
    assert builtins.overlap_passes(1_000, 10**9) == 1
    train, holdout = frame(400, 1), frame(120, 2)
    train.loc[[10, 11], "x"] = np.nan
    holdout.loc[[20, 21], "x"] = np.nan
    holdout.loc[[21, 22], "kind"] = None
    train = pd.concat([train, holdout.iloc[[3, 5, 20, 21, 22, 40, 41, 90]]], ignore_index=True)
    files(tmp_path, "parquet", train, holdout)
    monkeypatch.setattr(builtins, "overlap_passes", lambda _rows, _memory: passes)
    expected, found = both(tmp_path, fmt_config("parquet", "duckdb", max_overlap_percent=1))
    assert_same(expected, found)
    overlap = {c.name: c for c in found}["train_holdout_overlap"]
    assert overlap.unexpected_count == 8


@pytest.mark.parametrize("fmt", FORMATS)
def test_integer_labels_with_a_missing_one_read_as_pandas_reads_them(
    tmp_path: Path, fmt: str, engine: str
) -> None:
    train, holdout = frame(200, 1), frame(60, 2)
    train["label"] = (train["x"] > 0).astype(int)
    holdout["label"] = (holdout["x"] > 0).astype(float)
    holdout.loc[4, "label"] = np.nan
    files(tmp_path, fmt, train, holdout)
    expected, found = both(tmp_path, fmt_config(fmt, engine))
    assert_same(expected, found)


@pytest.mark.parametrize("fmt", FORMATS)
def test_regression_target_with_missing_and_text(tmp_path: Path, fmt: str, engine: str) -> None:
    train, holdout = frame(200, 1), frame(60, 2)
    train["label"] = np.linspace(0, 1, len(train))
    holdout["label"] = np.linspace(0, 1, len(holdout))
    train.loc[[1, 2], "label"] = np.nan
    holdout.loc[3, "label"] = np.inf
    files(tmp_path, fmt, train, holdout)
    expected, found = both(tmp_path, fmt_config(fmt, engine, task="regression"))
    assert_same(expected, found)
    assert {c.name: c for c in found}["target_valid"].unexpected_count == 3


def test_inferred_tasks_agree(tmp_path: Path, engine: str) -> None:
    for name, label in {
        "few-integers": lambda n: np.arange(n) % 3,
        "many-integers": lambda n: np.arange(n) % 40,
        "fractions": lambda n: np.linspace(0, 1, n),
    }.items():
        root = tmp_path / name
        root.mkdir()
        train, holdout = frame(200, 1), frame(60, 2)
        train["label"], holdout["label"] = label(200), label(60)
        files(root, "csv", train, holdout)
        assert_same(*both(root, config(engine=engine)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="label"), "target column 'label' not found"),
        (lambda t: t.assign(x=np.nan), r"column\(s\) x have no values at all"),
        (lambda t: t.assign(x=np.where(t.index == 3, np.inf, t["x"])), "infinite value"),
        (lambda t: t.assign(label="no"), "has a single class"),
        (lambda t: t.head(0), "no data rows"),
    ],
)
def test_unusable_train_files_are_refused_by_both(
    tmp_path: Path, change, message: str, engine: str
) -> None:
    write(tmp_path / "train.parquet", change(frame(100, 1)))
    write(tmp_path / "holdout.parquet", frame(40, 2))
    data = config("train.parquet", "holdout.parquet", engine)
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path, data.model_copy(update={"engine": "pandas"}))
    with pytest.raises(DataError, match=message):
        both(tmp_path, data)


def test_a_holdout_file_without_a_column_is_refused(tmp_path: Path, engine: str) -> None:
    files(tmp_path, "csv", frame(100, 1), frame(40, 2).drop(columns="kind"))
    with pytest.raises(DataError, match=r"holdout file lacks column\(s\) kind"):
        both(tmp_path, config(engine=engine))


def test_the_example_data(pulled_example: Path, tmp_path: Path, engine: str) -> None:
    """The example project split as the pandas engine splits it, both sides as files."""
    example = load_config(pulled_example / "ci-ml.yaml")
    dataset = load_dataset(pulled_example, example.data)
    files(tmp_path, "csv", dataset.train, dataset.holdout)
    data = example.data.model_copy(
        update={"path": "train.csv", "holdout": config().holdout, "engine": engine}
    )
    (tmp_path / "expectations").mkdir()
    suite = pulled_example / "expectations" / "credit_data.json"
    (tmp_path / "expectations" / "credit_data.json").write_text(suite.read_text())
    expected, found = both(
        tmp_path, data, ExpectationsConfig(suite="expectations/credit_data.json")
    )
    assert_same(expected, found)
    assert len(found) == 6 + 19
    assert all(c.success for c in found)
    suite_found = [(c.success, c.unexpected_count) for c in found if c.source == "suite"]
    assert (True, 381) in suite_found  # Income's missing values, counted alike
