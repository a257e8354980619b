"""Engine spark: the data gates in Spark, for data that lives in a cluster.

The session runs on ``data.spark.master`` (``local[2]``, ``spark://host:7077``, ``yarn``) or
talks to a Spark Connect server (``data.spark.remote``, ``sc://host:15002``). The train and
holdout files become DataFrames read as the pandas engine reads them
(:func:`ci_ml.data.read_table`): a CSV's missing texts and its integer / float / text columns
are pandas' (the rules of :mod:`ci_ml.engines.database`), and NaN is missing (Spark counts
NaN as a value; here it becomes null at the input). :class:`SparkQueries` answers the
built-in checks (:mod:`ci_ml.engines.builtins`) with Spark jobs; only counts and a few
sample rows come back to the driver.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.config import DataConfig, SparkConfig, Task
from ci_ml.data import MAX_CLASSES_FOR_INFERENCE, READERS, check_header
from ci_ml.engines.builtins import Side, labelled
from ci_ml.engines.database import PANDAS_NA, SIDES, check_columns
from ci_ml.errors import DataError, MissingExtra, ServiceError
from ci_ml.quality import SAMPLE_SIZE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# a quiet local session: no web UI, no progress bars on stderr, only errors logged
LOCAL_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
}
# the numbers pandas' CSV reader reads as int64 / float64 (anything else makes a text column)
INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
FLOAT_TEXT = (
    r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$|^\s*(?i)[+-]?inf(inity)?\s*$"
)
INFINITY = float("inf")


@contextmanager
def quiet() -> Iterator[None]:
    """Without PySpark 4's warning that it does not fully support pandas 3 (at its import and
    its session's start, GX's too): ci-ml turns no Spark DataFrame into pandas."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "PySpark does not yet fully support pandas", FutureWarning
        )
        yield


def functions() -> Any:
    """``pyspark.sql.functions``, or MissingExtra naming the ``spark`` extra."""
    try:
        from pyspark.sql import functions
    except ImportError as exc:
        raise MissingExtra("data.engine 'spark'", "spark", exc.name) from None
    return functions


def connect_client() -> None:
    """PySpark's Spark Connect client libraries, or MissingExtra naming ``spark-connect``."""
    import importlib.util

    for module in ("grpc", "grpc_status", "google.rpc", "zstandard"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise MissingExtra("data.spark.remote (Spark Connect)", "spark-connect", module)


def session(config: SparkConfig) -> SparkSession:
    """The Spark session (an existing one of this process is reused, as GX reuses it)."""
    functions()
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("ci-ml")
    if config.remote is not None:
        connect_client()
        builder = builder.remote(config.remote)
    else:
        if config.master is not None:
            builder = builder.master(config.master)
        for key, value in LOCAL_DEFAULTS.items():
            builder = builder.config(key, value)
    for key, setting in config.conf.items():
        # YAML's true is Python's True; Spark wants 'true'
        builder = builder.config(
            key, str(setting).lower() if isinstance(setting, bool) else setting
        )
    where = config.remote or config.master or "Spark's default master"
    try:
        return builder.getOrCreate()
    except (PySparkException, RuntimeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ServiceError(
            f"data.engine 'spark' could not start a Spark session on {where} ({first}); check "
            "data.spark in ci-ml.yaml, that Java 17 or later is installed (JAVA_HOME) and "
            "that the cluster is reachable."
        ) from None


def col(name: str) -> Column:
    """The column ``name`` (quoted: a dot in a name is not a struct field)."""
    return functions().col("`" + name.replace("`", "``") + "`")


def kind_of(data_type: Any) -> str:
    """The kind of a Spark type, as :meth:`ci_ml.engines.database.Tables.kind` names them."""
    from pyspark.sql import types as T

    if isinstance(data_type, T.FloatType | T.DoubleType):
        return "float"
    if isinstance(data_type, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return "integer"
    if isinstance(data_type, T.DecimalType):
        return "number"
    return "boolean" if isinstance(data_type, T.BooleanType) else "other"


@dataclass(frozen=True)
class Frames:
    """Train and holdout as DataFrames, their columns' kinds, the target and the features."""

    train: DataFrame
    holdout: DataFrame
    target: str
    features: tuple[str, ...]

    def side(self, side: str) -> DataFrame:
        return self.train if side == "train" else self.holdout

    def kind(self, side: str, column: str) -> str:
        return kind_of(self.side(side).schema[column].dataType)

    def both(self) -> DataFrame:
        """Both sides as one DataFrame (the suite's data, as the pandas engine concatenates
        them); a column of numbers on one side and text on the other becomes text."""
        train, holdout = self.train, self.holdout
        numbers = ("float", "integer", "number")
        for name in set(train.columns) & set(holdout.columns):
            kinds = {self.kind("train", name), self.kind("holdout", name)}
            if len(kinds) > 1 and not kinds <= set(numbers):
                train = train.withColumn(name, col(name).cast("string"))
                holdout = holdout.withColumn(name, col(name).cast("string"))
        return train.unionByName(holdout, allowMissingColumns=True)


def open_frames(spark: SparkSession, root: Path, config: DataConfig) -> Frames:
    """The configured files as DataFrames, checked as the pandas engine reads them; a file
    that cannot be used is a DataError."""
    files = {"train": root / config.path, "holdout": root / str(config.holdout.file)}
    frames = {side: _read(spark, path) for side, path in files.items()}
    for side, path in files.items():
        _readable(path, lambda frame=frames[side], path=path: _check_columns(frame, path, config))
    missing = [c for c in frames["train"].columns if c not in frames["holdout"].columns]
    if missing:
        raise DataError(
            f"{files['holdout']}: the holdout file lacks column(s) {', '.join(missing)}."
        )
    drop = set(config.drop)
    features = tuple(c for c in frames["train"].columns if c != config.target and c not in drop)
    return Frames(frames["train"], frames["holdout"], config.target, features)


def _read(spark: SparkSession, path: Path) -> DataFrame:
    if path.suffix.lower() not in READERS:
        allowed = ", ".join(READERS)
        raise DataError(f"{path}: unsupported file type '{path.suffix}'; use one of {allowed}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist; run 'ci-ml pull' first or check data.path.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and data rows.")
    check_header(path)
    if READERS[path.suffix.lower()] == "read_parquet":
        frame = _readable(path, lambda: spark.read.parquet(str(path.resolve())))
    else:
        frame = _readable(path, lambda: _typed_csv(spark, path))
    F = functions()
    return frame.select(
        [
            F.when(F.isnan(col(c)), None).otherwise(col(c)).alias(c)
            if kind_of(frame.schema[c].dataType) == "float"
            else col(c)
            for c in frame.columns
        ]
    )


def _typed_csv(spark: SparkSession, path: Path) -> DataFrame:
    """The CSV typed as pandas types it: a whole column at a time, as integers if every value
    is one, else as floats if every value is one, else as text; pandas' missing texts are
    missing. (Spark alone reads one missing text only, and true/false and dates as such.)"""
    F = functions()
    # doubled quotes inside a quoted cell, as pandas writes them; a malformed row fails
    text = spark.read.csv(
        str(path.resolve()), header=True, inferSchema=False, escape='"', mode="FAILFAST"
    )
    text = text.select(
        [F.when(col(c).isin(PANDAS_NA), None).otherwise(col(c)).alias(c) for c in text.columns]
    )
    counts = text.agg(
        *[F.count(col(c)) for c in text.columns],
        *[
            F.count(F.when(col(c).rlike(INTEGER_TEXT), col(c).try_cast("bigint")))
            for c in text.columns
        ],
        *[F.count(F.when(col(c).rlike(FLOAT_TEXT), 1)) for c in text.columns],
    ).first()
    assert counts is not None
    n = len(text.columns)
    typed = []
    for i, name in enumerate(text.columns):
        values, integers, floats = counts[i], counts[n + i], counts[2 * n + i]
        kind = "bigint" if values and integers == values else "string"
        kind = "double" if kind == "string" and floats == values else kind
        typed.append(col(name).cast(kind).alias(name) if kind != "string" else col(name))
    return text.select(typed)


def _readable(path: Path, action: Any) -> Any:
    """``action()``; Spark's failure to read the file at ``path`` is a DataError."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        return action()
    except (PySparkException, Py4JJavaError) as exc:
        kind = "Parquet" if READERS[path.suffix.lower()] == "read_parquet" else "CSV"
        raise DataError(f"{path} is not a readable {kind} file ({_cause(exc)}).") from None


def _cause(exc: Exception) -> str:
    """The innermost cause a JVM error names (e.g. '[MALFORMED_CSV_RECORD] ...'), or its first
    line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line.split(": ", 2)[-1] for line in lines if line.startswith("Caused by:")]
    return (causes or lines or [type(exc).__name__])[-1 if causes else 0]


def _check_columns(frame: DataFrame, path: Path, config: DataConfig) -> None:
    """:func:`ci_ml.engines.database.check_columns` on ``frame``, in one Spark job."""
    F = functions()

    def counted(kept: list[str], floats: list[str]) -> Any:
        infinite = [F.count(F.when(col(c).isin(INFINITY, -INFINITY), 1)) for c in floats]
        row = frame.agg(F.count(F.lit(1)), *[F.count(col(c)) for c in kept], *infinite).first()
        assert row is not None
        return row

    floats = {c for c in frame.columns if kind_of(frame.schema[c].dataType) == "float"}
    check_columns(path, config, list(frame.columns), floats, counted)


@dataclass(frozen=True)
class SparkQueries:
    """:class:`ci_ml.engines.builtins.Queries` as Spark jobs over :class:`Frames`."""

    frames: Frames

    @property
    def target(self) -> str:
        return self.frames.target

    def infer_task(self) -> Task:
        F = functions()
        kind = self.frames.kind("train", self.target)
        if kind not in ("float", "integer", "number"):
            return "classification"
        target = col(self.target)
        fractional = F.bool_or(target != F.round(target)) if kind != "integer" else F.lit(False)
        row = self.frames.train.agg(fractional, F.count_distinct(target)).first()
        assert row is not None
        if row[0] or row[1] > MAX_CLASSES_FOR_INFERENCE:
            return "regression"
        return "classification"

    def side(self, side: str, task: Task) -> Side:
        F = functions()
        frame, target = self.frames.side(side), col(self.target)
        if task == "regression":
            row = frame.agg(F.count(F.lit(1)), F.count(target)).first()
            assert row is not None
            return Side(int(row[0]), int(row[0] - row[1]), {})
        groups = [(r[0], int(r[1])) for r in frame.groupBy(target).count().collect()]
        return labelled(groups, self.frames.kind(side, self.target))

    def bad_targets(self) -> tuple[int, list[Any]]:
        value = col(self.target).try_cast("double")
        bad = value.isNull() | value.isin(INFINITY, -INFINITY)
        rows = [self.frames.side(side).filter(bad).select(col(self.target)) for side in SIDES]
        count = sum(r.count() for r in rows)
        sample = [v[0] for r in rows for v in r.limit(SAMPLE_SIZE).collect()] if count else []
        return count, sample[:SAMPLE_SIZE]

    def leaked(self, holdout_rows: int) -> tuple[int, list[Any]]:
        """Holdout rows with a train row's features: a left semi join on every feature with
        null-safe equality (missing equals missing; Spark hashes the join keys, and compares
        the values of rows whose hashes match, so a collision never counts)."""
        features = self.frames.features
        train = self.frames.train.select([col(c).alias(f"t{i}") for i, c in enumerate(features)])
        holdout = self.frames.holdout.select(
            [col(c).alias(f"h{i}") for i, c in enumerate(features)]
        )
        same = [holdout[f"h{i}"].eqNullSafe(train[f"t{i}"]) for i in range(len(features))]
        leaked = holdout.join(train, on=same, how="left_semi")
        count = leaked.count()
        named = leaked.select([col(f"h{i}").alias(c) for i, c in enumerate(features)])
        sample = [r.asDict() for r in named.limit(SAMPLE_SIZE).collect()] if count else []
        return count, sample
