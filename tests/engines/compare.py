"""Two engines on the same files: the checks of the pandas engine and of another engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ci_ml import engines, quality
from ci_ml.config import DataConfig, ExpectationsConfig, HoldoutConfig
from ci_ml.data import load_dataset
from ci_ml.quality import Check


def config(
    path: str = "train.csv", holdout: str = "holdout.csv", engine: str = "duckdb", **options: Any
) -> DataConfig:
    return DataConfig(
        path=path, target="label", holdout=HoldoutConfig(file=holdout), engine=engine, **options
    )


def write(path: Path, table: pd.DataFrame | pa.Table) -> None:
    """CSV or Parquet by the suffix; a pyarrow table keeps NaN apart from null."""
    if isinstance(table, pa.Table):
        pq.write_table(table, path, row_group_size=1000)
    elif path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


def both(
    root: Path, data: DataConfig, suite: ExpectationsConfig | None = None
) -> tuple[list[Check], list[Check]]:
    """(pandas engine's checks, ``data.engine``'s checks) of the same files."""
    dataset = load_dataset(root, data.model_copy(update={"engine": "pandas"}))
    expected = quality.builtin_checks(dataset, data)
    if suite is not None:
        frame = pd.concat([dataset.train, dataset.holdout], ignore_index=True)
        expected += quality.run_suite(frame, root / suite.suite, suite.suite)
    found = engines.data_gates(root, data, suite)
    assert found.task == dataset.task
    assert found.rows == {"train": len(dataset.train), "holdout": len(dataset.holdout)}
    return expected, found.checks


def outcome(check: Check) -> tuple[Any, ...]:
    """What must agree between engines."""
    return (
        check.name,
        check.column,
        check.success,
        check.severity,
        check.observed,
        check.unexpected_count,
    )


def assert_same(expected: list[Check], found: list[Check]) -> None:
    assert [outcome(c) for c in found] == [outcome(c) for c in expected]
