"""The slices of a streamed holdout: one reducer per value of each slice column.

:mod:`ci_ml.evaluation.streamed` hands every batch (and, with roc_auc, every batch again)
to :class:`StreamedSlices`, which groups the rows by their value of each column of
``slices.columns`` and feeds each group to its own reducer — a
:class:`~ci_ml.evaluation.streaming.BinaryStream` with sparse score histograms, or a
:class:`~ci_ml.evaluation.streaming.RegressionStream`. At the end each value becomes the
entry :func:`ci_ml.evaluation.compare.compare_slices` makes in memory: the same label, rows,
class counts, "too small" reasons, metrics and, for the sliced gates' metrics, comparisons at
the same Bonferroni-corrected confidence.

Fail closed, never a guess: a column with more than :data:`MAX_SLICE_VALUES` distinct values,
or a numeric column with more than :data:`~ci_ml.evaluation.compare.NUMERIC_SLICE_BINS`-quantile
values (in memory it is cut at quantiles of the compared rows, which one pass does not know),
is not sliced; :attr:`StreamedSlices.problems` says why, and a slice gate then fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from ci_ml.config import Config
from ci_ml.evaluation.compare import corrected_confidence, missing_slice_column, too_small
from ci_ml.evaluation.streaming import BinaryStream, RegressionStream

# Distinct values a slice column may have on a streamed holdout: each is a reducer (with
# roc_auc, sparse histograms of up to ~80 bytes per occupied score bin per model).
MAX_SLICE_VALUES = 64
NUMERIC_VALUES = 10  # above this many values compare.slice_masks cuts a number at quantiles
MISSING = "(missing)"

Reducer = BinaryStream | RegressionStream


class StreamedSlices:
    """Per-value reducers of the configured slice columns, fed batch by batch."""

    def __init__(self, config: Config, make: Callable[[], Reducer]) -> None:
        self.config, self.make = config, make
        self.columns = list(config.slices.columns) if config.slices else []
        self.reducers: dict[str, dict[Any, Reducer]] = {c: {} for c in self.columns}
        self.problems: dict[str, str] = {}
        self.floats: set[str] = set()  # columns pandas reads as floats (a float or a gap)
        self.numeric: set[str] = set()

    def check_columns(self, names: list[str]) -> None:
        """ConfigError when the holdout lacks a slice column (as in memory)."""
        for column in self.columns:
            if column not in names:
                raise missing_slice_column(column, names)

    def see(self, frame: Any) -> None:
        """Pass 1, every row of the batch: the columns' types as pandas reads the file."""
        for column in self.columns:
            values = frame[column]
            if values.dtype.kind in "iuf":
                self.numeric.add(column)
            if values.dtype.kind == "f" or (values.dtype.kind in "iu" and values.isna().any()):
                self.floats.add(column)

    def add(self, frame: Any, y: np.ndarray, cand: np.ndarray, prod: np.ndarray) -> None:
        """Pass 1: the compared rows of a batch (``frame`` holds only those)."""
        for column in self.columns:
            if column in self.problems:
                continue
            for key, rows in _groups(frame[column]):
                reducers = self.reducers[column]
                if key not in reducers:
                    reducers[key] = self.make()
                reducers[key].add(y[rows], cand[rows], prod[rows])
            self._check_count(column)

    def add_second(self, frame: Any, y: np.ndarray, cand: np.ndarray, prod: np.ndarray) -> None:
        """Pass 2 (roc_auc): the same rows again."""
        for column in self.columns:
            if column in self.problems:
                continue
            for key, rows in _groups(frame[column]):
                self.reducers[column][key].add_second(y[rows], cand[rows], prod[rows])

    def _check_count(self, column: str) -> None:
        values = [k for k in self.reducers[column] if k is not None]
        numeric = column in self.numeric
        cap = NUMERIC_VALUES if numeric else MAX_SLICE_VALUES
        if len(values) <= cap:
            return
        if numeric:
            why = (
                f"slices.columns: '{column}' is numeric with more than {cap} values, which "
                "are sliced at quantiles of the compared rows; a streamed holdout does not "
                "make quantile slices"
            )
        else:
            why = (
                f"slices.columns: '{column}' has more than {cap} distinct values, more than "
                "a streamed holdout slices"
            )
        self.problems[column] = why
        self.reducers[column] = {}  # its memory back

    def entries(self, names: list[str], gated: list[str], paired: bool) -> list[dict[str, Any]]:
        """The slices' entries of evaluation.json, as compare.compare_slices makes them."""
        made = [
            (column, self._label(column, key), reducer)
            for column in self.columns
            for key, reducer in self.reducers[column].items()
        ]
        made.sort(key=lambda m: (self.columns.index(m[0]), m[1]))
        judged = [m for m in made if _too_small(self.config, m[2]) is None]
        confidence = corrected_confidence(self.config, judged)
        return [self._entry(m, names, gated, paired, confidence) for m in made]

    def _entry(
        self,
        made: tuple[str, str, Reducer],
        names: list[str],
        gated: list[str],
        paired: bool,
        confidence: float,
    ) -> dict[str, Any]:
        column, label, reducer = made
        entry: dict[str, Any] = {
            "column": column,
            "value": label,
            "n": _rows(reducer),
            "class_counts": _class_counts(reducer),
            "metrics": {},
            "comparisons": {},
            "judged": False,
            "reason": "",
        }
        small = _too_small(self.config, reducer)
        if small is not None:
            entry["reason"] = small
            return entry
        comparison = self.config.comparison
        try:
            found = reducer.comparisons(confidence, comparison.resamples, comparison.seed)
        except ValueError as exc:
            entry["reason"] = f"not judged: {exc}"
            return entry
        entry["metrics"] = {name: found[name].candidate for name in names}
        if paired and gated:
            entry["comparisons"] = {name: asdict(found[name]) for name in dict.fromkeys(gated)}
        entry["judged"] = True
        return entry

    def _label(self, column: str, key: Any) -> str:
        """The value's text as compare.slice_masks writes it (pandas' str of the value)."""
        if key is None:
            return MISSING
        if column in self.numeric and not isinstance(key, bool):
            return str(float(key)) if column in self.floats else str(int(key))
        return str(key)


def _groups(values: Any) -> list[tuple[Any, np.ndarray]]:
    """(key, row positions) of each value in the batch; None is the key of missing."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    out = []
    for start, end in zip(starts, [*starts[1:], codes.size], strict=True):
        code = int(codes[order[start]])
        key = None if code < 0 else _key(uniques[code], values.dtype.kind)
        out.append((key, order[start:end]))
    return out


def _key(value: Any, kind: str) -> Any:
    """A number as a float (an int batch and a float batch of one column agree)."""
    return float(value) if kind in "iuf" else value.item() if hasattr(value, "item") else value


def _rows(reducer: Reducer) -> int:
    if isinstance(reducer, BinaryStream):
        return int(reducer.cells.sum())
    return reducer.moments.n


def _class_counts(reducer: Reducer) -> dict[str, int] | None:
    if not isinstance(reducer, BinaryStream):
        return None
    positives = int(reducer.cells[4:].sum())
    return {"positive": positives, "negative": int(reducer.cells.sum()) - positives}


def _too_small(config: Config, reducer: Reducer) -> str | None:
    return too_small(config, _rows(reducer), _class_counts(reducer))
