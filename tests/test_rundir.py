"""Tests for ci_ml.rundir: atomic writes, the ``latest`` link, and errors that name the step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ci_ml import rundir
from ci_ml.errors import RunDirError


def names(folder: Path) -> list[str]:
    """Everything in a folder, hidden files included (a temp file would show here)."""
    return sorted(os.listdir(folder))


def test_write_json_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    record = {"verdict": "pass", "gates": [{"metric": "roc_auc", "value": 0.91}]}
    path = rundir.write_json(tmp_path, rundir.GATE_REPORT, record)
    assert path == tmp_path / rundir.GATE_REPORT
    assert rundir.read_json(tmp_path, rundir.GATE_REPORT) == record
    assert names(tmp_path) == [rundir.GATE_REPORT]


def test_write_text_replaces_the_old_file(tmp_path: Path) -> None:
    rundir.write_text(tmp_path / rundir.REPORT, "old\n")
    rundir.write_text(tmp_path / rundir.REPORT, "new\n")
    assert (tmp_path / rundir.REPORT).read_text() == "new\n"
    assert names(tmp_path) == [rundir.REPORT]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    rundir.write_json(tmp_path, rundir.METRICS, {"roc_auc": 0.8})
    with pytest.raises(ValueError):
        rundir.write_json(tmp_path, rundir.METRICS, {"roc_auc": float("nan")})  # not JSON
    assert json.loads((tmp_path / rundir.METRICS).read_text()) == {"roc_auc": 0.8}
    assert names(tmp_path) == [rundir.METRICS]


def test_a_crash_inside_atomic_path_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / rundir.MODEL
    with pytest.raises(RuntimeError), rundir.atomic_path(target) as tmp:
        tmp.write_bytes(b"half a model")
        assert tmp.parent == target.parent  # same folder, so the rename is atomic
        raise RuntimeError("killed")
    assert names(target.parent) == []


def test_new_run_dirs_and_the_latest_link(tmp_path: Path) -> None:
    runs = tmp_path / ".ci-ml" / "runs"
    first = rundir.new_run_dir(runs)
    assert first.is_dir() and first.parent == runs
    assert rundir.latest_run_dir(runs) == first.resolve()
    second = rundir.new_run_dir(runs)
    assert second != first
    assert (runs / "latest").is_symlink()
    assert os.readlink(runs / "latest") == second.name  # relative: the folder can move
    assert rundir.latest_run_dir(runs) == second.resolve()
    assert names(runs) == sorted([first.name, second.name, "latest"])


def test_no_run_yet_says_to_pull(tmp_path: Path) -> None:
    with pytest.raises(RunDirError) as info:
        rundir.latest_run_dir(tmp_path / "runs")
    message = str(info.value)
    assert f"no run found under {tmp_path / 'runs'}" in message
    assert "'ci-ml pull'" in message


@pytest.mark.parametrize(
    ("name", "step"),
    [
        (rundir.PULL, "pull"),
        (rundir.DATA_REPORT, "validate"),
        (rundir.MODEL, "train"),
        (rundir.MODEL_CARD, "train"),
        (rundir.METRICS, "evaluate"),
        (rundir.EVALUATION, "evaluate"),
        (rundir.GATE_REPORT, "gate"),
    ],
)
def test_a_missing_file_names_the_step_to_run(tmp_path: Path, name: str, step: str) -> None:
    with pytest.raises(RunDirError) as info:
        rundir.require(tmp_path, name)
    assert str(info.value) == (
        f"{tmp_path / name} is missing; run 'ci-ml {step} --run-dir {tmp_path}' first."
    )


def test_read_json_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"data-report\.json is missing; run 'ci-ml validate"):
        rundir.read_json(tmp_path, rundir.DATA_REPORT)


def test_read_json_of_a_damaged_file(tmp_path: Path) -> None:
    (tmp_path / rundir.EVALUATION).write_text('{"task": "classif')
    with pytest.raises(RunDirError) as info:
        rundir.read_json(tmp_path, rundir.EVALUATION)
    message = str(info.value)
    assert "evaluation.json is not valid JSON" in message
    assert "run its step again" in message
