"""Candidate vs production on the example data: the verdicts a team relies on.

Each test promotes a real production model into the registry, trains a real
candidate and checks the verdict and its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from ci_ml import api, rundir
from ci_ml.project import open_project
from ci_ml.registry import open_registry
from tests.conftest import as_files

pytestmark = pytest.mark.slow

WEAK = {
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 3, "max_depth": 1},
}
GOOD = {
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15},
}
FOREST = {
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 60, "min_samples_leaf": 5},
}


def configure(
    project: Path, model: dict[str, Any], gates: list[dict[str, Any]], **extra: Any
) -> None:
    path = project / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["model"] = {**model, "seed": extra.pop("seed", 0)}
    config["gates"] = gates
    config.update(extra)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def run(project: Path) -> dict[str, Any]:
    """Every step of a new run; the records as their files hold them."""
    proj = open_project(project / "ci-ml.yaml")
    return as_files(api.run(proj, rundir.new_run_dir(proj.runs_dir)))


def promote_latest(project: Path) -> str:
    registry = open_registry(".ci-ml/registry", root=project)
    newest = registry.list_versions()[0]
    current = registry.get_production()
    registry.promote(newest.version, current.version if current else None, by="test")
    return newest.version


def establish(project: Path, model: dict[str, Any], **extra: Any) -> str:
    configure(project, model, [{"metric": "roc_auc", "min": 0.5}], **extra)
    assert run(project)["gate"]["verdict"] == "pass"
    return promote_latest(project)


def change_gate(results: dict[str, Any], metric: str = "roc_auc") -> dict[str, Any]:
    return next(g for g in results["gate"]["gates"] if g["name"] == f"{metric} change")


def test_clearly_worse_candidate_is_blocked(project: Path) -> None:
    production = establish(project, GOOD)
    configure(project, WEAK, [{"metric": "roc_auc", "change": {"margin": -0.01}}])
    results = run(project)
    gate = change_gate(results)
    assert results["gate"]["verdict"] == "fail"
    assert gate["verdict"] == "fail"
    assert "wholly on the wrong side" in gate["reason"]
    assert gate["value"]["ci_high"] < -0.01
    assert gate["value"]["method"].startswith("DeLong")
    assert results["gate"]["baseline"]["version"] == production
    assert "register" not in results
    # the report says what changed, from production's registry record
    changed = results["evaluate"]["changes"]
    assert changed["production"] == production and changed["params_source"] == "config"
    assert {d["key"]: (d["production"], d["candidate"]) for d in changed["params"]["changed"]} == {
        "learning_rate": (0.05, None),
        "max_depth": (None, 1),
        "max_iter": (200, 3),
        "max_leaf_nodes": (15, None),
    }
    assert changed["data_version"] == {"problem": None, "changed": [], "unchanged": 1}
    assert f"### What changed since production {production}" in results["report"]
    assert "| max_iter | 200 | 3 |" in results["report"]


def test_clearly_better_candidate_passes_a_required_gain(project: Path) -> None:
    establish(project, WEAK)
    configure(
        project,
        GOOD,
        [
            {"metric": "roc_auc", "change": {"margin": 0.02}},
            {"metric": "accuracy", "change": {"margin": 0.0}},
        ],
    )
    results = run(project)
    assert results["gate"]["verdict"] == "pass", results["gate"]["reasons"]
    gate = change_gate(results)
    assert gate["value"]["ci_low"] >= 0.02
    assert "clears the margin" in gate["reason"]


@pytest.mark.parametrize(("policy", "verdict"), [("approve", "inconclusive"), ("fail", "fail")])
def test_retrain_with_same_config_follows_the_inconclusive_policy(
    project: Path, policy: str, verdict: str
) -> None:
    establish(project, FOREST, seed=0)
    gates = [{"metric": "roc_auc", "change": {"margin": 0.0, "inconclusive": policy}}]
    configure(project, FOREST, gates, seed=1)
    results = run(project)
    gate = change_gate(results)
    assert gate["value"]["ci_low"] < 0.0 < gate["value"]["ci_high"]
    assert gate["verdict"] == verdict
    assert results["gate"]["verdict"] == verdict
    assert "straddles the margin" in gate["reason"]
    # an inconclusive candidate is registered (deployable with approval); a failed one is not
    assert ("register" in results) == (verdict == "inconclusive")


def test_identical_retrain_passes_a_no_regression_gate(project: Path) -> None:
    production = establish(project, GOOD)
    configure(project, GOOD, [{"metric": "roc_auc", "change": {"margin": 0.0}}])
    results = run(project)
    gate = change_gate(results)
    assert gate["verdict"] == "pass"
    assert gate["value"]["delta"] == 0.0
    # the same data, config and seed make the same file: the same registry version
    assert results["register"].version == production
    assert "Nothing changed: the estimator, the trainer, the data version" in results["report"]


def test_production_that_cannot_read_the_new_schema_is_a_clear_verdict(project: Path) -> None:
    establish(project, GOOD)
    frame = pd.read_csv(project / "data/credit_data.csv").drop(columns=["Price"])
    frame.to_csv(project / "data/credit_data.csv", index=False)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=project, check=True)
    gates = [{"metric": "roc_auc", "change": {"margin": -0.01}}]
    # the suite pins the column set; this test is about the model, not the data gates
    configure(project, GOOD, gates, expectations=None)
    results = run(project)
    gate = change_gate(results)
    assert results["gate"]["verdict"] == "fail"
    assert "Price" in gate["reason"] and "schema changed" in gate["reason"]
    assert "policy: fail" in gate["reason"]
    # production could not predict, but its record still says what changed
    changed = results["evaluate"]["changes"]
    assert [(d["key"], d["change"]) for d in changed["features"]["changed"]] == [
        ("Price", "removed")
    ]
    assert changed["data_version"]["changed"][0]["change"] == "changed"
    assert "| feature Price | numeric int64 | — |" in results["report"]


def test_slice_gates_use_corrected_intervals_and_name_the_slice(project: Path) -> None:
    establish(project, GOOD)
    gates = [{"metric": "roc_auc", "change": {"margin": -0.5}, "slices": True}]
    configure(project, WEAK, gates, slices={"columns": ["Home"], "min_size": 60})
    results = run(project)
    evaluation = results["evaluate"]
    judged = [s for s in evaluation["slices"] if s["judged"]]
    small = [s for s in evaluation["slices"] if not s["judged"]]
    assert judged and small
    assert all(s["n"] >= 60 for s in judged) and all(s["n"] < 60 for s in small)
    k = len(judged)
    for entry in judged:
        assert entry["comparisons"]["roc_auc"]["confidence"] == pytest.approx(1 - 0.05 / k)
    sliced = [g for g in results["gate"]["gates"] if "[Home=" in g["name"]]
    assert len(sliced) == k
    assert results["gate"]["verdict"] == "pass"
    text = (project / ".ci-ml/runs/latest/report.md").read_text()
    assert "### Slices, worst first (roc_auc)" in text


# -- a fork's pull request: GitHub gives its run no secrets, so an S3 registry is unreadable


def fork_env(
    tmp_path: Path, webhooks: Callable[..., dict[str, Any]], *, fork: bool
) -> dict[str, str]:
    """A job of a pull request run (from a fork or not), with no AWS credentials at all."""
    event = webhooks("pull_request", "opened")
    if fork:
        event["pull_request"]["head"]["repo"]["full_name"] = "someone/fork"
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))}
    return {
        **env,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        # never contacted: botocore stops at the missing credentials
        "CI_ML_REGISTRY_URL": "s3://team-models/credit?endpoint_url=http://127.0.0.1:9",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": event["repository"]["full_name"],
    }


def cli(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # not conftest.run_cli: that adds this process's environment, AWS credentials included
    return subprocess.run(
        [sys.executable, "-m", "ci_ml", *args, "--run-dir", str(project / "run")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def trained_once(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("trained") / "project"
    shutil.copytree(pulled_example, project, symlinks=True)
    configure(project, GOOD, [{"metric": "roc_auc", "min": 0.5, "change": {"margin": -0.01}}])
    for step in ("pull", "validate", "train"):
        done = cli(project, dict(os.environ), step)
        assert done.returncode == 0, done.stderr
    return project


@pytest.fixture
def trained(trained_once: Path, tmp_path: Path) -> Path:
    """A project with a trained candidate in ``run/``, not evaluated yet (a copy per test)."""
    project = tmp_path / "trained"
    shutil.copytree(trained_once, project, symlinks=True)
    return project


def test_fork_pull_request_without_credentials_is_inconclusive_not_an_error(
    trained: Path, tmp_path: Path, github_webhooks: Callable[..., dict[str, Any]]
) -> None:
    env = fork_env(tmp_path, github_webhooks, fork=True)

    evaluated = cli(trained, env, "evaluate")
    gated = cli(trained, env, "gate")

    assert evaluated.returncode == 0, evaluated.stderr
    assert gated.returncode == 0, gated.stderr
    record = json.loads((trained / "run" / rundir.GATE_REPORT).read_text())
    assert record["verdict"] == "inconclusive"
    assert record["baseline"]["unread"] is True
    change = next(g for g in record["gates"] if g["name"] == "roc_auc change")
    assert "a pull request from a fork gets no secrets" in change["reason"]
    assert "policy: approve" in change["reason"]
    threshold = next(
        g for g in record["gates"] if g["name"] != "roc_auc change" and g["kind"] != "data"
    )
    assert threshold["verdict"] == "pass"  # what needs no registry is still judged
    # such a run never deploys, approval or not: it compared with nothing
    deployed = cli(trained, env, "deploy", "--approved-by", "octocat")
    assert deployed.returncode == 2
    assert "could not read production" in deployed.stderr
    assert "Traceback" not in deployed.stderr


def test_fork_policy_fail_blocks(
    trained: Path, tmp_path: Path, github_webhooks: Callable[..., dict[str, Any]]
) -> None:
    config = yaml.safe_load((trained / "ci-ml.yaml").read_text())
    config["comparison"] = {**config.get("comparison", {}), "fork_pull_request": "fail"}
    (trained / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = fork_env(tmp_path, github_webhooks, fork=True)

    assert cli(trained, env, "evaluate").returncode == 0
    gated = cli(trained, env, "gate")

    assert gated.returncode == 1
    assert "policy: fail" in gated.stderr


def test_missing_credentials_outside_a_fork_are_a_service_error(
    trained: Path, tmp_path: Path, github_webhooks: Callable[..., dict[str, Any]]
) -> None:
    env = fork_env(tmp_path, github_webhooks, fork=False)

    evaluated = cli(trained, env, "evaluate")

    assert evaluated.returncode == 3
    assert "no AWS credentials to" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr
    assert not (trained / "run" / rundir.EVALUATION).exists()
