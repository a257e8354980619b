"""The Great Expectations suite through GX's own datasource for the engine.

Engine duckdb: GX has no Polars support; on DuckDB it runs its SQL metrics (through
duckdb_engine's SQLAlchemy dialect) on the view ``data`` (train and holdout), so the rows
stay in DuckDB. Engine spark: GX's Spark datasource validates a DataFrame of both sides.
The results become the same Check records as the pandas engine's. An expectation GX cannot
evaluate on the engine (e.g. ``expect_column_values_to_match_regex`` on the duckdb dialect)
fails closed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.engines.database import Database
from ci_ml.quality import Check, Converter, from_gx, gx_context, gx_suite, suite_checks

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def run_suite(database: Database, path: Path, shown_as: str | None = None) -> list[Check]:
    """Validate the view ``data`` against the suite at ``path`` (see quality.run_suite)."""
    return suite_checks(
        path,
        shown_as,
        lambda suite, ids: _validate(database, suite, ids, path),
        failing_closed("duckdb"),
    )


def run_spark_suite(frame: DataFrame, path: Path, shown_as: str | None = None) -> list[Check]:
    """Validate the Spark DataFrame ``frame`` against the suite at ``path``."""
    return suite_checks(
        path,
        shown_as,
        lambda suite, ids: _validate_spark(frame, suite, ids, path),
        failing_closed("spark"),
    )


def _validate_spark(
    frame: DataFrame, suite_json: dict[str, Any], ids: list[str], path: Path
) -> list[Any]:
    gx, context = gx_context(path)
    batch = (
        context.data_sources.add_spark("ci_ml")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    logging.disable(logging.ERROR)
    try:
        return list(batch.validate(gx_suite(gx, suite_json, ids), result_format="SUMMARY").results)
    finally:
        logging.disable(logging.NOTSET)
        frame.unpersist()  # GX's Spark datasource persists its batch


def _validate(
    database: Database, suite_json: dict[str, Any], ids: list[str], path: Path
) -> list[Any]:
    gx, context = gx_context(path)
    source = context.data_sources.add_sql(
        "ci_ml",
        connection_string=f"duckdb:///{database.path}",
        kwargs={"connect_args": {"config": database.settings()}},
    )
    batch = source.add_table_asset("data", table_name="data").add_batch_definition_whole_table(
        "all"
    )
    batch = batch.get_batch()
    engine = batch.data.execution_engine
    _fetch_inside_connection(engine)
    # GX logs each metric it cannot compute on the dialect; the Check says it instead
    logging.disable(logging.ERROR)
    try:
        return list(batch.validate(gx_suite(gx, suite_json, ids), result_format="SUMMARY").results)
    finally:
        logging.disable(logging.NOTSET)
        engine.engine.dispose()  # GX's pool holds the database file open


def _fetch_inside_connection(engine: Any) -> None:
    """Work around GX 1.24 x duckdb_engine: ``SqlAlchemyExecutionEngine.execute_query``
    closes the connection before GX calls ``.fetchall()``, and a closed duckdb_engine
    connection's results are empty ("list index out of range", "computed 0 metrics").
    Here the rows are fetched while the connection is open (a frozen, re-readable result).
    The gx extra pins GX's minor version, which this private method belongs to."""

    def execute_query(query: Any) -> Any:
        with engine.get_connection() as connection:
            return engine._execute_query_with_recovery(connection, query).freeze()()

    engine.execute_query = execute_query


def failing_closed(engine: str) -> Converter:
    """:func:`ci_ml.quality.from_gx`, except that an expectation GX could not evaluate on
    ``engine`` is a failed critical check saying so (whatever its severity): never a silent
    pass."""

    def convert(item: dict[str, Any], result: Any, location: dict[str, Any]) -> Check:
        problems = _raised(result.exception_info or {})
        if not problems:
            return from_gx(item, result, location)
        return Check(
            name=item["type"],
            success=False,
            source="suite",
            column=item.get("kwargs", {}).get("column"),
            severity="critical",
            details=(
                f"this expectation cannot be evaluated on engine {engine} (Great "
                f"Expectations: {problems[0]}); ci-ml counts it as failed: validate this "
                "suite with data.engine: pandas, or remove the expectation"
            ),
            location=location,
        )

    return convert


def _raised(info: dict[str, Any]) -> list[str]:
    """The exception messages of a result: GX gives one flat record, or one per metric."""
    records = [info] if "raised_exception" in info else list(info.values())
    return [
        str(r.get("exception_message") or "an exception")
        for r in records
        if isinstance(r, dict) and r.get("raised_exception")
    ]
