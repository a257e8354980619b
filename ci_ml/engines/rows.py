"""The rows the steps after the data gates read on engines duckdb and spark, without loading
the whole data: the training rows, the holdout's size, the target's counts, the holdout as a
Parquet file to stream.

The training rows are a seeded sample of ``data.train_rows`` rows of the train file, chosen
by the rows' content: each row is ranked by a seeded hash of its values (DuckDB's ``hash``,
Spark's ``xxhash64``) and the lowest ranks are taken, in rank order. So the same file and
seed give the same rows in the same order, whatever the engine's parallelism, and it costs
one scan whose memory holds only the sample (a top-N; no row number is needed, which a CSV
read in parallel does not have). Equal rows have equal ranks; which copies are taken does not
matter. When the file has no more rows than ``train_rows`` (or it is ``all``) the file is
read whole by :func:`ci_ml.data.read_table`, exactly as the pandas engine reads it.

The sample is read into pandas through Arrow and then checked and prepared by
:func:`ci_ml.data.with_holdout`, the code the pandas engine's rows go through.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.config import DataConfig, Task
from ci_ml.data import TrainSample, read_table
from ci_ml.engines import spark
from ci_ml.engines.database import Database, ident, open_database, text

if TYPE_CHECKING:
    import pandas as pd

PARQUET = (".parquet", ".pq")
SAMPLE_METHOD = {
    "duckdb": "DuckDB: the rows with the lowest hash(seed, row values), in that order",
    "spark": "Spark: the rows with the lowest xxhash64(seed, row values), in that order",
}


@dataclass(frozen=True)
class Found:
    """What an engine read: the training rows as the file has them (not yet prepared), how
    they were drawn (None: the whole file), the holdout's row count and, for classification,
    the target's counts over both files (most frequent first)."""

    train: pd.DataFrame
    sample: TrainSample | None
    holdout_rows: int
    counts: pd.Series | None


def read_rows(root: Path, config: DataConfig, task: Task, *, whole: bool = False) -> Found:
    """The training rows (``whole``: the whole train file, whatever ``data.train_rows``) and
    the facts of the whole data, on ``data.engine``; a file that cannot be used is a
    DataError, as in the data gates."""
    wanted = None if whole or config.train_rows == "all" else int(config.train_rows)
    seed = config.holdout.seed
    with _engine(root, config) as queries:
        file_rows, holdout_rows = queries.rows("train"), queries.rows("holdout")
        counts = queries.counts() if task == "classification" else None
        if wanted is None or wanted >= file_rows:
            frame, sample = read_table(root / config.path), None
        else:
            frame = queries.sample(wanted, seed)
            sample = TrainSample(len(frame), file_rows, seed, SAMPLE_METHOD[config.engine])
    return Found(frame, sample, holdout_rows, counts)


def holdout_parquet(root: Path, config: DataConfig, scratch: Path) -> Path:
    """The holdout as one Parquet file: the file itself, or a CSV written as Parquet into
    ``scratch`` with the columns typed as the pandas engine types them."""
    path = root / str(config.holdout.file)
    if path.suffix.lower() in PARQUET:
        return path
    with _engine(root, config) as queries:
        return queries.write_parquet("holdout", scratch)


@contextmanager
def _engine(root: Path, config: DataConfig) -> Iterator[Any]:
    if config.engine == "spark":
        with spark.quiet():
            session = spark.session(config.spark)
            yield _SparkRows(spark.open_frames(session, root, config))
        return
    with tempfile.TemporaryDirectory(prefix="ci-ml-duckdb-") as work:
        database = Database(Path(work) / "data.duckdb", Path(work) / "spill", config.memory_limit)
        tables = open_database(database, root, config)
        with database.connect() as con:
            yield _DuckRows(con, config.target, list(tables.types["train"]))


def _counts(values: list[Any], numbers: list[int]) -> pd.Series:
    """A value_counts-like Series: the values by count, most frequent first."""
    import pandas as pd

    counts = pd.Series(numbers, index=pd.Index(values), dtype="int64")
    return counts.sort_values(ascending=False, kind="stable")


@dataclass(frozen=True)
class _DuckRows:
    con: Any
    target: str
    columns: list[str]

    def rows(self, side: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {side}").fetchone()[0])

    def counts(self) -> pd.Series:
        target = ident(self.target)
        found = self.con.execute(
            f"SELECT {target}, count(*) FROM data WHERE {target} IS NOT NULL "
            f"GROUP BY {target} ORDER BY {target}"
        ).fetchall()
        return _counts([row[0] for row in found], [row[1] for row in found])

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        values = ", ".join(ident(c) for c in self.columns)
        query = f"SELECT * FROM train ORDER BY hash({int(seed)}, {values}) LIMIT {int(n)}"
        return self.con.sql(query).to_arrow_table().to_pandas()

    def write_parquet(self, side: str, scratch: Path) -> Path:
        dest = scratch / f"{side}.parquet"
        self.con.execute(f"COPY (SELECT * FROM {side}) TO {text(str(dest))} (FORMAT parquet)")
        return dest


@dataclass(frozen=True)
class _SparkRows:
    frames: spark.Frames

    def rows(self, side: str) -> int:
        return int(self.frames.side(side).count())

    def counts(self) -> pd.Series:
        target = spark.col(self.frames.target)
        found = self.frames.both().where(target.isNotNull()).groupBy(target).count().collect()
        found = sorted(found, key=lambda row: row[0])
        return _counts([row[0] for row in found], [int(row[1]) for row in found])

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        f = spark.functions()
        train = self.frames.train
        rank = f.xxhash64(f.lit(int(seed)), *(spark.col(c) for c in train.columns))
        return train.orderBy(rank).limit(int(n)).toArrow().to_pandas()

    def write_parquet(self, side: str, scratch: Path) -> Path:
        folder = scratch / f"{side}-spark"
        self.frames.side(side).coalesce(1).write.parquet(str(folder))
        return next(folder.glob("part-*.parquet"))
