"""``ci-ml experiments``: queued DVC experiments of the pipeline example, each judged against
production on the same holdout rows, in one table (``ci_ml/training/experiments.py``)."""

from __future__ import annotations

import json
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
    subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root / PIPELINE, check=True, capture_output=True
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
