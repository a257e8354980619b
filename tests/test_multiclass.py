"""Multiclass end to end on the example that ships in the repo (``examples/hpc/``: 4,331 HPC
jobs, classes VF / F / M / L), through the real CLI: run, gate against production, report,
ONNX export with parity on every class, serving, the deploy smoke test and the monitor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from ci_ml.monitor import check as monitor
from ci_ml.monitor.sources import Recent, load_production
from ci_ml.project import open_project
from ci_ml.records import (
    Evaluation,
    GateReport,
    ModelCard,
    ParityRecord,
    SmokeSample,
    read_record,
)
from ci_ml.registry import open_registry
from ci_ml.serve.model import load_version
from tests.conftest import run_cli, serving
from tests.hpc import HPC_CONFIG, hpc_project
from tests.test_shadow import live_shadows, shadow_report

pytestmark = pytest.mark.slow
TOKEN = "multiclass-admin-token"

CLASSES = ["F", "L", "M", "VF"]  # sorted, as scikit-learn orders classes_
WEAK = {"max_iter": 3, "learning_rate": 0.05, "max_leaf_nodes": 3}  # barely past the prior


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hpc example as a fresh repository, its data pulled once."""
    root = hpc_project(tmp_path_factory.mktemp("multiclass"))
    done = run_cli("pull", "--config", str(HPC_CONFIG), cwd=root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def repo(pulled: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(pulled, dest, symlinks=True)
    return dest


def config_path(repo: Path) -> Path:
    return repo / HPC_CONFIG


def edit(repo: Path, change: Any) -> None:
    path = config_path(repo)
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def run(repo: Path, name: str, *extra: str) -> tuple[Any, Path]:
    run_dir = repo / "examples/hpc/.ci-ml/runs" / name
    done = run_cli("run", "--config", str(HPC_CONFIG), "--run-dir", str(run_dir), *extra, cwd=repo)
    return done, run_dir


def promote(repo: Path, run_dir: Path) -> None:
    registry = open_registry(".ci-ml/registry", root=repo / "examples/hpc")
    digest = read_record(run_dir / "model.json", ModelCard).digest
    current = registry.get_production()
    registry.promote(registry.get(digest).version, current.version if current else None, by="tests")


def set_params(params: dict[str, Any]) -> Any:
    def change(config: dict[str, Any]) -> None:
        config["model"]["params"] = params

    return change


def no_speed_gates(config: dict[str, Any]) -> None:
    # latency and churn are not what these tests judge (and churn of a weak model is large)
    config["gates"] = [g for g in config["gates"] if g["metric"] not in ("latency_p95_ms", "churn")]


def test_first_model_records_every_class_and_same_config_passes(repo: Path) -> None:
    edit(repo, no_speed_gates)
    done, first = run(repo, "first")
    assert done.returncode == 0, done.stderr
    card = read_record(first / "model.json", ModelCard)
    evaluation = read_record(first / "evaluation.json", Evaluation)
    assert card.classes == CLASSES and card.positive_class is None
    assert evaluation.classes == CLASSES
    assert evaluation.per_class is not None and [c.label for c in evaluation.per_class] == CLASSES
    assert evaluation.confusion is not None
    matrix = np.array(evaluation.confusion.candidate)
    assert matrix.sum() == evaluation.rows.holdout
    accuracy = np.trace(matrix) / matrix.sum()
    assert evaluation.candidate.metrics["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert {"f1_macro", "roc_auc_ovr", "recall[L]", "log_loss"} <= set(evaluation.candidate.metrics)

    promote(repo, first)
    done, second = run(repo, "second")
    assert done.returncode == 0, done.stderr
    evaluation = read_record(second / "evaluation.json", Evaluation)
    f1 = evaluation.comparisons["f1_macro"]
    assert (f1.delta, f1.ci_low, f1.ci_high) == (0.0, 0.0, 0.0)  # the same model again
    assert "4×4×4" in f1.method
    report = (second / "report.md").read_text()
    assert report.startswith("## ✅ ci-ml verdict: **PASS**")
    assert "### Per class, worst first (4 classes)" in report
    assert "No cell changed" in report


def test_a_clearly_worse_model_fails_naming_the_metric(repo: Path) -> None:
    edit(repo, no_speed_gates)
    done, first = run(repo, "production")
    assert done.returncode == 0, done.stderr
    promote(repo, first)
    edit(repo, set_params(WEAK))
    done, worse = run(repo, "worse")
    assert done.returncode == 1, done.stdout + done.stderr
    record = read_record(worse / "gate-report.json", GateReport)
    failed = {g.name: g for g in record.gates if g.verdict == "fail"}
    assert "f1_macro change" in failed, failed
    assert failed["f1_macro change"].value.ci_high < -0.02  # wholly below the margin
    assert any("f1_macro" in reason for reason in record.reasons)
    report = (worse / "report.md").read_text()
    assert report.startswith("## ❌ ci-ml verdict: **FAIL**")
    assert "Changed cells, largest change first" in report


def test_a_clearly_better_model_passes_on_its_interval(repo: Path) -> None:
    def weak_production(config: dict[str, Any]) -> None:
        no_speed_gates(config)
        config["gates"] = [g for g in config["gates"] if "min" not in g and "max" not in g]
        config["model"]["params"] = WEAK

    original = yaml.safe_load(config_path(repo).read_text())
    edit(repo, weak_production)
    done, weak = run(repo, "weak")
    assert done.returncode == 0, done.stderr
    promote(repo, weak)
    config_path(repo).write_text(yaml.safe_dump(original, sort_keys=False))
    edit(repo, no_speed_gates)
    done, better = run(repo, "better")
    assert done.returncode == 0, done.stdout + done.stderr
    evaluation = read_record(better / "evaluation.json", Evaluation)
    f1 = evaluation.comparisons["f1_macro"]
    assert f1.ci_low > 0.05, f1
    per_class = {c.label: c for c in evaluation.per_class or []}
    assert per_class["L"].production is not None
    assert per_class["L"].candidate.recall > per_class["L"].production.recall
    assert evaluation.comparisons["log_loss"].ci_high < 0


def test_onnx_export_matches_every_class_probability_and_serves_alike(repo: Path) -> None:
    def with_export(config: dict[str, Any]) -> None:
        no_speed_gates(config)
        config["export"] = {"format": "onnx"}

    edit(repo, with_export)
    done, run_dir = run(repo, "export")
    assert done.returncode == 0, done.stderr
    parity = read_record(run_dir / "parity.json", ParityRecord)
    assert parity.success and parity.class_flips == 0
    assert parity.compared == "probability of each of the 4 classes"
    assert parity.max_abs_diff is not None and parity.max_abs_diff <= parity.tolerance
    gate = read_record(run_dir / "gate-report.json", GateReport)
    assert any(g.kind == "parity" and g.verdict == "pass" for g in gate.gates)

    registry = open_registry(".ci-ml/registry", root=repo / "examples/hpc")
    version = registry.get(read_record(run_dir / "model.json", ModelCard).digest)
    loaded = load_version(registry, version, [])
    assert loaded.runtime == "onnx"
    holdout = pd.read_csv(repo / "examples/hpc/data/hpc_data.csv").drop(columns=["class"])
    rows = holdout.head(20).to_dict(orient="records")
    rows[1]["protocol"] = "Z"  # a protocol the model never saw
    rows[2]["num_pending"] = None  # a missing value
    frame = pd.DataFrame(rows)
    batch = loaded.predict(frame)
    alone = [loaded.predict(frame.iloc[[i]])[0] for i in range(len(frame))]
    assert [a["label"] for a in alone] == [b["label"] for b in batch]
    for one, many in zip(alone, batch, strict=True):
        assert sorted(one["probabilities"]) == CLASSES
        assert one["probabilities"] == pytest.approx(many["probabilities"], abs=1e-9)
        assert sum(one["probabilities"].values()) == pytest.approx(1, abs=1e-6)
        assert one["probability"] == max(one["probabilities"].values())


def test_the_monitor_judges_the_class_mix_and_decay(repo: Path, tmp_path: Path) -> None:
    edit(repo, no_speed_gates)
    done, run_dir = run(repo, "monitored")
    assert done.returncode == 0, done.stderr
    promote(repo, run_dir)
    project = open_project(config_path(repo))
    production = load_production(project.registry(), tmp_path / "monitor")
    data = pd.read_csv(repo / "examples/hpc/data/hpc_data.csv")
    settings = monitor.MonitorSettings()

    same = monitor.check(
        production, Recent(data.sample(1500, random_state=1), {"path": "t"}), settings
    )
    assert same.status == "fine", same.reasons
    assert [p.feature for p in same.predictions] == ["predicted class", "P(predicted class)"]
    assert {d.metric for d in same.decay} >= {"accuracy", "f1_macro", "recall[L]"}

    wrong = data.sample(1500, random_state=2).copy()
    wrong["class"] = wrong["class"].map({"VF": "L", "F": "M", "M": "VF", "L": "F"})
    stale = monitor.check(production, Recent(wrong, {"path": "t"}), settings)
    assert stale.status == "stale"
    assert {d.metric: d.verdict for d in stale.decay}["f1_macro"] == "decayed"

    long_jobs = data[data["class"].isin(["L", "M"])]
    mix = pd.concat([long_jobs, long_jobs, data.sample(300, random_state=3)]).drop(columns="class")
    drifting = monitor.check(production, Recent(mix, {"path": "t"}), settings)
    mix_entry = next(p for p in drifting.predictions if p.feature == "predicted class")
    assert mix_entry.drifted
    json.dumps(drifting.model_dump(mode="json"), allow_nan=False)


def test_deploy_smoke_tests_every_class_probability_over_http(repo: Path, tmp_path: Path) -> None:
    edit(repo, no_speed_gates)
    done, run_dir = run(repo, "deployed")
    assert done.returncode == 0, done.stderr
    project_root = repo / "examples/hpc"
    registry = project_root / ".ci-ml/registry"
    with serving(registry, repo, tmp_path / "serve.log", TOKEN) as url:

        def with_deploy(config: dict[str, Any]) -> None:
            config["deploy"] = {
                "targets": [{"type": "http", "url": f"{url}/admin/reload"}],
                "service_url": url,
                "timeout": 20,
            }

        edit(repo, with_deploy)
        done = run_cli(
            "deploy",
            "--config",
            str(HPC_CONFIG),
            "--run-dir",
            str(run_dir),
            cwd=repo,
            env={"CI_ML_ADMIN_TOKEN": TOKEN},
        )
        assert done.returncode == 0, done.stderr
        assert "/predict matches the candidate" in done.stderr
        sample = read_record(run_dir / "smoke-sample.json", SmokeSample)
        assert sample.classes == CLASSES and sample.expected_probabilities is not None
        answer = requests.post(f"{url}/predict", json={"records": sample.records[:3]}, timeout=10)
        assert answer.ok, answer.text
        for got, wanted in zip(
            answer.json()["predictions"], sample.expected_probabilities, strict=False
        ):
            assert list(got["probabilities"]) == CLASSES
            assert list(got["probabilities"].values()) == pytest.approx(wanted, abs=1e-6)
            assert got["label"] == CLASSES[int(np.argmax(wanted))]


def test_a_shadow_report_judges_every_class_on_live_rows(repo: Path, tmp_path: Path) -> None:
    """The shadow flow of tests/test_shadow.py on four classes: the holdout sent as live
    traffic to production with a shadow, outcomes joined by request id."""

    def no_latency(config: dict[str, Any]) -> None:  # churn is judged, latency is not here
        config["gates"] = [g for g in config["gates"] if g["metric"] != "latency_p95_ms"]

    edit(repo, no_latency)
    root = repo / "examples/hpc"
    params = yaml.safe_load(config_path(repo).read_text())["model"]["params"]
    live = live_shadows(root, params, WEAK)
    versions, rows = live["versions"], live["rows"]
    registry = open_project(config_path(repo)).registry()

    done = shadow_report(root, "same", versions["same"], "shadow-same")
    assert done.returncode == 0, done.stderr
    evaluation = read_record(root / ".ci-ml/runs/shadow-same/evaluation.json", Evaluation)
    assert evaluation.classes == CLASSES
    f1 = evaluation.comparisons["f1_macro"]
    assert (f1.delta, f1.n) == (0.0, rows)
    assert evaluation.per_class is not None and [c.label for c in evaluation.per_class] == CLASSES
    assert evaluation.confusion is not None
    assert np.array(evaluation.confusion.candidate).sum() == rows
    worse = shadow_report(root, "worse", versions["worse"], "shadow-worse")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    gate = read_record(root / ".ci-ml/runs/shadow-worse/gate-report.json", GateReport)
    failed = {g.name for g in gate.gates if g.verdict == "fail"}
    assert "f1_macro change" in failed, failed
    deployed = run_cli("deploy", "--run-dir", ".ci-ml/runs/shadow-same", cwd=root)
    assert deployed.returncode == 0, deployed.stderr
    assert registry.get_production().version == versions["same"]
