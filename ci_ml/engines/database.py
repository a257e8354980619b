"""The DuckDB database of engine duckdb: the data files as views, NaN made missing, and the
checks the pandas engine makes when it reads a file (:func:`ci_ml.data.read_table`).

Nothing is loaded: the views ``train`` and ``holdout`` read their file (``read_parquet`` or
``read_csv``) whenever they are queried, within ``data.memory_limit``, spilling to a temporary
directory; ``data`` is both, for the suite (as the pandas engine validates both frames
together). The database is a file so that GX's SQL datasource can open it too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.config import DataConfig
from ci_ml.data import READERS, check_header
from ci_ml.errors import DataError, MissingExtra

if TYPE_CHECKING:
    import duckdb

# the texts pandas' read_csv reads as missing (its default na_values), so that a CSV has the
# same missing cells on both engines
PANDAS_NA = [
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
    *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
]
FLOATS = ("FLOAT", "DOUBLE", "REAL")
INTEGERS = (
    *("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"),
    *("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"),
)
SIDES = ("train", "holdout")


@dataclass(frozen=True)
class Database:
    """A DuckDB file with the views, and the settings every connection to it uses."""

    path: Path
    spill: Path
    memory_limit: str

    def settings(self) -> dict[str, Any]:
        # insertion order costs memory on every scan, and no check depends on it
        return {
            "memory_limit": self.memory_limit.replace(" ", ""),
            "temp_directory": str(self.spill),
            "preserve_insertion_order": False,
        }

    def memory_bytes(self) -> int:
        """The memory limit in bytes (DuckDB's units: KB = 1000 bytes, KiB = 1024)."""
        found = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)\s*$", self.memory_limit)
        if found is None:
            raise ValueError(f"not a memory size: {self.memory_limit!r}")
        unit = found.group(2)
        base = 1024 if "i" in unit else 1000
        power = "BKMGT".index(unit[0])
        return int(float(found.group(1)) * base**power)

    def connect(self) -> duckdb.DuckDBPyConnection:
        return import_duckdb().connect(str(self.path), config=self.settings())


@dataclass(frozen=True)
class Tables:
    """What the views hold: each side's columns with their DuckDB types, and the features."""

    types: dict[str, dict[str, str]]
    target: str
    features: tuple[str, ...]

    def kind(self, side: str, column: str) -> str:
        """'float', 'integer', 'number' (other numbers), 'boolean' or 'other'."""
        name = self.types[side][column].split("(")[0]
        if name in FLOATS:
            return "float"
        if name in INTEGERS:
            return "integer"
        return "number" if name == "DECIMAL" else "boolean" if name == "BOOLEAN" else "other"


def import_duckdb() -> Any:
    """``duckdb``, or MissingExtra naming the ``duckdb`` extra."""
    try:
        import duckdb
    except ImportError as exc:
        raise MissingExtra("data.engine 'duckdb'", "duckdb", exc.name) from None
    return duckdb


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def text(value: str) -> str:
    """A quoted SQL string."""
    return "'" + value.replace("'", "''") + "'"


def open_database(database: Database, root: Path, config: DataConfig) -> Tables:
    """Create the views of the configured files and check them as the pandas engine reads
    them; a file that cannot be used is a DataError."""
    files = {"train": root / config.path, "holdout": root / str(config.holdout.file)}
    types: dict[str, dict[str, str]] = {}
    with database.connect() as con:
        for side, path in files.items():
            types[side] = view(con, side, path)
            _check_columns(con, side, path, types[side], config)
        missing = [c for c in types["train"] if c not in types["holdout"]]
        if missing:
            raise DataError(
                f"{files['holdout']}: the holdout file lacks column(s) {', '.join(missing)}."
            )
        con.execute(
            "CREATE VIEW data AS SELECT * FROM train UNION ALL BY NAME SELECT * FROM holdout"
        )
    drop = set(config.drop)
    features = tuple(c for c in types["train"] if c != config.target and c not in drop)
    return Tables(types, config.target, features)


def view(con: duckdb.DuckDBPyConnection, side: str, path: Path) -> dict[str, str]:
    """The view ``side`` over the file at ``path`` (NaN as missing); its columns' types."""
    duckdb = import_duckdb()
    if path.suffix.lower() not in READERS:
        allowed = ", ".join(READERS)
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use one of {allowed}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist; run 'ci-ml pull' first or check data.path.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and data rows.")
    check_header(path)
    try:
        con.execute(f"CREATE VIEW raw_{side} AS SELECT * FROM {_scan(path)}")
        described = con.execute(f"DESCRIBE raw_{side}").fetchall()
    except duckdb.Error as exc:
        kind = "Parquet" if READERS[path.suffix.lower()] == "read_parquet" else "CSV"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is not a readable {kind} file ({first}).") from None
    types = {str(row[0]): str(row[1]) for row in described}
    columns = ", ".join(_normalised(name, kind) for name, kind in types.items())
    con.execute(f"CREATE VIEW {side} AS SELECT {columns} FROM raw_{side}")
    return types


def _scan(path: Path) -> str:
    if READERS[path.suffix.lower()] == "read_parquet":
        return f"read_parquet({text(str(path.resolve()))})"
    # typed from the whole file (sample_size=-1), as pandas types a CSV a whole column at a
    # time, and as integers, floats or text only: DuckDB would read yes/no as booleans and
    # dates as dates, pandas reads both as text
    na = ", ".join(text(v) for v in PANDAS_NA)
    return (
        f"read_csv({text(str(path.resolve()))}, header=true, sample_size=-1, nullstr=[{na}], "
        "auto_type_candidates=['BIGINT', 'DOUBLE', 'VARCHAR'])"
    )


def _normalised(name: str, kind: str) -> str:
    """The column as the checks see it: NaN is missing, as pandas counts it.

    DuckDB counts NaN as a value, and ``isnan(x)``, ``x = 'nan'`` and ``x > 'inf'`` are folded
    to false from the statistics of a Parquet file pyarrow wrote (they leave NaN out;
    duckdb#25521: 0 NaNs found of 501,062 at 50M rows). "Neither finite nor infinite" is NaN
    and is evaluated on every row (tests/engines/test_database.py).
    """
    column = ident(name)
    if kind.split("(")[0] not in FLOATS:
        return column
    is_nan = f"NOT isfinite({column}) AND NOT isinf({column})"
    return f"CASE WHEN {is_nan} THEN NULL ELSE {column} END AS {column}"


def _check_columns(
    con: duckdb.DuckDBPyConnection, side: str, path: Path, types: dict[str, str], config: DataConfig
) -> None:
    """:func:`check_columns` on the view ``side``, in one query."""

    def counted(kept: list[str], floats: list[str]) -> Sequence[Any]:
        counts = [f"count({ident(c)})" for c in kept]
        infinite = [f"count(*) FILTER (WHERE isinf({ident(c)}))" for c in floats]
        row = con.execute(f"SELECT count(*), {', '.join(counts + infinite)} FROM {side}").fetchone()
        assert row is not None
        return row

    floats = {c for c, kind in types.items() if kind.split("(")[0] in FLOATS}
    check_columns(path, config, list(types), floats, counted)


def check_columns(
    path: Path,
    config: DataConfig,
    columns: list[str],
    floats: set[str],
    counted: Callable[[list[str], list[str]], Sequence[Any]],
) -> None:
    """What :func:`ci_ml.data._prepared` refuses, on any engine: no target, unknown drop
    columns, no rows, columns without a value, infinite features. ``counted(kept, floats)``
    answers the rows, the non-missing count of each kept column and the infinite count of
    each float feature, in that order, in one pass of the engine."""
    if config.target not in columns:
        raise DataError(
            f"{path}: target column '{config.target}' not found; columns are "
            f"{', '.join(columns[:12])}; fix data.target in ci-ml.yaml."
        )
    missing_drop = [c for c in config.drop if c not in columns]
    if missing_drop:
        raise DataError(f"{path}: data.drop names columns that do not exist: {missing_drop}.")
    kept = [c for c in columns if c not in config.drop]
    features = [c for c in kept if c != config.target and c in floats]
    row = counted(kept, features)
    if row[0] == 0:
        raise DataError(f"{path} has a header but no data rows.")
    empty = [c for c, n in zip(kept, row[1 : 1 + len(kept)], strict=True) if n == 0]
    if empty:
        raise DataError(
            f"{path}: column(s) {', '.join(empty)} have no values at all; "
            "fix the data or list them under data.drop."
        )
    for column, n in zip(features, row[1 + len(kept) :], strict=True):
        if n:
            raise DataError(
                f"{path}: column '{column}' has {n} infinite value(s) (inf or -inf); replace "
                "them with numbers, or leave the cells empty (missing values are imputed)."
            )
