"""The files the evaluate step writes besides its records: the DVC plot files of the curves,
the monitor's references (a sample of the training rows, the holdout's predictions) and the
identities of the training rows (see DESIGN.md and docs/records.md)."""

from __future__ import annotations

from pathlib import Path

from ci_ml import rundir
from ci_ml.data import Dataset
from ci_ml.evaluation.curves import CURVE_NAMES, dvc_rows
from ci_ml.evaluation.predict import Predictions
from ci_ml.records import Curve

REFERENCE_ROWS = 200_000


def write_reference(dataset: Dataset, run_dir: Path) -> Path:
    """The model's training rows (a seeded sample of at most 200,000), for drift monitoring."""
    train = dataset.train
    if len(train) > REFERENCE_ROWS:
        train = train.sample(REFERENCE_ROWS, random_state=0)
    path = run_dir / rundir.REFERENCE
    with rundir.atomic_path(path) as tmp:
        train.to_parquet(tmp, index=False)
    return path


def write_training_ids(dataset: Dataset, run_dir: Path) -> Path:
    """The identities of every training row (docs/data.md): registered with the model, they
    keep the rows it trained on out of any later comparison with it."""
    import pandas as pd

    path = run_dir / rundir.TRAINING_IDS
    with rundir.atomic_path(path) as tmp:
        pd.DataFrame({"row_id": dataset.train_ids}).to_parquet(tmp, index=False)
    return path


def write_holdout_predictions(
    holdout: Predictions, run_dir: Path, classes: tuple[str, ...] = ()
) -> Path:
    """The candidate's truth and score on its holdout rows (a seeded sample of at most
    200,000): the monitor's reference for prediction drift and decay, rows it never fit.
    A multiclass model's file has ``truth`` (the class's place in ``classes``) and one
    column ``score[<class>]`` per class."""
    import numpy as np
    import pandas as pd

    rows = np.arange(holdout.y_true.size)
    if rows.size > REFERENCE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, REFERENCE_ROWS, replace=False))
    if holdout.score.ndim == 2:
        scores = {f"score[{c}]": holdout.score[rows, k] for k, c in enumerate(classes)}
        frame = pd.DataFrame({"truth": holdout.y_true[rows], **scores})
    else:
        frame = pd.DataFrame({"truth": holdout.y_true[rows], "score": holdout.score[rows]})
    path = run_dir / rundir.HOLDOUT_PREDICTIONS
    with rundir.atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def write_plots(curves: list[Curve], run_dir: Path) -> list[Path]:
    """Each curve as a DVC plot file, ``plots/<curve>.json``; a curve this run has not (the
    file of an earlier evaluate of another task) is removed."""
    drawn = {curve.name: curve for curve in curves}
    for name in CURVE_NAMES:
        if name not in drawn:
            (run_dir / rundir.PLOTS / f"{name}.json").unlink(missing_ok=True)
    return [
        rundir.write_json(run_dir, f"{rundir.PLOTS}/{name}.json", dvc_rows(curve))
        for name, curve in drawn.items()
    ]
