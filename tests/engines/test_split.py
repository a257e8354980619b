"""The seeded split out of core (ci_ml.engines.split): the pandas engine's train and holdout
rows, in the same order, from record batches; and ``ci-ml validate`` on engine duckdb without
a holdout file reporting what engine pandas reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ci_ml.config import DataConfig, HoldoutConfig
from ci_ml.data import load_dataset
from ci_ml.engines import split
from ci_ml.errors import DataError
from tests.conftest import run_cli


def frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with repeats (one identity, several rows), missing features and labels."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "x": rng.normal(size=n).round(1),
            "kind": rng.choice(["a", "b", "c"], n),
            "count": rng.integers(0, 4, n).astype(float),
            "label": rng.choice(["no", "yes", "maybe"], n, p=[0.6, 0.3, 0.1]),
        }
    )
    data.loc[rng.random(n) < 0.05, "count"] = np.nan
    data.loc[rng.random(n) < 0.05, "kind"] = None
    data.loc[[3, 9, 40], "label"] = None
    return pd.concat([data, data.iloc[:60]], ignore_index=True)


def same_rows(found: Path, expected: pd.DataFrame) -> None:
    got = pd.read_parquet(found)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in expected.columns:  # as text: a CSV's integers may read back as floats
        left = got[column].astype(object).where(got[column].notna(), None).astype(str)
        right = expected[column].astype(object).where(expected[column].notna(), None)
        assert left.tolist() == right.astype(str).tolist(), column


def assert_pandas_split(root: Path, data: DataConfig, identity: list[str] | None = None) -> Any:
    dataset = load_dataset(root, data, identity)
    found = split.split_files(root, data, root / "split", identity)
    same_rows(found.train, dataset.train)
    same_rows(found.holdout, dataset.holdout)
    assert found.rows == {"train": len(dataset.train), "holdout": len(dataset.holdout)}
    return found


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 97 rows, so that groups and strata span batches."""
    monkeypatch.setattr(split, "BATCH_ROWS", 97)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("seed", [0, 7])
def test_the_same_rows_as_the_pandas_split(tmp_path: Path, fmt: str, seed: int) -> None:
    table = frame(1500, seed)
    getattr(table, f"to_{fmt}")(tmp_path / f"data.{fmt}", index=False)
    holdout = HoldoutConfig(fraction=0.25, seed=seed)
    found = assert_pandas_split(
        tmp_path, DataConfig(path=f"data.{fmt}", target="label", holdout=holdout)
    )
    held = pd.read_parquet(found.holdout)
    assert held["label"].notna().all()  # a row without a label is in no stratum: train


def test_regression_integer_labels_id_columns_and_inherited_identity(tmp_path: Path) -> None:
    table = frame(900, 3)
    table["label"] = np.linspace(0, 1, len(table))
    table.to_parquet(tmp_path / "reg.parquet", index=False)
    assert_pandas_split(tmp_path, DataConfig(path="reg.parquet", target="label", task="regression"))
    ints = frame(900, 4)
    ints["label"] = (ints["x"] > 0).astype(int)
    ints.to_parquet(tmp_path / "ints.parquet", index=False)
    assert_pandas_split(tmp_path, DataConfig(path="ints.parquet", target="label"))
    assert_pandas_split(tmp_path, DataConfig(path="ints.parquet", target="label", id=["kind"]))
    assert_pandas_split(tmp_path, DataConfig(path="ints.parquet", target="label"), ["x", "kind"])


def test_booleans_nan_and_null_hash_as_pandas_reads_the_whole_file(tmp_path: Path) -> None:
    """A boolean column with a missing cell is read whole as objects by pandas; NaN and
    null in a float column (pyarrow keeps them apart) are both missing to pandas."""
    n = 800
    rng = np.random.default_rng(5)
    flags = rng.random(n) < 0.5
    values = rng.normal(size=n).round(1)
    values[rng.random(n) < 0.05] = np.nan
    table = pa.table(
        {
            "flag": pa.array(flags, mask=np.arange(n) == 700),  # missing only in the last batches
            "v": pa.array(values, from_pandas=False, mask=rng.random(n) < 0.03),
            "label": pa.array(np.where(rng.random(n) < 0.3, "yes", "no")),
        }
    )
    pq.write_table(table, tmp_path / "data.parquet", row_group_size=100)
    assert_pandas_split(tmp_path, DataConfig(path="data.parquet", target="label"))


def test_without_duckdb_the_split_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ci_ml.errors import MissingExtra

    frame(100, 1).to_parquet(tmp_path / "data.parquet", index=False)
    monkeypatch.setitem(sys.modules, "duckdb", None)
    data = DataConfig(path="data.parquet", target="label", engine="spark")
    with pytest.raises(
        MissingExtra, match=r"split of data.engine 'spark' .* pip install 'ci-ml\[duckdb\]'"
    ):
        split.split_files(tmp_path, data, tmp_path / "out")


def test_bad_files_are_one_sentence_and_leave_nothing(tmp_path: Path) -> None:
    frame(200, 1).to_parquet(tmp_path / "data.parquet", index=False)
    with pytest.raises(DataError, match="target column 'y' not found; columns are x, kind"):
        split.split_files(tmp_path, DataConfig(path="data.parquet", target="y"), tmp_path / "out")
    (tmp_path / "empty.csv").write_text("x,label\n")
    with pytest.raises(DataError, match="has a header but no data rows"):
        split.split_files(tmp_path, DataConfig(path="empty.csv", target="label"), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.slow)])
def test_validate_without_a_holdout_file_reports_what_pandas_reports(
    project: Path, tmp_path: Path, engine: str
) -> None:
    """The example project (a seeded split of one CSV): engine duckdb (and spark, whose split
    runs in DuckDB on the driver) splits it into the run's split/, and its data report equals
    engine pandas' check for check."""
    reports = {}
    for name in ("pandas", engine):
        config = yaml.safe_load((project / "ci-ml.yaml").read_text())
        config["data"]["engine"] = name
        path = project / f"ci-ml.{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run_dir = tmp_path / name
        for step in ("pull", "validate"):
            done = run_cli(step, "--config", path.name, "--run-dir", str(run_dir), cwd=project)
            assert done.returncode == 0, done.stderr
        report = json.loads((run_dir / "data-report.json").read_text())
        keep = ("name", "success", "column", "unexpected_count", "observed")
        reports[name] = ([{k: c.get(k) for k in keep} for c in report["checks"]], report["rows"])
    assert reports[engine] == reports["pandas"]
    assert (tmp_path / engine / "split" / "holdout.parquet").is_file()
    assert not (tmp_path / "pandas" / "split").exists()


def test_a_whole_run_on_duckdb_without_a_holdout_file_is_the_pandas_run(
    project: Path, tmp_path: Path
) -> None:
    """Train and evaluate read the run's split: the same model, metrics and verdict as the
    pandas engine on the example (its rows fit data.train_rows and data.streaming_rows)."""
    found = {}
    for name in ("pandas", "duckdb"):
        config = yaml.safe_load((project / "ci-ml.yaml").read_text())
        config["data"]["engine"] = name
        config["registry"]["url"] = str(tmp_path / f"registry-{name}")
        path = project / f"ci-ml.{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run_dir = tmp_path / name
        done = run_cli("run", "--config", path.name, "--run-dir", str(run_dir), cwd=project)
        assert done.returncode == 0, done.stderr
        evaluation = json.loads((run_dir / "evaluation.json").read_text())
        model = json.loads((run_dir / "model.json").read_text())
        found[name] = (evaluation["candidate"]["metrics"], model["digest"], model["training_rows"])
    assert found["duckdb"] == found["pandas"]
