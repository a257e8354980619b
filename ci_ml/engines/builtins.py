"""The built-in data checks of :mod:`ci_ml.quality`, computed where the data lives: same
names, outcomes, observed values and counts as the pandas engine, without loading the rows
(only counts per class and a few sample rows come back).

The checks are made here from a few answers of an engine (:class:`Queries`): the task, each
side's rows and labels, the bad targets, the leaked rows. :class:`SqlQueries` asks DuckDB over
the views of :mod:`ci_ml.engines.database`; :mod:`ci_ml.engines.spark` asks Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ci_ml.config import DataConfig, Task
from ci_ml.data import MAX_CLASSES_FOR_INFERENCE, class_labels
from ci_ml.engines.database import SIDES, Tables, ident
from ci_ml.quality import SAMPLE_SIZE, Check, class_counts_check, jsonable

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Side:
    """One side of the split as the checks need it: its rows and its labels' counts.

    ``labels`` holds the labels as the pandas engine reads them: an integer target with a
    missing cell becomes float in pandas (1 -> 1.0, shown '1.0'), so its labels do here too.
    """

    rows: int
    missing: int
    labels: dict[Any, int]


class Queries(Protocol):
    """What an engine answers for the checks (train and holdout as pandas reads them)."""

    @property
    def target(self) -> str:
        """The target column."""
        ...

    def infer_task(self) -> Task:
        """:func:`ci_ml.data.infer_task` of the train side's target."""
        ...

    def side(self, side: str, task: Task) -> Side:
        """The rows of ``side`` and, for classification, its labels' counts."""
        ...

    def bad_targets(self) -> tuple[int, list[Any]]:
        """Regression: the rows of both sides whose target is not a finite number, and a few
        of those values."""
        ...

    def leaked(self, holdout_rows: int) -> tuple[int, list[Any]]:
        """How many of the ``holdout_rows`` holdout rows have the features of a train row
        (missing equals missing), and a few of them as records."""
        ...


def builtin_checks(
    queries: Queries, config: DataConfig
) -> tuple[Task, tuple[str, ...], list[Check]]:
    """The task, the classes and the checks of :func:`ci_ml.quality.builtin_checks`."""
    task = config.task or queries.infer_task()
    sides = {side: queries.side(side, task) for side in SIDES}
    classes = _classes(sides, config, task)
    target = queries.target
    quality_checks = [
        _not_empty(sides),
        _target_valid(queries, task, sides),
        _classes_on(sides, "train", target, task, "to learn them (too few rows of a class?)"),
        _classes_on(sides, "holdout", target, task, "to compute ranking metrics"),
        _holdout_class_counts(sides["holdout"], classes, target, task, config),
        _overlap(queries, sides["holdout"].rows, config.max_overlap_percent),
    ]
    return task, classes, quality_checks


@dataclass(frozen=True)
class SqlQueries:
    """:class:`Queries` in DuckDB, over the views ``train`` and ``holdout``."""

    con: duckdb.DuckDBPyConnection
    tables: Tables
    memory_bytes: int = 1 << 30  # the connection's memory limit (data.memory_limit)

    @property
    def target(self) -> str:
        return self.tables.target

    def infer_task(self) -> Task:
        con, tables = self.con, self.tables
        kind = tables.kind("train", tables.target)
        if kind not in ("float", "integer", "number"):
            return "classification"
        target = ident(tables.target)
        fractional = f"bool_or({target} <> round({target}))" if kind != "integer" else "false"
        row = con.execute(f"SELECT {fractional}, count(DISTINCT {target}) FROM train").fetchone()
        assert row is not None
        if row[0] or row[1] > MAX_CLASSES_FOR_INFERENCE:
            return "regression"
        return "classification"

    def side(self, side: str, task: Task) -> Side:
        target = ident(self.tables.target)
        if task == "regression":
            row = self.con.execute(
                f"SELECT count(*), count(*) - count({target}) FROM {side}"
            ).fetchone()
            assert row is not None
            return Side(int(row[0]), int(row[1]), {})
        groups = self.con.execute(f"SELECT {target}, count(*) FROM {side} GROUP BY ALL")
        return labelled(groups.fetchall(), self.tables.kind(side, self.tables.target))

    def bad_targets(self) -> tuple[int, list[Any]]:
        target = ident(self.tables.target)
        value = f"TRY_CAST({target} AS DOUBLE)"
        bad = f"{value} IS NULL OR NOT isfinite({value})"
        counted = " + ".join(f"(SELECT count(*) FROM {side} WHERE {bad})" for side in SIDES)
        row = self.con.execute(f"SELECT {counted}").fetchone()
        count = int(row[0]) if row else 0
        if not count:
            return 0, []
        shown = " UNION ALL ".join(
            f"(SELECT {target} FROM {side} WHERE {bad} LIMIT {SAMPLE_SIZE})" for side in SIDES
        )
        return count, [r[0] for r in self.con.execute(shown).fetchall()][:SAMPLE_SIZE]

    def leaked(self, holdout_rows: int) -> tuple[int, list[Any]]:
        passes = overlap_passes(holdout_rows, self.memory_bytes)
        return _leaked(self.con, self.tables.features, passes)


def labelled(groups: list[tuple[Any, int]], kind: str) -> Side:
    """A classification side from its (label, rows) groups and the target's kind (see
    :meth:`ci_ml.engines.database.Tables.kind`)."""
    labels = {value: int(n) for value, n in groups if value is not None}
    missing = sum(int(n) for value, n in groups if value is None)
    if missing and kind == "integer":
        labels = {float(value): n for value, n in labels.items()}
    return Side(sum(labels.values()) + missing, missing, labels)


def _classes(sides: dict[str, Side], config: DataConfig, task: Task) -> tuple[str, ...]:
    """Every class as text; the DataErrors of :func:`ci_ml.data.load_dataset` (the train
    file's target first, then both files')."""
    import pandas as pd

    if task != "classification":
        return ()
    # pandas gives the labels of both files as one Series: integers and floats make floats
    floats = any(isinstance(v, float) for side in sides.values() for v in side.labels)
    both: dict[Any, int] = {}
    for side in sides.values():
        for value, n in side.labels.items():
            key = float(value) if floats and isinstance(value, int) else value
            both[key] = both.get(key, 0) + n
    for counts in (sides["train"].labels, both):
        ranked = dict(sorted(counts.items(), key=lambda item: -item[1]))
        _, classes = class_labels(pd.Series(ranked, dtype=object), config)
    return classes


def _not_empty(sides: dict[str, Side]) -> Check:
    rows = {side: sides[side].rows for side in SIDES}
    ok = rows["train"] > 0 and rows["holdout"] > 0
    return Check("dataset_not_empty", ok, observed=rows, details="train and holdout need rows")


def _target_valid(queries: Queries, task: Task, sides: dict[str, Side]) -> Check:
    total = sum(side.rows for side in sides.values())
    if task == "classification":
        count = sum(side.missing for side in sides.values())
        sample: list[Any] = [None] * min(count, SAMPLE_SIZE)
        rule = "every row needs a label"
    else:
        count, sample = queries.bad_targets()
        rule = "target values must be finite numbers"
    return Check(
        "target_valid",
        count == 0,
        column=queries.target,
        unexpected_count=count,
        unexpected_percent=round(100.0 * count / max(1, total), 4),
        sample=jsonable(sample),
        details=rule,
    )


def _classes_on(sides: dict[str, Side], part: str, target: str, task: Task, why: str) -> Check:
    """Every class of the data has rows on this side of the split."""
    name = f"{part}_has_every_class"
    if task != "classification":
        return Check(name, True, details="regression: not applicable")
    seen = set(sides[part].labels)
    every = seen | set(sides["holdout" if part == "train" else "train"].labels)
    missing = sorted(map(str, every - seen))
    return Check(
        name,
        not missing,
        column=target,
        observed=sorted(map(str, seen)),
        sample=missing,
        details=f"the {part} rows must contain every class {why}",
    )


def _holdout_class_counts(
    holdout: Side, classes: tuple[str, ...], target: str, task: Task, config: DataConfig
) -> Check:
    name = "holdout_class_counts"
    if task != "classification":
        return Check(name, True, details="regression: not applicable")
    minimum = config.holdout.min_class_count
    counts: dict[str, int] = {}
    for value, n in holdout.labels.items():
        counts[str(value)] = counts.get(str(value), 0) + n
    every = {label: counts.get(label, 0) for label in classes}
    return class_counts_check(every, target, minimum)


def _overlap(queries: Queries, holdout_rows: int, max_percent: float) -> Check:
    """Holdout rows whose features equal a train row's (missing equals missing)."""
    count, sample = queries.leaked(holdout_rows)
    percent = 100.0 * count / max(1, holdout_rows)
    return Check(
        "train_holdout_overlap",
        percent <= max_percent,
        observed=f"{count} of {holdout_rows} holdout rows also in train",
        unexpected_count=count,
        unexpected_percent=round(percent, 4),
        sample=jsonable(sample),
        details=f"allowed: at most {max_percent}% (data.max_overlap_percent)",
    )


# What one holdout key costs DuckDB's hash join, with its headroom: a build side larger
# than the memory limit allows goes external and gets ~3x slower (20M holdout rows at 1GB:
# 43 s in one pass, 15 s in two; benchmarks/bench_data_gates.py).
JOIN_BYTES_PER_KEY = 64


def overlap_passes(holdout_rows: int, memory_bytes: int) -> int:
    """In how many passes the overlap check joins, each over a slice of the holdout's keys
    whose hash table fits in memory."""
    return max(1, -(-holdout_rows * JOIN_BYTES_PER_KEY // max(1, memory_bytes)))


def _leaked(
    con: duckdb.DuckDBPyConnection, features: tuple[str, ...], passes: int = 1
) -> tuple[int, list[Any]]:
    """How many holdout rows also are train rows, and a few of them.

    A 64-bit hash of each row's features narrows the rows down: the train rows whose hash a
    holdout row has (a semi-join, the holdout's hashes the build side, the smaller one), then
    the holdout rows whose hash one of those has. With ``passes`` > 1 the first join runs
    once per slice ``hash % passes`` of the keys, so that its hash table stays within the
    memory limit. Only the few rows found are compared column by column with ``IS NOT
    DISTINCT FROM``, so a hash collision never counts.
    """
    columns = ", ".join(ident(c) for c in features)
    key = f"hash({columns})"
    keyed = f"SELECT {key} AS k, {columns} FROM train"
    for part in range(passes):
        where = f" WHERE k % {passes} = {part}" if passes > 1 else ""
        query = (
            f"SELECT DISTINCT * FROM (SELECT * FROM ({keyed}){where}) t "
            f"SEMI JOIN (SELECT * FROM (SELECT {key} AS k FROM holdout){where}) h USING (k)"
        )
        if part == 0:
            con.execute(f"CREATE TEMP TABLE train_rows AS {query}")
        else:
            con.execute(f"INSERT INTO train_rows {query}")
    if con.execute("SELECT count(*) FROM train_rows").fetchone() == (0,):
        return 0, []
    con.execute(
        f"CREATE TEMP TABLE holdout_rows AS SELECT * FROM (SELECT {key} AS k, {columns} "
        "FROM holdout) h SEMI JOIN train_rows USING (k)"
    )
    same = " AND ".join(f"t.{ident(c)} IS NOT DISTINCT FROM h.{ident(c)}" for c in features)
    leaked = (
        f"FROM holdout_rows h WHERE EXISTS (SELECT 1 FROM train_rows t WHERE t.k = h.k AND {same})"
    )
    found = con.execute(f"SELECT count(*) {leaked}").fetchone()
    rows = con.execute(
        f"SELECT {', '.join('h.' + ident(c) for c in features)} {leaked} LIMIT {SAMPLE_SIZE}"
    )
    names = [d[0] for d in rows.description]
    return int(found[0]) if found else 0, [
        dict(zip(names, r, strict=True)) for r in rows.fetchall()
    ]
