"""``ci-ml experiments``: queued DVC experiments of the pipeline example, each judged against
production on the same holdout rows, in one table (``ci_ml/training/experiments.py``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci_ml.records import ExperimentsRecord, GateReport, ModelCard, read_record
from ci_ml.registry import open_registry
from tests.conftest import git, run_cli
from tests.credit_pipeline import PIPELINE, PIPELINE_CONFIG, pipeline_project


def dvc(root: Path, *args: str) -> None:
    # a stage's `python` is the one running the tests, as ci-ml makes it for its own runs
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root / PIPELINE,
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": path},
    )


def set_param(root: Path, **train: object) -> None:
    path = root / PIPELINE / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"].update(train)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_three_queued_experiments_one_table_the_better_one_registered(tmp_path: Path) -> None:
    root = pipeline_project(tmp_path / "repo")
    # production: a middling model (60 boosting rounds), promoted
    set_param(root, max_iter=60)
    first = root / PIPELINE / ".ci-ml/runs/production"
    done = run_cli("run", "--config", str(PIPELINE_CONFIG), "--run-dir", str(first), cwd=root)
    assert done.returncode == 0, done.stderr
    registry = open_registry(".ci-ml/registry", root=root / PIPELINE)
    version = registry.get(read_record(first / "model.json", ModelCard).digest).version
    registry.promote(version, None, by="tests")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@ci-ml.invalid", "commit", "-qm", "lock")

    # three experiments queued on that commit: worse, the same, better than production
    for name, rounds in (("worse", 3), ("same", 60), ("better", 300)):
        dvc(root, "exp", "run", "--queue", "-n", name, "-S", f"train.max_iter={rounds}")
    out = root / PIPELINE / ".ci-ml/runs/experiments"
    done = run_cli(
        "experiments", "--config", str(PIPELINE_CONFIG), "--run-all", "--run-dir", str(out),
        cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the best passed

    record = read_record(out / "experiments.json", ExperimentsRecord)
    rows = {row.name: row for row in record.experiments}
    assert [row.name for row in record.experiments] == ["better", "same", "worse"]
    assert rows["worse"].verdict == "fail"
    assert rows["same"].verdict == "pass" and rows["better"].verdict == "pass"
    assert rows["same"].changes["roc_auc"].delta == 0  # the same model, byte for byte
    assert rows["better"].params == {"train.max_iter": 300}
    assert record.winner == "better"
    assert record.corrected_confidence == pytest.approx(1 - 0.05 / 3)
    # every interval at the corrected level, the gates as configured
    evaluation = json.loads((out / "experiments/worse/evaluation.json").read_text())
    assert evaluation["comparisons"]["roc_auc"]["confidence"] == pytest.approx(1 - 0.05 / 3)
    # the run's own files are the winner's: the record deploy checks, the registered model
    gate = read_record(out / "gate-report.json", GateReport)
    card = read_record(out / "model.json", ModelCard)
    assert gate.verdict == "pass" and card.dvc is not None
    assert card.dvc.params["train.max_iter"] == 300
    assert gate.candidate.digest == rows["better"].digest == card.digest
    assert registry.get(card.digest).version != version  # registered beside production

    # one table in the comment: three verdicts, the better one to register
    report = (out / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| ") and "`" in line]
    assert len(table) == 3, report
    assert "🏆" in table[0] and "`better`" in table[0] and "would be registered" in table[0]
    assert "✅ pass" in table[1] and "❌ fail" in table[2]
    assert report.index("DVC experiments") < report.index("ci-ml verdict")
    assert "98.33%" in report  # the corrected level is stated


def test_experiments_need_a_dvc_stage(tmp_path: Path) -> None:
    from tests.conftest import REPO

    done = run_cli("experiments", "--config", str(REPO / "ci-ml.yaml"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "set model.dvc_stage" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_failed_data_gates_judge_no_experiment(tmp_path: Path) -> None:
    root = pipeline_project(tmp_path / "repo")
    dvc(root, "exp", "run", "--pull", "-n", "tried", "-S", "train.max_iter=50")
    # the data gates now ask more rows of each class than the holdout has
    config = root / PIPELINE_CONFIG
    found = yaml.safe_load(config.read_text())
    found["data"]["holdout"]["min_class_count"] = 100_000
    config.write_text(yaml.safe_dump(found, sort_keys=False))
    out = root / PIPELINE / ".ci-ml/runs/blocked"
    done = run_cli("experiments", "--config", str(PIPELINE_CONFIG), "--run-dir", str(out), cwd=root)
    assert done.returncode == 1, done.stderr
    gate = read_record(out / "gate-report.json", GateReport)
    assert gate.verdict == "fail" and gate.gates[0].verdict == "fail"  # the data gate
    record = read_record(out / "experiments.json", ExperimentsRecord)
    (row,) = record.experiments
    assert (row.name, row.verdict, row.digest) == ("tried", "fail", None)
    assert not (out / "experiments/tried/model.skops").exists()  # nothing was taken
    assert "ci-ml verdict: **FAIL**" in (out / "report.md").read_text()


def test_an_experiment_on_other_data_is_not_compared(tmp_path: Path) -> None:
    from ci_ml.config import DataConfig
    from ci_ml.training import experiments

    (tmp_path / "data").mkdir()
    (tmp_path / "data/train.csv").write_text("x,y\n1,0\n")
    data = DataConfig.model_validate(
        {"path": "data/train.csv", "target": "y", "holdout": {"file": "data/holdout.csv"}}
    )
    same = {"deps": {"data/train.csv": "md5:" + hashlib.md5(b"x,y\n1,0\n").hexdigest()}}
    assert experiments.other_data(tmp_path, data, same) is None
    other = {"deps": {"data/train.csv": "md5:" + "0" * 32}}
    why = experiments.other_data(tmp_path, data, other)
    assert why is not None and "trained on another data/train.csv (md5:00000000)" in why
    assert "does not record data/train.csv" in str(
        experiments.other_data(tmp_path, data, {"deps": {}})
    )
    # an experiment whose own dvc.yaml lets the stage read the held-out rows
    peeking = {"deps": {**same["deps"], "data": "md5:1.dir"}}
    why = experiments.other_data(tmp_path, data, peeking)
    assert why is not None and "depends on data, which holds data.holdout.file" in why
    assert experiments.params_changed(
        {"train.max_iter": 200, "train.seed": 0}, {"params": {"train.max_iter": 3, "train.seed": 0}}
    ) == {"train.max_iter": 3}
