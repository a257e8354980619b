"""The seeded split out of core: the same train and holdout rows as the pandas engine's
:func:`ci_ml.data.split_rows`, without loading the data, written as two Parquet files.

With ``data.engine`` duckdb or spark and no ``data.holdout.file``, the validate step splits
``data.path`` into ``split/train.parquet`` and ``split/holdout.parquet`` of the run directory,
and every later step reads those (:func:`ci_ml.project.engine_data`). On engine spark too the
split runs here, in DuckDB on the driver, as the files are local paths there. The rows are the
pandas engine's, in the same order:

1. The file is read in record batches, in file order, by DuckDB (a CSV typed as the engine's
   checks type it: integers, floats or text, :mod:`ci_ml.engines.database`). Each batch's row
   identities are :func:`ci_ml.data.row_ids` of the identity columns and their seeded order
   :func:`ci_ml.data.seeded_order`, the pandas engine's own functions; they go to a DuckDB
   table (row number, identity, order, stratum), which spills to disk past
   ``data.memory_limit``.
2. In SQL: a group is the rows of one identity, its stratum the label of its first row (a
   missing label: no stratum, always train, as in pandas). Each stratum's first
   ``max(1, round(fraction * groups))`` groups by order are the holdout (``round`` is
   Python's, computed here per stratum).
3. The file is read again batch by batch and each row written to the train or the holdout
   file, in file order.

Only row numbers and identities live in the table; memory does not grow with the rows.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.config import DataConfig
from ci_ml.data import identity_columns, row_ids, seeded_order
from ci_ml.engines.builtins import SqlQueries
from ci_ml.engines.database import Database, Tables, ident, import_duckdb, text, view
from ci_ml.errors import DataError, MissingExtra

if TYPE_CHECKING:
    import duckdb

BATCH_ROWS = 1 << 18


@dataclass(frozen=True)
class SplitFiles:
    """The two files of a split and how many rows each got."""

    train: Path
    holdout: Path
    rows: dict[str, int]


def split_files(
    root: Path, config: DataConfig, out: Path, identity: list[str] | None = None
) -> SplitFiles:
    """Split ``root / config.path`` by ``config.holdout`` into ``out/train.parquet`` and
    ``out/holdout.parquet`` (written whole or not at all); ``identity`` as in
    :func:`ci_ml.data.load_dataset`."""
    import pyarrow as pa

    try:
        import_duckdb()
    except MissingExtra:
        raise MissingExtra(
            f"the seeded split of data.engine '{config.engine}' (it runs in DuckDB; or set "
            "data.holdout.file)",
            "duckdb",
            "duckdb",
        ) from None
    path = root / config.path
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ci-ml-split-") as work:
        database = Database(Path(work) / "split.duckdb", Path(work) / "spill", config.memory_limit)
        with database.connect() as con:
            con.execute("SET GLOBAL preserve_insertion_order = true")  # the batches in file order
            types = view(con, "train", path)
            if config.target not in types:
                raise DataError(
                    f"{path}: target column '{config.target}' not found; columns are "
                    f"{', '.join(list(types)[:12])}; fix data.target in ci-ml.yaml."
                )
            columns = identity_columns(list(types), config, identity)
            tables = Tables({"train": types}, config.target, ())
            task = config.task or SqlQueries(con, tables).infer_task()
            as_objects = _booleans_with_nulls(con, types)
            con.execute("CREATE TABLE keys (n BIGINT, id UBIGINT, ord UBIGINT, stratum VARCHAR)")
            start = 0
            for batch in _batches(con):
                frame = batch.to_pandas()
                for column in as_objects:  # as pandas reads the whole file
                    frame[column] = frame[column].astype(object)
                ids = row_ids(frame, columns)
                strata = _strata(frame[config.target], task)
                keys = pa.table(
                    {
                        "n": pa.array(range(start, start + len(frame)), pa.int64()),
                        "id": pa.array(ids, pa.uint64()),
                        "ord": pa.array(seeded_order(ids, config.holdout.seed), pa.uint64()),
                        "stratum": pa.array(strata, pa.string()),
                    }
                )
                con.register("batch_keys", keys)
                con.execute("INSERT INTO keys SELECT * FROM batch_keys")
                con.unregister("batch_keys")
                start += len(frame)
            if start == 0:
                raise DataError(f"{path} has a header but no data rows.")
            in_holdout = _holdout_rows(con, config.holdout.fraction, start)
            return _write(con, out, in_holdout)


def _batches(con: duckdb.DuckDBPyConnection) -> Any:
    """The file's rows as read (NaN kept: the pandas engine hashes what it reads)."""
    reader = con.cursor().sql("SELECT * FROM raw_train").to_arrow_reader(BATCH_ROWS)
    yield from reader


def _booleans_with_nulls(con: duckdb.DuckDBPyConnection, types: dict[str, str]) -> list[str]:
    """The boolean columns with a missing cell: pandas reads them whole as objects (True,
    False, None), a batch without a missing cell would be bool and hash otherwise."""
    booleans = [c for c, kind in types.items() if kind == "BOOLEAN"]
    if not booleans:
        return []
    counted = ", ".join(f"count(*) - count({ident(c)})" for c in booleans)
    row = con.execute(f"SELECT {counted} FROM raw_train").fetchone() or ()
    return [c for c, missing in zip(booleans, row, strict=True) if missing]


def _strata(labels: Any, task: str) -> list[str | None]:
    """Each row's stratum as :func:`ci_ml.data.split_rows` groups them: its label, by value
    (a number as a float, as a batch may read 1 where the whole file reads 1.0; a missing
    label is in none, so always train), for classification; one stratum for regression."""
    if task != "classification":
        return ["0"] * len(labels)
    return [_stratum(v) for v in labels.tolist()]


def _stratum(value: Any) -> str | None:
    if value is None or value != value:  # None or NaN
        return None
    if isinstance(value, bool | int | float):
        return f"n:{float(value)!r}"
    return f"s:{value}"


def _holdout_rows(con: duckdb.DuckDBPyConnection, fraction: float, rows: int) -> Any:
    """A boolean per row number: in the holdout."""
    import numpy as np

    con.execute(
        "CREATE TABLE groups AS SELECT id, min(ord) AS ord, arg_min_null(stratum, n) AS stratum "
        "FROM keys GROUP BY id"
    )
    counts = con.execute(
        "SELECT stratum, count(*) FROM groups WHERE stratum IS NOT NULL GROUP BY stratum"
    ).fetchall()
    if not counts:
        return np.zeros(rows, dtype=bool)
    wanted = ", ".join(f"({text(s)}, {max(1, round(fraction * n))})" for s, n in counts)
    con.execute(
        "CREATE TABLE chosen AS SELECT id FROM (SELECT id, stratum, row_number() OVER "
        "(PARTITION BY stratum ORDER BY ord) AS rank FROM groups WHERE stratum IS NOT NULL) g "
        f"JOIN (VALUES {wanted}) AS w(stratum, wanted) USING (stratum) WHERE rank <= wanted"
    )
    flags = np.zeros(rows, dtype=bool)
    reader = con.sql("SELECT n FROM keys SEMI JOIN chosen USING (id)").to_arrow_reader(BATCH_ROWS)
    for batch in reader:
        flags[batch.column(0).to_numpy()] = True
    return flags


def _write(con: duckdb.DuckDBPyConnection, out: Path, in_holdout: Any) -> SplitFiles:
    """Each row of the file to the train or the holdout file, in file order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {side: out / f"{side}.parquet" for side in ("train", "holdout")}
    parts = {side: path.with_name(f".{path.name}.part") for side, path in paths.items()}
    writers: dict[str, Any] = {}
    rows = {"train": 0, "holdout": 0}
    start = 0
    done = False
    try:
        for batch in _batches(con):
            mask = pa.array(in_holdout[start : start + batch.num_rows])
            start += batch.num_rows
            for side, keep in (("holdout", mask), ("train", pa.compute.invert(mask))):
                chosen = batch.filter(keep)
                if side not in writers:
                    writers[side] = pq.ParquetWriter(parts[side], batch.schema)
                writers[side].write_batch(chosen)
                rows[side] += chosen.num_rows
        done = True
    finally:
        for writer in writers.values():
            writer.close()
        if not done:  # nothing half-written is left
            for part in parts.values():
                part.unlink(missing_ok=True)
    for side, part in parts.items():
        part.replace(paths[side])
    return SplitFiles(paths["train"], paths["holdout"], rows)
