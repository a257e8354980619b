"""Your own training command (``model.command``): run it, take the model file it writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ci_ml.config import ModelConfig
from ci_ml.data import Dataset
from ci_ml.errors import ModelFileError
from ci_ml.models import load_model, sha256_file
from ci_ml.models.onnx import check_own_onnx
from ci_ml.training.card import feature_schema

STDERR_FD = 2


def train_command(
    config: ModelConfig, dataset: Dataset, root: Path, run_dir: Path, model_path: Path
) -> tuple[Any, str]:
    """Run the user's training command and take the skops file (or ONNX model) it writes."""
    assert config.command is not None
    output = (root / config.output).resolve()
    # the training rows go to a scratch dir, not the run dir: run dirs become CI artifacts
    with tempfile.TemporaryDirectory(prefix="ci-ml-train-") as scratch:
        train_file = Path(scratch) / "train.parquet"
        dataset.train.to_parquet(train_file, index=False)
        env = {**os.environ, **command_env(config, dataset, train_file, output)}
        # the command's chatter goes to stderr: stdout carries `ci-ml train --json` output
        done = subprocess.run(
            config.command, shell=True, cwd=root, env=env, check=False, stdout=STDERR_FD
        )
    if done.returncode != 0:
        raise ModelFileError(
            f"the training command {config.command!r} exited with {done.returncode}; "
            "run it by hand to see why."
        )
    kind = "an ONNX model" if config.writes_onnx else "a skops file"
    if not output.is_file():
        raise ModelFileError(
            f"the training command finished but wrote no model at {output} "
            f"(model.output); it must save {kind} there ($CI_ML_MODEL_PATH)."
        )
    if config.writes_onnx:
        model = check_own_onnx(output, dataset, feature_schema(dataset.train, dataset.features))
    else:
        model = load_model(output, config.trusted_types)
    shutil.copyfile(output, model_path)

    return model, sha256_file(model_path)


def command_env(
    config: ModelConfig, dataset: Dataset, train_file: Path, output: Path
) -> dict[str, str]:
    """What the training command is told: where the rows are and the model goes, and what the
    model must know (its feature columns, the task, the classes)."""
    return {
        "CI_ML_TRAIN_DATA": str(train_file),
        "CI_ML_MODEL_PATH": str(output),
        "CI_ML_TARGET": dataset.target,
        "CI_ML_SEED": str(config.seed),
        "CI_ML_FEATURES": json.dumps(list(dataset.features)),
        "CI_ML_TASK": dataset.task,
        "CI_ML_CLASSES": json.dumps(list(dataset.classes)),
    }
