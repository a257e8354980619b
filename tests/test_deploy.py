"""`ci-ml deploy` and `ci-ml rollback` against a real `ci-ml serve` on loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from ci_ml import api
from ci_ml.github.client import GitHubClient
from ci_ml.project import open_project
from ci_ml.registry import open_registry
from tests.conftest import run_cli, serving
from tests.github_api.server import GitHubAPIServer

pytestmark = pytest.mark.slow
TOKEN = "deploy-test-admin-token"


@pytest.fixture(scope="module")
def two_runs(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with two gated runs of different models (both first models)."""
    dest = tmp_path_factory.mktemp("deploy") / "project"
    shutil.copytree(pulled_example, dest, symlinks=True)
    config = yaml.safe_load((dest / "ci-ml.yaml").read_text())
    config["gates"] = [{"metric": "roc_auc", "min": 0.7, "change": {"margin": -0.2}}]
    for name, params in [("first", {"max_iter": 50}), ("second", {"max_iter": 120})]:
        config["model"]["params"] = params
        (dest / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        project = open_project(dest / "ci-ml.yaml")
        directory = project.runs_dir / name
        directory.mkdir(parents=True)
        assert api.run(project, directory)["gate"].verdict == "pass"
    return dest


@pytest.fixture
def project(two_runs: Path, tmp_path: Path) -> Iterator[Path]:
    dest = tmp_path / "project"
    shutil.copytree(two_runs, dest, symlinks=True)
    yield dest


@pytest.fixture
def service(project: Path, tmp_path: Path) -> Iterator[str]:
    """`ci-ml serve` on the project's registry, with the reload endpoint enabled."""
    with serving(project / ".ci-ml/registry", project, tmp_path / "serve.log", TOKEN) as url:
        yield url


def configure_deploy(project: Path, service: str, **extra: Any) -> None:
    path = project / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["deploy"] = {
        "targets": [{"type": "http", "url": f"{service}/admin/reload"}],
        "service_url": service,
        "timeout": 20,
        **extra,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def deploy(project: Path, run: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(
        "deploy",
        "--run-dir",
        f".ci-ml/runs/{run}",
        cwd=project,
        env={"CI_ML_ADMIN_TOKEN": TOKEN, **(env or {})},
    )


def digest(project: Path, run: str) -> str:
    return str(json.loads((project / f".ci-ml/runs/{run}/model.json").read_text())["digest"])


def rebase(project: Path, run: str, on: str) -> None:
    """Make ``run``'s decision record say it was compared with ``on`` (now in production)."""
    gate_report = project / f".ci-ml/runs/{run}/gate-report.json"
    record = json.loads(gate_report.read_text())
    record["baseline"] = production_ref(project, on)
    gate_report.write_text(json.dumps(record))


def production_ref(project: Path, run: str) -> dict[str, Any]:
    """The baseline a decision record names: the version ``run`` registered."""
    full = digest(project, run)
    return {"version": full[:12], "digest": full, "problem": None, "unread": False}


Answer = tuple[int, str | None, list[float]]


def deploy_under_load(
    project: Path, run: str, service: str, records: list[Any], clients: int
) -> tuple[Any, list[Answer]]:
    """`ci-ml deploy` while ``clients`` threads post ``records`` to /predict without pause."""
    import threading

    answers: list[Answer] = []
    stop = threading.Event()

    def hammer() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                reply = session.post(f"{service}/predict", json={"records": records}, timeout=30)
                body = reply.json() if reply.ok else {}
                found = [p["probability"] for p in body.get("predictions", [])]
                answers.append((reply.status_code, body.get("model_version"), found))

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        done = deploy(project, run)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    return done, answers


def test_deploy_promotes_notifies_and_smoke_tests(project: Path, service: str) -> None:
    assert requests.get(f"{service}/health", timeout=5).status_code == 503
    configure_deploy(project, service)
    done = deploy(project, "first")
    assert done.returncode == 0, done.stderr
    assert requests.get(f"{service}/version", timeout=5).json()["model_digest"] == digest(
        project, "first"
    )
    assert "/predict matches the candidate" in done.stderr
    history = open_registry(".ci-ml/registry", root=project).history()
    assert [(e.action, e.version) for e in history] == [("promote", digest(project, "first")[:12])]
    assert history[0].record["verdict"] == "pass"


def test_a_decision_record_edited_into_a_pass_is_refused(project: Path) -> None:
    strict = yaml.safe_load((project / "ci-ml.yaml").read_text())
    strict["gates"] = [{"metric": "roc_auc", "min": 0.99}]
    (project / "ci-ml.yaml").write_text(yaml.safe_dump(strict, sort_keys=False))
    assert run_cli("gate", "--run-dir", ".ci-ml/runs/second", cwd=project).returncode == 1
    path = project / ".ci-ml/runs/second/gate-report.json"
    record = json.loads(path.read_text())
    assert record["verdict"] == "fail"
    record.update(verdict="pass", reasons=[])
    for entry in record["gates"]:
        entry["verdict"] = "pass"
    path.write_text(json.dumps(record))
    registry = open_registry(".ci-ml/registry", root=project)

    done = deploy(project, "second")

    assert done.returncode == 2, done.stderr
    assert "the decision record says pass but the gates judged again" in done.stderr
    assert "roc_auc threshold: pass recorded, fail now" in done.stderr
    assert done.stderr.count("\n") == 1
    assert registry.get_production() is None and registry.history() == []


def _edit_json(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda p: _edit_json(
                p / ".ci-ml/runs/second/evaluation.json",
                lambda r: r["candidate"]["metrics"].update(roc_auc=0.999),
            ),
            "evaluation.json changed after the gate judged this run",
        ),
        (
            lambda p: _edit_json(
                p / ".ci-ml/runs/second/data-report.json",
                lambda r: r["checks"][0].update(details="edited"),
            ),
            "data-report.json changed after the gate judged this run",
        ),
        (
            lambda p: (p / "ci-ml.yaml").write_text(
                (p / "ci-ml.yaml").read_text().replace("min: 0.7", "min: 0.5")
            ),
            "the gating settings of ci-ml.yaml",
        ),
    ],
    ids=["evaluation", "data-report", "config"],
)
def test_what_the_gate_judged_cannot_change_before_deploy(
    project: Path, edit: Any, named: str
) -> None:
    edit(project)
    done = deploy(project, "second")
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "run 'ci-ml gate' again" in done.stderr
    assert open_registry(".ci-ml/registry", root=project).get_production() is None


def test_the_deploy_settings_may_change_after_the_gate(project: Path) -> None:
    configure_deploy(project, "http://127.0.0.1:9", smoke_rows=5)
    config = yaml.safe_load((project / "ci-ml.yaml").read_text())
    config["deploy"] = {}  # no target: nothing to notify, nothing to smoke-test
    (project / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = deploy(project, "second")
    assert done.returncode == 0, done.stderr


def test_a_changed_model_file_is_refused(project: Path, service: str) -> None:
    configure_deploy(project, service)
    model = project / ".ci-ml/runs/first/model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    done = deploy(project, "first")
    assert done.returncode == 2
    assert "refusing to deploy a model the gates did not see" in done.stderr
    assert open_registry(".ci-ml/registry", root=project).get_production() is None


def test_production_that_moved_since_the_gate_is_a_conflict(project: Path, service: str) -> None:
    configure_deploy(project, service)
    registry = open_registry(".ci-ml/registry", root=project)
    registry.promote(digest(project, "first")[:12], None, by="someone else")
    done = deploy(project, "second")  # gated against "nothing in production"
    assert done.returncode == 4
    assert "run the gates again" in done.stderr
    assert registry.get_production().version == digest(project, "first")[:12]


def test_failed_notification_rolls_back_to_the_previous_version(
    project: Path, service: str
) -> None:
    configure_deploy(project, service)
    assert deploy(project, "first").returncode == 0
    # gate "second" again against the version now in production, then break a target
    rebase(project, "second", on="first")
    configure_deploy(
        project,
        service,
        targets=[
            {"type": "http", "url": f"{service}/admin/reload"},
            {"type": "command", "run": "exit 3"},
        ],
    )
    done = deploy(project, "second")
    assert done.returncode == 1
    assert "rolled back" in done.stderr and "exited with 3" in done.stderr
    registry = open_registry(".ci-ml/registry", root=project)
    assert registry.get_production().version == digest(project, "first")[:12]
    assert [e.action for e in registry.history()] == ["promote", "promote", "rollback"]
    assert requests.get(f"{service}/version", timeout=5).json()["model_digest"] == digest(
        project, "first"
    )


def test_rollback_command_restores_the_previous_version(project: Path, service: str) -> None:
    configure_deploy(project, service)
    registry = open_registry(".ci-ml/registry", root=project)
    registry.promote(digest(project, "first")[:12], None, by="test")
    registry.promote(digest(project, "second")[:12], digest(project, "first")[:12], by="test")
    done = run_cli(
        "rollback", "--reason", "latency spike", cwd=project, env={"CI_ML_ADMIN_TOKEN": TOKEN}
    )
    assert done.returncode == 0, done.stderr
    assert registry.get_production().version == digest(project, "first")[:12]
    assert registry.history()[-1].record == {"reason": "latency spike"}
    assert requests.get(f"{service}/version", timeout=5).json()["model_digest"] == digest(
        project, "first"
    )


def test_inside_actions_records_deployment_statuses_and_approvers(
    project: Path, service: str, github_api: GitHubAPIServer, github_env: dict[str, str]
) -> None:
    configure_deploy(project, service)
    repo, sha = github_env["GITHUB_REPOSITORY"], github_env["GITHUB_SHA"]
    with GitHubClient(env=github_env) as client:  # what `environment: production` creates
        created = client.post(
            f"/repos/{repo}/deployments", json={"ref": sha, "environment": "production"}
        )
    env = {**github_env, "GITHUB_EVENT_NAME": "push", "CI_ML_SERVICE_URL": service}
    done = deploy(project, "first", env)
    assert done.returncode == 0, done.stderr
    statuses = [r.json for r in github_api.requests_for("repos/create-deployment-status")]
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    assert all(
        r.path.endswith(f"/deployments/{created['id']}/statuses")
        for r in github_api.requests_for("repos/create-deployment-status")
    )
    assert statuses[-1]["log_url"].endswith("/actions/runs/4242")
    assert statuses[-1]["environment_url"] == service
    assert not github_api.requests_for("repos/create-deployment")[1:]  # no duplicate
    approvals = github_api.api.example(github_api.api.operation("actions/get-reviews-for-run"), 200)
    expected = sorted({a["user"]["login"] for a in approvals if a["state"] == "approved"})
    event = open_registry(".ci-ml/registry", root=project).history()[-1]
    assert event.record["approved_by"] == expected
    assert event.record["deployment_id"] == created["id"]


def test_deploy_under_load_switches_versions_with_no_failed_or_mixed_answers(
    project: Path, service: str
) -> None:
    configure_deploy(project, service)
    assert deploy(project, "first").returncode == 0
    rebase(project, "second", on="first")
    samples = {
        run: json.loads((project / f".ci-ml/runs/{run}/smoke-sample.json").read_text())
        for run in ("first", "second")
    }
    assert samples["first"]["records"] == samples["second"]["records"]  # same holdout rows
    expected = {digest(project, run)[:12]: samples[run]["expected"] for run in samples}
    done, answers = deploy_under_load(project, "second", service, samples["first"]["records"], 3)
    assert done.returncode == 0, done.stderr
    assert answers and all(status == 200 for status, _, _ in answers)
    seen = {version for _, version, _ in answers}
    assert seen <= set(expected) and digest(project, "second")[:12] in seen
    for _, version, got in answers:  # every answer comes wholly from the version it names
        assert got == pytest.approx(expected[str(version)], abs=1e-9)


def test_a_candidate_that_answers_constants_in_service_is_rolled_back_under_load(
    project: Path, service: str
) -> None:
    """The service loads the new model, but it answers constants instead of what the gates
    judged: the smoke test catches it, production goes back, nobody sees an error."""
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    from ci_ml.models import load_model, save_model

    configure_deploy(project, service)
    assert deploy(project, "first").returncode == 0
    broken = project / ".ci-ml/runs/broken"
    shutil.copytree(project / ".ci-ml/runs/second", broken)
    model = load_model(broken / "model.skops")
    train = pd.read_parquet(broken / "reference.parquet")
    model.steps[-1] = ("model", DummyClassifier(strategy="prior"))
    model.fit(train.drop(columns=["Status"]), train["Status"])
    new_digest = save_model(model, broken / "model.skops")
    # a forger must rewrite every record consistently and gate again: deploy re-judges the
    # gates and checks the digests that bind the record to what it judged
    for name in ("model.json", "evaluation.json"):
        found = json.loads((broken / name).read_text())
        (found.get("candidate") or found)["digest"] = new_digest
        (broken / name).write_text(json.dumps(found))
    assert run_cli("gate", "--run-dir", str(broken), cwd=project).returncode == 0
    rebase(project, "broken", "first")
    registry = open_registry(".ci-ml/registry", root=project)
    names = ["model.skops", "model.json", "gate-report.json", "reference.parquet"]
    registry.register({n: broken / n for n in names}, {"task": "classification"}, by="test")

    records = json.loads((broken / "smoke-sample.json").read_text())["records"]
    done, answers = deploy_under_load(project, "broken", service, records, 2)
    assert done.returncode == 1
    assert "rolled back" in done.stderr and "differs from the candidate's" in done.stderr
    assert answers and {status for status, _, _ in answers} == {200}
    assert registry.get_production().version == digest(project, "first")[:12]
    assert [e.action for e in registry.history()][-1] == "rollback"
    assert requests.get(f"{service}/version", timeout=5).json()["model_digest"] == digest(
        project, "first"
    )
