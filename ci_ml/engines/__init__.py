"""Engines for the data gates of data larger than memory (``data.engine``).

The pandas engine (the default) loads the data as a :class:`ci_ml.data.Dataset` and is run by
``ci_ml.api.validate`` itself. An engine here computes the same checks where the data lives:

    ENGINES["duckdb"]   database (views over read_parquet/read_csv, NaN as missing)
                        -> builtins (the built-in checks in SQL)
                        -> suite (the GX suite through GX's SQL datasource)
    ENGINES["spark"]    spark (DataFrames of the files, NaN as null; the built-in checks as
                        Spark jobs) -> suite (the GX suite through GX's Spark datasource)

Each is a function ``(project root, data config, expectations config) -> GateResult``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ci_ml.config import DataConfig, ExpectationsConfig, Task
from ci_ml.engines import builtins, spark, suite
from ci_ml.engines.database import Database, open_database
from ci_ml.quality import Check


@dataclass(frozen=True)
class GateResult:
    """What ``data-report.json`` needs from an engine."""

    checks: list[Check]
    task: Task
    rows: dict[str, int]


def duckdb_gates(
    root: Path, config: DataConfig, expectations: ExpectationsConfig | None
) -> GateResult:
    """The data gates in DuckDB: built-in checks, then the suite (if any)."""
    with tempfile.TemporaryDirectory(prefix="ci-ml-duckdb-") as work:
        database = Database(Path(work) / "data.duckdb", Path(work) / "spill", config.memory_limit)
        tables = open_database(database, root, config)
        with database.connect() as con:
            task, _, checks = builtins.builtin_checks(
                builtins.SqlQueries(con, tables, database.memory_bytes()), config
            )
        rows = checks[0].observed  # dataset_not_empty's row counts
        if expectations is not None:
            checks += suite.run_suite(database, root / expectations.suite, expectations.suite)
    return GateResult(checks, task, dict(rows))


def spark_gates(
    root: Path, config: DataConfig, expectations: ExpectationsConfig | None
) -> GateResult:
    """The data gates in Spark: built-in checks, then the suite (if any)."""
    with spark.quiet():
        frames = spark.open_frames(spark.session(config.spark), root, config)
        task, _, checks = builtins.builtin_checks(spark.SparkQueries(frames), config)
        if expectations is not None:
            path = root / expectations.suite
            checks += suite.run_spark_suite(frames.both(), path, expectations.suite)
    rows = checks[0].observed  # dataset_not_empty's row counts
    return GateResult(checks, task, dict(rows))


Engine = Callable[[Path, DataConfig, ExpectationsConfig | None], GateResult]
ENGINES: dict[str, Engine] = {"duckdb": duckdb_gates, "spark": spark_gates}


def data_gates(
    root: Path, config: DataConfig, expectations: ExpectationsConfig | None
) -> GateResult:
    """The data gates on ``config.engine`` (an engine of :data:`ENGINES`)."""
    return ENGINES[config.engine](root, config, expectations)
