"""Multiclass through the library on generated data: K = 20 classes, a class production never
saw, positive_class, the data checks, the report's readability, parity, the smoke test.

The end-to-end runs on the shipped example are in ``tests/test_multiclass.py`` (slow).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from ci_ml import api
from ci_ml.deploy.smoke import check_predictions
from ci_ml.errors import ConfigError, DataError, ServiceError
from ci_ml.export.convert import export_onnx
from ci_ml.export.parity import parity, parity_reason
from ci_ml.gates import check_gate_metrics
from ci_ml.project import load_candidate, load_data, open_project
from ci_ml.records import Evaluation, GateReport, SmokeSample, read_record
from ci_ml.registry import open_registry
from ci_ml.training import build_pipeline

LOGISTIC = "sklearn.linear_model.LogisticRegression"


def classes_frame(k: int, n: int, seed: int = 0) -> pd.DataFrame:
    x, y = make_classification(
        n_samples=n,
        n_features=12,
        n_informative=10,
        n_redundant=0,
        n_classes=k,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=seed,
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["job"] = [f"class-{v:02d}" for v in y]
    return frame


def write_project(root: Path, frame: pd.DataFrame, **config: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "jobs.csv", index=False)
    body = {
        "data": {"path": "jobs.csv", "target": "job", "task": "classification"},
        "model": {"estimator": LOGISTIC, "params": {"C": 1.0, "max_iter": 500}},
        "metrics": ["accuracy", "f1_macro", "log_loss", "roc_auc_ovr"],
        "gates": [{"metric": "f1_macro", "change": {"margin": -0.02}}],
        "comparison": {"resamples": 500},
        "registry": {"url": "registry"},
        **config,
    }
    path = root / "ci-ml.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def run(config: Path, name: str) -> tuple[dict[str, Any], Path]:
    project = open_project(config)
    run_dir = project.root / "runs" / name
    run_dir.mkdir(parents=True)
    return api.run(project, run_dir), run_dir


def promote_latest(config: Path) -> None:
    registry = open_registry("registry", root=config.parent)
    newest = registry.list_versions()[-1]
    current = registry.get_production()
    registry.promote(newest.version, current.version if current else None, by="tests")


def set_model(config: Path, **params: Any) -> None:
    body = yaml.safe_load(config.read_text())
    body["model"]["params"] = params
    config.write_text(yaml.safe_dump(body, sort_keys=False))


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """K = 20: a weak production model (strong regularisation) and a better candidate."""
    config = write_project(tmp_path_factory.mktemp("k20"), classes_frame(20, 8000))
    set_model(config, C=0.0005, max_iter=500)
    results, _ = run(config, "weak")
    assert results["gate"].verdict == "pass"
    promote_latest(config)
    set_model(config, C=1.0, max_iter=500)
    results, run_dir = run(config, "better")
    assert results["gate"].verdict == "pass", results["gate"].reasons
    return config, run_dir


def outside_details(markdown: str) -> str:
    return re.sub(r"<details>.*?</details>", "", markdown, flags=re.S)


def test_twenty_classes_report_stays_readable(twenty: tuple[Path, Path]) -> None:
    _, run_dir = twenty
    report = (run_dir / "report.md").read_text()
    assert report.startswith("## ✅ ci-ml verdict: **PASS**")
    shown = outside_details(report)
    assert "### Per class, worst first (20 classes)" in shown
    per_class = shown.split("### Per class")[1].split("###")[0]
    assert sum(line.startswith("| class-") for line in per_class.splitlines()) == 5
    assert "<summary>The other 15 classes</summary>" in report
    assert "<summary>The whole matrix (candidate, Δ vs production)</summary>" in report
    assert "true ↓ predicted →" not in shown  # the 20 × 20 matrix is folded
    # counted as a reader sees it: blank lines (and those the folds leave) take no space
    visible = [line for line in shown.splitlines() if line.strip()]
    assert len(visible) < 80, "the open part of the comment must stay short"


def test_twenty_classes_per_class_intervals_are_bonferroni_corrected(
    twenty: tuple[Path, Path],
) -> None:
    _, run_dir = twenty
    evaluation = read_record(run_dir / "evaluation.json", Evaluation)
    assert evaluation.per_class is not None and len(evaluation.per_class) == 20
    comparisons = [c for e in evaluation.per_class for c in e.comparisons.values()]
    assert {round(c.confidence, 6) for c in comparisons} == {round(1 - 0.05 / 20, 6)}
    assert evaluation.comparisons["f1_macro"].ci_low > 0  # the better model is better
    assert "20×20×20" in evaluation.comparisons["f1_macro"].method


def test_a_class_production_never_saw_is_judged_by_the_unusable_baseline_policy(
    tmp_path: Path,
) -> None:
    frame = classes_frame(4, 3000, seed=3)
    config = write_project(tmp_path / "p", frame[frame["job"] != "class-03"])
    results, _ = run(config, "three")
    assert results["gate"].verdict == "pass"
    promote_latest(config)
    (tmp_path / "p" / "jobs.csv").write_text(frame.to_csv(index=False))
    results, run_dir = run(config, "four")
    record = read_record(run_dir / "gate-report.json", GateReport)
    assert record.verdict == "fail"  # comparison.unusable_baseline defaults to fail
    change = next(g for g in record.gates if g.name == "f1_macro change")
    assert "class(es) 'class-03' that production never saw" in change.reason
    assert "policy: fail" in change.reason


def test_positive_class_is_for_binary_targets_only(tmp_path: Path) -> None:
    config = write_project(
        tmp_path,
        classes_frame(3, 600),
        data={"path": "jobs.csv", "target": "job", "positive_class": "class-01"},
    )
    project = open_project(config)
    run_dir = project.root / "run"
    run_dir.mkdir()
    api.write_pull(project, run_dir)
    with pytest.raises(DataError, match=r"positive_class 'class-01' is for a binary target"):
        load_data(project, run_dir)


def test_a_class_with_too_few_holdout_rows_fails_the_data_gate(tmp_path: Path) -> None:
    frame = classes_frame(3, 900)
    rare = frame[frame["job"] == "class-02"].head(20)  # 4 holdout rows at fraction 0.2
    frame = pd.concat([frame[frame["job"] != "class-02"], rare], ignore_index=True)
    config = write_project(tmp_path, frame)
    results, _ = run(config, "rare")
    assert results["gate"].verdict == "fail"
    check = next(c for c in results["validate"].checks if c.name == "holdout_class_counts")
    assert not check.success and check.sample == ["class-02: 4"]
    assert "train" not in results  # the data gate stops the run before training


def test_metric_names_are_checked_against_the_classes(tmp_path: Path) -> None:
    config = open_project(write_project(tmp_path, classes_frame(3, 300))).config
    check_gate_metrics(config, "classification")  # before the data: multiclass names are fine
    classes = ["class-00", "class-01", "class-02"]
    check_gate_metrics(config, "classification", classes)
    plain_f1 = config.model_copy(update={"metrics": ["f1"]})
    with pytest.raises(ConfigError, match=r"metrics.0': Metric 'f1' needs an average"):
        check_gate_metrics(plain_f1, "classification", classes)
    unknown = config.model_copy(update={"metrics": ["recall[class-09]"]})
    with pytest.raises(ConfigError, match=r"Unknown class 'class-09'.*classes: class-00"):
        check_gate_metrics(unknown, "classification", classes)
    with pytest.raises(ConfigError, match=r"unknown classification metric 'f1_macro'"):
        check_gate_metrics(config, "classification", ["bad", "good"])


def test_the_smoke_test_compares_every_class_probability(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = SmokeSample(
        task="classification",
        records=[{"x": 1}],
        expected=[0.7],
        classes=["a", "b", "c"],
        expected_probabilities=[[0.7, 0.2, 0.1]],
    )

    class Answer:
        ok, status_code = True, 200

        def __init__(self, probabilities: dict[str, float]) -> None:
            self.body = {
                "predictions": [{"label": "a", "probability": 0.7, "probabilities": probabilities}]
            }

        def json(self) -> Any:
            return self.body

    import requests

    monkeypatch.setattr(requests, "post", lambda *a, **k: Answer({"a": 0.7, "b": 0.2, "c": 0.1}))
    check_predictions("http://service", sample, 1e-6)
    monkeypatch.setattr(requests, "post", lambda *a, **k: Answer({"a": 0.7, "b": 0.1, "c": 0.2}))
    with pytest.raises(ServiceError, match=r"row 0: probability of class 'b' 0.1 differs"):
        check_predictions("http://service", sample, 1e-6)
    monkeypatch.setattr(requests, "post", lambda *a, **k: Answer({"a": 0.7, "not-b": 0.3}))
    with pytest.raises(ServiceError, match=r"not the candidate's classes"):
        check_predictions("http://service", sample, 1e-6)


def test_onnx_parity_judges_every_class(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    config = write_project(tmp_path, classes_frame(5, 1500), export={"format": "onnx"})
    results, _ = run(config, "export")
    record = results["export"]
    assert record.success, record.rule
    assert record.compared == "probability of each of the 5 classes"
    assert record.max_abs_diff is not None and record.max_abs_diff <= record.tolerance

    # the export of another model: its class probabilities differ, and rows change class
    project = open_project(config)
    run_dir = project.root / "runs" / "export"
    model, card = load_candidate(project, run_dir)
    dataset, _ = load_data(project, run_dir)
    schema = [f.model_dump() for f in card.feature_schema]
    other = build_pipeline(project.config.model.model_copy(update={"params": {"C": 0.001}}), schema)
    other.fit(dataset.x("train"), dataset.y("train"))
    path = export_onnx(other, schema, "classification", tmp_path / "other.onnx", "float64")
    found = parity(model, path, dataset.x("holdout"), "classification")
    assert not found["success"]
    assert found["rows_over_tolerance"] > 0 and found["class_flips"] > 0
    assert "change class" in parity_reason(found)


def test_a_class_only_the_holdout_file_has_fails_the_data_gate_naming_it(tmp_path: Path) -> None:
    frame = classes_frame(4, 2000, seed=5)
    train, holdout = frame.iloc[:1500], frame.iloc[1500:]
    config = write_project(tmp_path, train[train["job"] != "class-03"])
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    body = yaml.safe_load(config.read_text())
    body["data"]["holdout"] = {"file": "holdout.csv"}
    config.write_text(yaml.safe_dump(body, sort_keys=False))
    results, _ = run(config, "new-class")
    check = next(c for c in results["validate"].checks if c.name == "train_has_every_class")
    assert not check.success and check.sample == ["class-03"]
    assert results["gate"].verdict == "fail" and "train" not in results
