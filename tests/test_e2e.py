"""End to end: a fresh clone of the example project, `ci-ml run` as a user types it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import git, make_example_repo, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A `git clone` of the example project: no data, no DVC cache, nothing installed."""
    origin = make_example_repo(tmp_path / "origin")
    subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / "clone")], check=True)
    return tmp_path / "clone"


def latest(repo: Path) -> Path:
    return (repo / ".ci-ml" / "runs" / "latest").resolve()


def test_fresh_clone_runs_and_registers(clone: Path) -> None:
    assert not (clone / "data" / "credit_data.csv").exists()
    done = run_cli("run", cwd=clone)
    assert done.returncode == 0, done.stderr
    assert "verdict: PASS" in done.stdout
    run_dir = latest(clone)
    for name in [
        "pull.json",
        "data-report.json",
        "model.skops",
        "model.json",
        "metrics.json",
        "evaluation.json",
        "gate-report.json",
        "report.md",
        "plots/roc.json",
        "plots/precision_recall.json",
        "plots/calibration.json",
    ]:
        assert (run_dir / name).is_file(), name
    gate_report = json.loads((run_dir / "gate-report.json").read_text())
    card = json.loads((run_dir / "model.json").read_text())
    dvc_md5 = yaml.safe_load((clone / "data.dvc").read_text())["outs"][0]["md5"]
    assert gate_report["verdict"] == "pass"
    assert gate_report["data_version"] == f"md5:{dvc_md5}"
    assert gate_report["candidate"]["digest"] == card["digest"]
    assert card["git_sha"] == git(clone, "rev-parse", "HEAD")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.78 <= metrics["roc_auc"] <= 1
    report = (run_dir / "report.md").read_text()
    assert report.splitlines()[0].startswith("## ✅ ci-ml verdict: **PASS**")
    versions = list((clone / ".ci-ml" / "registry" / "versions").glob("*.json"))
    assert [v.stem for v in versions] == [card["digest"][:12]]
    # DVC itself reads the metrics file
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show", str(run_dir / "metrics.json"), "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "roc_auc" in shown.stdout
    # and the candidate's ROC curve (a first model: no production column)
    plot = run_dir / "plots" / "roc.json"
    show = ["plots", "show", str(plot), "-x", "fpr", "-y", "candidate", "--show-vega"]
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", *show],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    points = json.loads(shown.stdout)["data"]["values"]
    assert [p["fpr"] for p in points] == pytest.approx([i / 20 for i in range(21)])
    assert points[-1]["candidate"] == 1.0 and "production" not in points[0]


def test_injected_nulls_and_out_of_range_values_block(clone: Path) -> None:
    assert run_cli("pull", cwd=clone).returncode == 0
    csv = clone / "data" / "credit_data.csv"
    frame = pd.read_csv(csv)
    frame.loc[:99, "Age"] = None
    frame.loc[100:104, "Amount"] = 999_999
    csv.chmod(0o644)
    frame.to_csv(csv, index=False)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=clone, check=True)
    done = run_cli("run", cwd=clone)
    assert done.returncode == 1, done.stderr
    assert "expect_column_values_to_not_be_null" in done.stdout + done.stderr
    report = json.loads((latest(clone) / "data-report.json").read_text())
    failed = {(c["name"], c["column"]) for c in report["checks"] if not c["success"]}
    assert ("expect_column_values_to_not_be_null", "Age") in failed
    assert ("expect_column_values_to_be_between", "Amount") in failed
    amount = next(c for c in report["checks"] if c["column"] == "Amount" and not c["success"])
    assert 999_999 in amount["sample"]
    assert not (latest(clone) / "model.skops").exists()
    assert not (clone / ".ci-ml" / "registry" / "versions").exists() or not list(
        (clone / ".ci-ml" / "registry" / "versions").iterdir()
    )


def test_gate_above_reach_blocks_naming_the_metric(clone: Path) -> None:
    config = clone / "ci-ml.yaml"
    config.write_text(config.read_text().replace("min: 0.78", "min: 0.99"))
    done = run_cli("run", cwd=clone)
    assert done.returncode == 1
    assert "roc_auc" in done.stderr
    gate_report = json.loads((latest(clone) / "gate-report.json").read_text())
    assert gate_report["verdict"] == "fail"
    failed = [g for g in gate_report["gates"] if g["verdict"] == "fail"]
    assert [g["metric"] for g in failed] == ["roc_auc"]
    lines = config.read_text().splitlines()
    assert "metric: roc_auc" in lines[failed[0]["location"]["line"] - 1]


def test_remote_without_the_data_is_a_service_error(clone: Path) -> None:
    shutil.rmtree(clone / "dvc-storage" / "files")
    done = run_cli("run", cwd=clone)
    assert done.returncode == 3
    assert "dvc pull" in done.stderr and "remote" in done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("· ")]
    assert len(errors) == 1 and errors[0].startswith("ci-ml: "), done.stderr
    assert "Traceback" not in done.stderr
