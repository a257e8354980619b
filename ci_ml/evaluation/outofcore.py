"""Candidate vs production on a Parquet holdout larger than memory, one record batch at a time.

Each batch of ``batch_rows`` rows is read (only the target and the models' feature columns),
turned into a pandas frame, predicted by both models (``predict_proba``, the positive class's
column, as :func:`ci_ml.evaluation.predict.predict`) and reduced by
:class:`ci_ml.evaluation.streaming.BinaryStream`; nothing of the batch is kept. With roc_auc
the file is read and predicted twice (DeLong's second pass), the price of memory that does not
grow with the holdout. The result is the same ``{metric: Comparison}`` that
:func:`ci_ml.evaluation.stats.compare` gives, so the gates judge it unchanged.

The evaluate step on engines duckdb and spark streams a binary holdout of more than
``data.streaming_rows`` rows (default :data:`STREAMING_ROWS`) with the pieces of this module
(:mod:`ci_ml.evaluation.streamed`: it also keeps out the rows production trained on, and
makes the candidate's own metrics, churn and the smoke sample in the same passes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ci_ml import config
from ci_ml.errors import DataError, ModelFileError
from ci_ml.evaluation.metrics import DEFAULT_THRESHOLD, FloatArray
from ci_ml.evaluation.stats import Comparison
from ci_ml.evaluation.streaming import DEFAULT_BINS, Batch, compare_stream

# Rows per record batch: 256k rows of 10 float64 features is ~20 MiB per frame.
DEFAULT_BATCH_ROWS = 1 << 18
READ_BUFFER_BYTES = 1 << 22
# Above this many holdout rows the evaluate step streams (data.streaming_rows' default): the
# in-memory comparison takes ~276 bytes per row besides the holdout frame
# (bench_streaming_compare.py): ~1.3 GiB here.
STREAMING_ROWS = config.STREAMING_ROWS


@dataclass(frozen=True)
class Scorer:
    """A fitted binary classifier (or regressor) and the feature columns it predicts from."""

    model: Any
    features: list[str]


@dataclass(frozen=True)
class ParquetHoldout:
    """A holdout file: its path, target column, positive class and batch size."""

    path: Path
    target: str
    positive_class: Any
    batch_rows: int = DEFAULT_BATCH_ROWS


def compare_parquet(
    holdout: ParquetHoldout,
    candidate: Scorer,
    production: Scorer,
    metric_names: Iterable[str],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> dict[str, Comparison]:
    """Both models on every row of the Parquet holdout, compared; memory bounded by the batch.

    A missing file or column is a DataError; a model that cannot predict a batch, or does
    not know the positive class, a ModelFileError.
    """
    columns = list(dict.fromkeys([holdout.target, *candidate.features, *production.features]))
    file = open_parquet(holdout.path, columns)

    def batches() -> Iterator[Batch]:
        for record_batch in file.iter_batches(batch_size=holdout.batch_rows, columns=columns):
            frame = record_batch.to_pandas()
            truth = (frame[holdout.target].astype(str) == str(holdout.positive_class)).to_numpy()
            yield (
                truth.astype(np.float64),
                positive_proba(candidate, frame, holdout.positive_class),
                positive_proba(production, frame, holdout.positive_class),
            )

    return compare_stream(
        metric_names,
        batches,
        confidence=confidence,
        n_resamples=n_resamples,
        seed=seed,
        threshold=threshold,
        bins=bins,
    )


def open_parquet(path: Path, columns: list[str]) -> Any:
    """The Parquet file at ``path`` to read in batches; DataError when it is unreadable or
    lacks one of ``columns``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer (the default) caches column chunks and, measured with pyarrow 26, keeps
        # them until the reader ends: memory grew ~20 MiB per million rows; a buffered
        # stream without it stays flat
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read the holdout {path} as Parquet ({exc}).") from None
    missing = [c for c in columns if c not in file.schema_arrow.names]
    if missing:
        raise DataError(
            f"the holdout {path} lacks column(s) {', '.join(missing)}; it has "
            f"{', '.join(file.schema_arrow.names[:12])}."
        )
    return file


def predicted_values(scorer: Scorer, frame: Any) -> FloatArray:
    """The regressor's predicted values on the rows of ``frame``."""
    try:
        values = np.asarray(scorer.model.predict(frame[scorer.features]), dtype=np.float64)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"the model cannot predict the holdout rows ({first}).") from None
    return values.reshape(-1)


def positive_proba(scorer: Scorer, frame: Any, positive_class: Any) -> FloatArray:
    """The scorer's probability of the positive class on the rows of ``frame``."""
    classes = [str(c) for c in getattr(scorer.model, "classes_", [])]
    if str(positive_class) not in classes:
        raise ModelFileError(
            f"the model knows classes {classes}, not the positive class "
            f"{positive_class!r}; it was trained on another target."
        )
    try:
        proba = np.asarray(scorer.model.predict_proba(frame[scorer.features]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"the model cannot predict the holdout rows ({first}).") from None
    return proba[:, classes.index(str(positive_class))].astype(np.float64)
