"""The evaluate step on engines duckdb and spark (docs/data.md, "Data larger than memory").

A holdout of at most ``data.streaming_rows`` rows is loaded and evaluated in memory, exactly
as on the pandas engine; a larger one is streamed from a Parquet file
(:mod:`ci_ml.evaluation.streamed`; a CSV holdout is first written as Parquet into a scratch
directory, not the run directory, which becomes a CI artifact).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ci_ml.data import Dataset
from ci_ml.engines.rows import holdout_parquet
from ci_ml.evaluation.baseline import Baseline
from ci_ml.evaluation.record import Evaluated
from ci_ml.evaluation.streamed import StreamedHoldout, check_streamable, evaluate_streamed
from ci_ml.project import Project, engine_data, holdout_rows, now
from ci_ml.records import ModelCard


def streams(project: Project, run_dir: Path) -> bool:
    """Whether evaluate streams the holdout: an out-of-core engine and more than
    ``data.streaming_rows`` holdout rows."""
    data = project.config.data
    return data.engine != "pandas" and holdout_rows(project, run_dir) > data.streaming_rows


def evaluate(
    project: Project,
    run_dir: Path,
    train: Dataset,
    version: str,
    model: Any,
    card: ModelCard,
    baseline: Baseline | None,
) -> Evaluated:
    """The streamed evaluation of the holdout; ``train`` holds the training rows."""
    data = engine_data(project, run_dir)  # the configured files, or the run's split
    rows = holdout_rows(project, run_dir)
    check_streamable(train, rows, data.streaming_rows)
    with tempfile.TemporaryDirectory(prefix="ci-ml-holdout-") as scratch:
        path = holdout_parquet(project.root, data, Path(scratch))
        holdout = StreamedHoldout(path, rows)
        return evaluate_streamed(
            project.config, train, holdout, version, model, card, baseline, now()
        )
