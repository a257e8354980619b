"""The run directory: the plain files through which the steps talk.

Each step reads and writes files here (see DESIGN.md), so steps can run in
separate CI jobs and be inspected by people. New runs go to
``<runs_dir>/<id>``; ``<runs_dir>/latest`` is a symlink to the newest one.
Every file is written atomically (temp file + rename): a crash never leaves a
half-written run file.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_ml.errors import RunDirError

PULL = "pull.json"
DATA_REPORT = "data-report.json"
MODEL = "model.skops"  # a scikit-learn model; model.json's model_file names the run's model
BUNDLE = "model.bundle"  # a booster (XGBoost, LightGBM, CatBoost) and its scikit-learn steps
MODEL_FILES = (MODEL, BUNDLE, "model.onnx")  # the files a model may be (model.onnx: your own)
MODEL_CARD = "model.json"
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
GATE_REPORT = "gate-report.json"
REPORT = "report.md"
REFERENCE = "reference.parquet"
TRAINING_IDS = "training-ids.parquet"
HOLDOUT_PREDICTIONS = "holdout-predictions.parquet"  # columns truth, score: for the monitor
SMOKE = "smoke-sample.json"
ONNX = "model.onnx"
PARITY = "parity.json"
EXPERIMENTS = "experiments.json"  # ci-ml experiments: every DVC experiment's verdict, the winner
EXPERIMENT_RUNS = "experiments"  # ci-ml experiments: experiments/<name>/, a run directory each
PLOTS = "plots"  # the curves as DVC plot files, plots/<curve>.json (docs/report.md#curves)
# the out-of-core engines' seeded split of data.path: split/train.parquet, split/holdout.parquet
SPLIT = "split"

# which command writes each file: used to tell the user what to run first
WRITTEN_BY = {
    PULL: "pull",
    DATA_REPORT: "validate",
    MODEL: "train",
    BUNDLE: "train",
    MODEL_CARD: "train",
    METRICS: "evaluate",
    EVALUATION: "evaluate",
    GATE_REPORT: "gate",
    REPORT: "report",
    REFERENCE: "evaluate",
    TRAINING_IDS: "evaluate",
    HOLDOUT_PREDICTIONS: "evaluate",
    SMOKE: "evaluate",
    ONNX: "export",
    PARITY: "export",
    PLOTS: "evaluate",
    SPLIT: "validate",
}


def new_run_dir(runs_dir: Path) -> Path:
    """Create ``<runs_dir>/<timestamp>-<random>`` and point ``latest`` at it."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    path = runs_dir / run_id
    path.mkdir(parents=True)
    _point_latest(runs_dir, run_id)
    return path


def latest_run_dir(runs_dir: Path) -> Path:
    """The newest run directory, or a RunDirError saying how to make one."""
    link = runs_dir / "latest"
    if not link.exists():
        raise RunDirError(
            f"no run found under {runs_dir}; start one with 'ci-ml pull' or 'ci-ml run', "
            "or pass --run-dir."
        )
    return link.resolve()


def _point_latest(runs_dir: Path, run_id: str) -> None:
    tmp = runs_dir / f".latest-{secrets.token_hex(4)}"
    tmp.symlink_to(run_id)
    os.replace(tmp, runs_dir / "latest")


def require(run_dir: Path, name: str) -> Path:
    """Path of a run file that must exist, or a RunDirError naming the step to run."""
    path = run_dir / name
    if not path.is_file():
        step = WRITTEN_BY.get(name, "an earlier step")
        raise RunDirError(f"{path} is missing; run 'ci-ml {step} --run-dir {run_dir}' first.")
    return path


def read_json(run_dir: Path, name: str) -> Any:
    """Load a run file written by an earlier step."""
    path = require(run_dir, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc}); run its step again.") from None


def write_json(run_dir: Path, name: str, data: Any) -> Path:
    """Write a run file atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    return write_text(run_dir / name, text)


def write_text(path: Path, text: str) -> Path:
    """Write text atomically: a reader sees the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it into place if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; run files are for people and jobs
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
