"""The composite actions' `run:` steps, run the way a runner runs them, with the real ci-ml.

Each test runs the steps with the variables a runner sets (GITHUB_OUTPUT, GITHUB_ENV,
GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH holding GitHub's published webhook example) against
the local GitHub API server, and checks the step outputs, the job summary and the API calls:

* a same-repo pull request: run, then report -> one sticky comment and one ci-ml/gates status;
* a fork's pull request: report makes no API call and leaves github-pr.json; the publisher
  (a workflow_run job, `report` with publish-from) then posts the comment and the status;
* a push to main: run, then deploy -> the deployment's statuses and the registry's production.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ci_ml.github.client import GitHubClient
from ci_ml.publish import PR_FILE
from ci_ml.registry import open_registry
from tests.github_api.server import GitHubAPIServer
from tests.test_workflows import CompositeRunner, runner  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

MARKER = "<!-- ci-ml:"


def as_runner_job(
    job: CompositeRunner, env: dict[str, str], event: dict[str, Any], tmp_path: Path
) -> None:
    """Give the runner ``job`` the job's variables: ``env`` (github_env's) and ``event``."""
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    github_env_file = tmp_path / "github-env"
    github_env_file.touch()
    job.env.update(env)
    job.env.update(
        {
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_ENV": str(github_env_file),
            "GITHUB_WORKSPACE": str(job.workspace),
        }
    )
    job.env.pop("GITHUB_OUTPUT", None)  # each step gets its own
    job.github["event"] = event


@pytest.fixture(scope="module")
def gated(
    pulled_example: Path,
    tmp_path_factory: pytest.TempPathFactory,
    github_webhooks: Callable[..., dict[str, Any]],
) -> tuple[Path, dict[str, str]]:
    """One real run of the `run` action on a copy of the example project, shared by the
    tests (it talks to no API and reads no event; a run takes half a minute): the workspace
    and the action's outputs."""
    base = tmp_path_factory.mktemp("gated")
    workspace = base / "workspace"
    workspace.mkdir()
    job = CompositeRunner(
        workspace,
        {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GITHUB_"))},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_ATTEMPT": "1",
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": str(base / "runner-temp"),
        },
        {},
    )
    event = github_webhooks("pull_request", "opened")
    as_runner_job(job, {"GITHUB_REPOSITORY": event["repository"]["full_name"]}, event, base)
    shutil.copytree(pulled_example, workspace / "ml", symlinks=True)
    result = job.run("run", {"working-directory": "ml"})
    assert result.code == 0, result.log
    assert "::group::ci-ml train" in result.log
    run_dir = workspace / "ml" / ".ci-ml" / "runs" / "github-4242-1"
    card = json.loads((run_dir / "model.json").read_text())
    assert result.outputs == {
        "verdict": "pass",
        "exit-code": "0",
        "run-dir": str(run_dir),
        "report": str(run_dir / "report.md"),
        "model-digest": card["digest"],
    }
    return workspace, result.outputs


def run_pipeline(job: CompositeRunner, gated: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """The shared run, as if the `run` action had run in ``job``'s workspace."""
    workspace, outputs = gated
    shutil.copytree(workspace / "ml", job.workspace / "ml", symlinks=True)
    return {k: v.replace(str(workspace), str(job.workspace)) for k, v in outputs.items()}


def gate_comments(github_api: GitHubAPIServer) -> list[dict[str, Any]]:
    return [c for c in github_api.state.comments.values() if c["body"].startswith(MARKER)]


def all_statuses(github_api: GitHubAPIServer) -> list[dict[str, Any]]:
    return [s for found in github_api.state.statuses.values() for s in found]


def test_same_repo_pull_request(
    runner: CompositeRunner,  # noqa: F811
    gated: tuple[Path, dict[str, str]],
    github_api: GitHubAPIServer,
    github_env: dict[str, str],
    tmp_path: Path,
) -> None:
    event = json.loads(Path(github_env["GITHUB_EVENT_PATH"]).read_text())
    number, head = event["number"], event["pull_request"]["head"]["sha"]
    as_runner_job(runner, github_env, event, tmp_path)

    ran = run_pipeline(runner, gated)

    reported = runner.run(
        "report",
        {
            "working-directory": "ml",
            "run-dir": ran["run-dir"],
            "github-token": github_env["GITHUB_TOKEN"],
        },
    )

    assert reported.code == 0, reported.log
    assert reported.outputs == {"report": ran["report"]}
    report = Path(ran["report"]).read_text()
    summary = Path(github_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "ci-ml verdict" in summary
    assert report.strip().splitlines()[0] in summary
    created = github_api.requests_for("issues/create-comment")
    assert len(created) == 1
    assert created[0].path.endswith(f"/issues/{number}/comments")
    assert created[0].json["body"].startswith(MARKER)
    assert "ci-ml verdict: **PASS**" in created[0].json["body"]
    assert len(gate_comments(github_api)) == 1
    statuses = github_api.requests_for("repos/create-commit-status")
    assert len(statuses) == 1
    assert statuses[0].path.endswith(f"/statuses/{head}")
    assert statuses[0].json["context"] == "ci-ml/gates"
    assert statuses[0].json["state"] == "success"
    assert len(all_statuses(github_api)) == 1
    assert github_env["GITHUB_TOKEN"] not in reported.log.replace(
        f"::add-mask::{github_env['GITHUB_TOKEN']}", ""
    )


def test_fork_pull_request_through_the_publisher(
    runner: CompositeRunner,  # noqa: F811
    gated: tuple[Path, dict[str, str]],
    github_api: GitHubAPIServer,
    github_env: dict[str, str],
    github_webhooks: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    # the fork pushed the commit that the server's pulls/get example names as the head
    pull = github_api.api.example(github_api.api.operation("pulls/get"), 200)
    head = pull["head"]["sha"]
    event = json.loads(Path(github_env["GITHUB_EVENT_PATH"]).read_text())
    event["pull_request"]["head"]["repo"]["full_name"] = "someone/fork"
    event["pull_request"]["head"]["sha"] = head
    as_runner_job(runner, github_env, event, tmp_path)

    ran = run_pipeline(runner, gated)
    reported = runner.run(
        "report",
        {
            "working-directory": "ml",
            "run-dir": ran["run-dir"],
            "github-token": github_env["GITHUB_TOKEN"],
        },
    )

    assert reported.code == 0, reported.log
    assert github_api.requests == []  # a fork's job never talks to the API
    run_dir = Path(ran["run-dir"])
    deferred = json.loads((run_dir / PR_FILE).read_text())
    assert (deferred["number"], deferred["head_sha"]) == (event["number"], head)
    assert "ci-ml verdict" in Path(github_env["GITHUB_STEP_SUMMARY"]).read_text()

    # the publisher: a workflow_run job in the base repository, on a fresh runner, with the
    # run directory downloaded to $RUNNER_TEMP/ci-ml-publish (ml-publish.yml)
    runner_temp = Path(runner.env["RUNNER_TEMP"])
    downloaded = runner_temp / "ci-ml-publish"
    shutil.copytree(run_dir, downloaded)
    run_event = github_webhooks("workflow_run", "completed")
    run_event["workflow_run"]["head_sha"] = head
    run_event["workflow_run"]["event"] = "pull_request"
    run_event["repository"]["full_name"] = github_env["GITHUB_REPOSITORY"]
    publisher_dir = tmp_path / "publisher"
    publisher_dir.mkdir()
    summary = publisher_dir / "summary.md"
    summary.touch()
    as_runner_job(
        runner,
        {
            **github_env,
            "GITHUB_EVENT_NAME": "workflow_run",
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_JOB": "publish",
        },
        run_event,
        publisher_dir,
    )

    published = runner.run(
        "report",
        {
            "working-directory": str(runner_temp),
            "publish-from": str(downloaded),
            "github-token": github_env["GITHUB_TOKEN"],
        },
    )

    assert published.code == 0, published.log
    assert published.outputs == {"report": str(downloaded / "report.md")}
    created = github_api.requests_for("issues/create-comment")
    assert len(created) == 1
    assert created[0].path.endswith(f"/issues/{event['number']}/comments")
    assert created[0].json["body"].startswith(MARKER)
    assert len(gate_comments(github_api)) == 1
    statuses = github_api.requests_for("repos/create-commit-status")
    assert len(statuses) == 1
    assert statuses[0].path.endswith(f"/statuses/{head}")
    assert statuses[0].json["context"] == "ci-ml/gates"


# The run action registers nothing; the deploy job registers the verified candidate itself
# (the gate ran in another job, perhaps on another runner).
def test_push_to_main_deploys(
    runner: CompositeRunner,  # noqa: F811
    gated: tuple[Path, dict[str, str]],
    github_api: GitHubAPIServer,
    github_env: dict[str, str],
    github_webhooks: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    event = github_webhooks("push")
    event["ref"] = "refs/heads/main"
    sha = event["after"]
    env = {
        **github_env,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REPOSITORY": event["repository"]["full_name"],
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_JOB": "deploy",
    }
    as_runner_job(runner, env, event, tmp_path)
    ran = run_pipeline(runner, gated)
    repo = env["GITHUB_REPOSITORY"]
    with GitHubClient(env=env) as client:  # what `environment: production` creates
        created = client.post(
            f"/repos/{repo}/deployments", json={"ref": sha, "environment": "production"}
        )

    deployed = runner.run(
        "deploy",
        {
            "working-directory": "ml",
            "run-dir": ran["run-dir"],
            "github-token": env["GITHUB_TOKEN"],
        },
    )

    assert deployed.code == 0, deployed.log
    assert deployed.outputs == {"verdict": "pass", "model-digest": ran["model-digest"]}
    requests = github_api.requests_for("repos/create-deployment-status")
    assert [r.json["state"] for r in requests] == ["in_progress", "success"]
    assert all(r.path.endswith(f"/deployments/{created['id']}/statuses") for r in requests)
    assert requests[-1].json["log_url"].endswith("/actions/runs/4242")
    assert len(github_api.requests_for("repos/create-deployment")) == 1  # only ours
    registry = open_registry(".ci-ml/registry", root=runner.workspace / "ml")
    history = registry.history()
    assert history[-1].action == "promote"
    assert history[-1].record["deployment_id"] == created["id"]
    production = registry.get_production()
    assert production is not None
    assert production.digest == ran["model-digest"]  # the candidate
    assert production.version == history[-1].version
