"""`ci-ml shadow report` (ci_ml/deploy/shadow.py, ci_ml/monitor/pairs.py): the example project's
production model served with a shadow on loopback, the holdout rows sent as live traffic, their
outcomes joined from the holdout by request id; the decision record deployed with `ci-ml deploy`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from ci_ml import api
from ci_ml.deploy.shadow import ShadowSources, report
from ci_ml.project import load_data, open_project
from ci_ml.quality import jsonable
from ci_ml.registry import open_registry
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.server import serve_in_thread
from ci_ml.serve.service import RequestLogSettings, ServeSettings
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # three example runs (about two minutes), as test_deploy.py
CHUNK = 20


def _train(dest: Path, name: str, params: dict[str, Any], seed: int = 0) -> str:
    """Run the pipeline on ``dest`` with these model params; register the model (even a
    failing one: a team may shadow any registered version). Returns its version."""
    path = dest / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"]["params"], config["model"]["seed"] = params, seed
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = open_project(path)
    run_dir = project.runs_dir / name
    run_dir.mkdir(parents=True)
    results = api.run(project, run_dir)
    if "register" in results:
        return str(results["register"].version)
    files = {n: run_dir / n for n in ("model.skops", "model.json", "reference.parquet")}
    return str(project.registry().register(files, {}, by="tests").version)


@pytest.fixture(scope="module")
def trained(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Production, a same-config shadow (another seed) and a clearly worse one, with the
    request log of the holdout served by production with each shadow, and the outcomes."""
    dest = tmp_path_factory.mktemp("shadow") / "project"
    shutil.copytree(pulled_example, dest, symlinks=True)
    params = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}
    return {"root": dest, **live_shadows(dest, params, {**params, "max_iter": 3})}


def live_shadows(root: Path, params: dict[str, Any], weak: dict[str, Any]) -> dict[str, Any]:
    """Production, a same-config shadow (another seed) and a clearly worse one (``weak``)
    trained on the project at ``root``; the holdout served by production with each shadow
    (logs-same, logs-worse) and its outcomes in labels.csv. The versions and the row count."""
    versions = {
        "production": _train(root, "production", params),
        "same": _train(root, "same", params, seed=1),
        "worse": _train(root, "worse", weak),
    }
    project = open_project(root / "ci-ml.yaml")
    registry = project.registry()
    registry.promote(versions["production"], None, by="tests")
    dataset, _ = load_data(project, project.runs_dir / "production")
    records = jsonable(dataset.x("holdout").to_dict(orient="records"))
    for shadow in ("same", "worse"):
        _traffic(registry, versions[shadow], records, root / f"logs-{shadow}", shadow)
    labels = pd.DataFrame(
        {
            "request_id": [f"{i // CHUNK}" for i in range(len(records))],
            "row_index": [i % CHUNK for i in range(len(records))],
            dataset.target: dataset.y("holdout").to_numpy(),
        }
    )
    labels.to_csv(root / "labels.csv", index=False)
    return {"versions": versions, "rows": len(records)}


def _traffic(registry: Any, shadow: str, records: list[Any], logs: Path, tag: str) -> None:
    holder = ModelHolder(registry)
    holder.load_shadow(shadow)
    settings = ServeSettings(
        port=0, request_log=RequestLogSettings(logs, sample=1.0), shadow_sample=1.0
    )
    with serve_in_thread(holder, settings) as url, requests.Session() as session:
        for start in range(0, len(records), CHUNK):
            body = {"records": records[start : start + CHUNK]}
            rid = {"X-Request-ID": f"{start // CHUNK}"}
            answer = session.post(f"{url}/predict", json=body, headers=rid, timeout=30)
            assert answer.status_code == 200, answer.text


@pytest.fixture
def project(trained: dict[str, Any], tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(trained["root"], dest, symlinks=True)
    return dest


def shadow_report(project: Path, shadow: str, version: str, run: str) -> Any:
    return run_cli(
        "shadow",
        "report",
        "--requests",
        f"logs-{shadow}",
        "--labels",
        "labels.csv",
        "--shadow-version",
        version,
        "--run-dir",
        f".ci-ml/runs/{run}",
        cwd=project,
    )


def test_a_same_config_shadow_passes_and_deploys(project: Path, trained: dict[str, Any]) -> None:
    versions = trained["versions"]
    done = shadow_report(project, "same", versions["same"], "shadow-same")
    assert done.returncode == 0, done.stderr
    run_dir = project / ".ci-ml/runs/shadow-same"
    gate = json.loads((run_dir / "gate-report.json").read_text())
    assert gate["verdict"] == "pass"
    registry = open_registry(str(project / ".ci-ml/registry"))
    assert gate["candidate"]["digest"] == registry.get(versions["same"]).digest
    assert gate["baseline"]["version"] == versions["production"]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["baseline"]["rows_compared"] == trained["rows"]
    assert evaluation["candidate"]["operational"]["churn"] == 0.0
    assert evaluation["candidate"]["operational"]["latency_p95_ms"] > 0
    auc = evaluation["comparisons"]["roc_auc"]
    assert auc["delta"] == 0.0 and auc["n"] == trained["rows"]
    text = (run_dir / "report.md").read_text()
    assert text.startswith(f"### Shadow deployment: {versions['same']}")
    assert "roc_auc" in text
    deployed = run_cli("deploy", "--run-dir", ".ci-ml/runs/shadow-same", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert registry.get_production().version == versions["same"]


def test_a_clearly_worse_shadow_fails_and_its_edited_record_is_refused(
    project: Path, trained: dict[str, Any]
) -> None:
    versions = trained["versions"]
    done = shadow_report(project, "worse", versions["worse"], "shadow-worse")
    assert done.returncode == 1, done.stderr
    assert "blocked" in done.stderr
    path = project / ".ci-ml/runs/shadow-worse/gate-report.json"
    gate = json.loads(path.read_text())
    assert gate["verdict"] == "fail"
    failed = {g["name"] for g in gate["gates"] if g["verdict"] == "fail"}
    assert "roc_auc change" in failed
    refused = run_cli("deploy", "--run-dir", ".ci-ml/runs/shadow-worse", cwd=project)
    assert refused.returncode == 1 and "only a passing candidate deploys" in refused.stderr
    gate["verdict"], gate["reasons"] = "pass", []
    for entry in gate["gates"]:
        entry["verdict"] = "pass"
    path.write_text(json.dumps(gate))
    edited = run_cli("deploy", "--run-dir", ".ci-ml/runs/shadow-worse", cwd=project)
    assert edited.returncode == 2, edited.stderr
    assert "judged again" in edited.stderr
    registry = open_registry(str(project / ".ci-ml/registry"))
    assert registry.get_production().version == versions["production"]


def test_too_few_labelled_rows_never_pass(project: Path, trained: dict[str, Any]) -> None:
    labels = pd.read_csv(project / "labels.csv").head(40)
    labels.to_csv(project / "few.csv", index=False)
    found = open_project(project / "ci-ml.yaml")
    run_dir = project / ".ci-ml/runs/few"
    run_dir.mkdir(parents=True)
    sources = ShadowSources(Path("logs-same"), Path("few.csv"), trained["versions"]["same"])
    record = report(found, run_dir, sources)
    assert record.verdict == "fail"  # comparison.unusable_baseline: fail
    assert any("only 40 labelled live rows" in r for r in record.reasons)


def test_rows_of_another_production_or_no_shadow_are_one_sentence(
    project: Path, trained: dict[str, Any]
) -> None:
    versions = trained["versions"]
    wrong = shadow_report(project, "same", versions["worse"], "nothing")
    assert wrong.returncode == 2
    assert f"no row scored by shadow {versions['worse']}" in wrong.stderr


def test_a_regression_shadow_is_judged_on_its_errors(pulled_example: Path, tmp_path: Path) -> None:
    """The same flow with a numeric target (the example's Price, from the other columns):
    the logged answers are values, the outcomes numbers, the gates on rmse."""
    dest = tmp_path / "project"
    shutil.copytree(pulled_example, dest, symlinks=True)
    path = dest / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["data"] = {**config["data"], "target": "Price", "task": "regression"}
    del config["data"]["positive_class"]
    config["model"]["estimator"] = "sklearn.ensemble.HistGradientBoostingRegressor"
    config["metrics"] = ["rmse", "mae", "r2"]
    config["gates"] = [
        {"metric": "rmse", "change": {"margin": -20.0, "inconclusive": "fail"}},
        {"metric": "r2", "min": 0.3},
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    params = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}
    live = live_shadows(dest, params, {**params, "max_iter": 3})
    versions, rows = live["versions"], live["rows"]
    registry = open_project(path).registry()

    done = shadow_report(dest, "same", versions["same"], "shadow-same")
    assert done.returncode == 0, done.stderr
    evaluation = json.loads((dest / ".ci-ml/runs/shadow-same/evaluation.json").read_text())
    rmse = evaluation["comparisons"]["rmse"]
    assert rmse["delta"] == 0.0 and rmse["n"] == rows
    assert evaluation["candidate"]["metrics"]["r2"] > 0.3
    worse = shadow_report(dest, "worse", versions["worse"], "shadow-worse")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    gate = json.loads((dest / ".ci-ml/runs/shadow-worse/gate-report.json").read_text())
    failed = {g["name"] for g in gate["gates"] if g["verdict"] == "fail"}
    assert "rmse change" in failed, failed
    deployed = run_cli("deploy", "--run-dir", ".ci-ml/runs/shadow-same", cwd=dest)
    assert deployed.returncode == 0, deployed.stderr
    assert registry.get_production().version == versions["same"]
