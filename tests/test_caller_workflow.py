"""The caller workflows of docs/github-actions.md, adopted the way the page says, run whole.

A fresh repository holds the example project and the two callers copied from the page,
with `OWNER/ci-ml` and `SHA` replaced as step 1 says (by a repository holding this
checkout of ci-ml), an S3 registry (moto on loopback) and the two AWS secrets of step 3.
The workflow runner (tests/workflow_runner/) then plays GitHub for a same-repository pull
request, a fork's pull request and a push to main: the reusable workflows, the composite
actions, the setup action's real `pip install` of ci-ml from that commit, GitHub's own
expression engine, the local GitHub API server. The checks are those of
the composite actions' step tests had: outputs, job summary, the API calls made.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_ml.registry import open_registry
from tests.conftest import REPO, git, make_example_repo
from tests.github_api.fixtures import TOKEN
from tests.github_api.server import GitHubAPIServer
from tests.registry.test_registry import AWS_ENV, moto_endpoint, s3_admin  # noqa: F401  (fixtures)
from tests.workflow_runner import GitHub, Repository, WorkflowRun

pytestmark = pytest.mark.slow

MARKER = "<!-- ci-ml:"
ADOPTER = "octo-org/credit-model"
CI_ML = "ci-ml-org/ci-ml"
BUCKET = "my-bucket"  # the caller's registry-url: s3://my-bucket/models
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIATESTADOPTER0001",
    "AWS_SECRET_ACCESS_KEY": "adopter-secret-key",
}
COMMIT = ["-c", "user.name=ci-ml tests", "-c", "user.email=tests@ci-ml.invalid", "commit", "-q"]


def docs_callers() -> tuple[str, str]:
    """The caller (step 1) and the publisher (step 2) of docs/github-actions.md, verbatim."""
    page = (REPO / "docs" / "github-actions.md").read_text(encoding="utf-8")
    section = page.split("## Adopt it in five minutes", 1)[1].split("\n## ", 1)[0]
    caller, publisher = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[:2]
    return caller, publisher


def adopt(text: str, sha: str) -> str:
    """What step 1 says to do: the repository ci-ml comes from, and the commit adopted."""
    assert "OWNER/ci-ml" in text and "@SHA" in text, "the docs' caller changed its placeholders"
    return text.replace("OWNER/ci-ml", CI_ML).replace("@SHA", f"@{sha}")


@pytest.fixture(scope="module")
def ci_ml_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """ci-ml as a repository GitHub hosts: this checkout's files (committed or not) in one
    commit, which the callers pin."""
    dest = tmp_path_factory.mktemp("ci-ml-release") / "ci-ml"
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, *COMMIT, "-m", "ci-ml release")
    return dest, git(dest, "rev-parse", "HEAD")


@pytest.fixture
def registry_bucket(s3_admin: Any) -> str:  # noqa: F811
    """The adopter's empty S3 bucket (one moto server serves the whole session)."""
    s3_admin.create_bucket(Bucket=BUCKET)
    listed = s3_admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        s3_admin.delete_object(Bucket=BUCKET, Key=item["Key"])
    return BUCKET


def hosting_ci_ml(
    root: Path,
    github_api: GitHubAPIServer,
    webhooks: Callable[..., dict[str, Any]],
    release: tuple[Path, str],
    moto_endpoint: str,  # noqa: F811
) -> GitHub:
    """GitHub hosting ci-ml's release, with runners whose S3 is moto on loopback."""
    machine = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # this runner's network: S3 is the moto server on loopback, no instance metadata
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_DEFAULT_REGION": AWS_ENV["AWS_DEFAULT_REGION"],
        "AWS_EC2_METADATA_DISABLED": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
    }
    hub = GitHub(root, api_url=github_api.url, token=TOKEN, webhooks=webhooks, machine_env=machine)
    hub.host(Repository(CI_ML, release[0]))
    return hub


def host_adopter(hub: GitHub, project: Path, caller: str, publisher: str) -> None:
    """The adopter's repository ``project`` with the two callers committed, and its secrets."""
    workflows = project / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "ml.yml").write_text(caller, encoding="utf-8")
    (workflows / "ml-publish.yml").write_text(publisher, encoding="utf-8")
    git(project, "add", "-A")
    git(project, *COMMIT, "-m", "ci-ml: the pipeline and its publisher, from the docs")
    hub.host(Repository(ADOPTER, project), secrets=SECRETS)


@pytest.fixture
def github(
    tmp_path: Path,
    github_api: GitHubAPIServer,
    github_webhooks: Callable[..., dict[str, Any]],
    ci_ml_release: tuple[Path, str],
    moto_endpoint: str,  # noqa: F811
    registry_bucket: str,
) -> Iterator[GitHub]:
    """GitHub, hosting ci-ml and the adopter's fresh repository with the docs' callers."""
    hub = hosting_ci_ml(
        tmp_path / "github", github_api, github_webhooks, ci_ml_release, moto_endpoint
    )
    sha = ci_ml_release[1]
    caller, publisher = docs_callers()
    project = make_example_repo(tmp_path / "credit-model")
    host_adopter(hub, project, adopt(caller, sha), adopt(publisher, sha))
    yield hub
    hub.close()


def propose(github: GitHub, branch: str, repo_name: str = ADOPTER) -> str:
    """A commit on ``branch`` of a hosted repository (a note, no model change)."""
    repo = github.repos[repo_name].path
    git(repo, "checkout", "-q", "-b", branch)
    (repo / "NOTES.md").write_text("Tuning notes.\n", encoding="utf-8")
    git(repo, "add", "NOTES.md")
    git(repo, *COMMIT, "-m", "notes")
    git(repo, "checkout", "-q", "main")
    return git(repo, "rev-parse", branch)


def only(runs: list[WorkflowRun], name: str) -> WorkflowRun:
    found = [run for run in runs if run.name == name]
    assert len(found) == 1, [run.name for run in runs]
    return found[0]


def gate_comments(github_api: GitHubAPIServer) -> list[dict[str, Any]]:
    return [c for c in github_api.state.comments.values() if c["body"].startswith(MARKER)]


def check_gate(run: WorkflowRun, verdict: str = "pass") -> dict[str, str]:
    """The gate job succeeded with the outputs of a real run; returns them."""
    gate = run.jobs["ml / gate"]
    assert gate.result == "success", gate.log
    assert gate.asked["python-version"] == "3.12"  # the pipeline's default
    assert "Installed ci-ml" in gate.log
    assert "::group::ci-ml train" in gate.log
    stored = run.github.artifacts[(run.id, "ci-ml-run")]
    card = json.loads((stored / "model.json").read_text())
    assert json.loads((stored / "gate-report.json").read_text())["verdict"] == verdict
    assert gate.outputs == {
        "verdict": verdict,
        "model-digest": card["digest"],
        "artifact": "ci-ml-run",
    }
    assert (stored / "report.md").read_text().splitlines()[0] in gate.summary
    for job in run.jobs.values():  # GitHub would mask them; nothing should print them at all
        printed = "\n".join(
            line for line in job.raw_log.splitlines() if not line.startswith("::add-mask::")
        )
        for secret in (TOKEN, *SECRETS.values()):
            assert secret not in printed
    return gate.outputs


def test_same_repo_pull_request(github: GitHub, github_api: GitHubAPIServer) -> None:
    head = propose(github, "tune")

    runs = github.pull_request(ADOPTER, 7, "tune")

    ml = only(runs, "ml")
    assert ml.conclusion == "success", ml.jobs["ml / gate"].log
    check_gate(ml)
    assert ml.jobs["ml / deploy"].result == "skipped"  # a pull request never deploys
    publish = only(runs, "ml-publish")  # started by ml's completion, and skipped: not a fork
    assert publish.jobs["publish / publish"].result == "skipped"
    created = github_api.requests_for("issues/create-comment")
    assert len(created) == 1
    assert created[0].path.endswith(f"/repos/{ADOPTER}/issues/7/comments")
    assert "ci-ml verdict: **PASS**" in created[0].json["body"]
    assert len(gate_comments(github_api)) == 1
    statuses = github_api.requests_for("repos/create-commit-status")
    assert [(s.path.rsplit("/", 1)[1], s.json["context"], s.json["state"]) for s in statuses] == [
        (head, "ci-ml/gates", "success")
    ]
    assert github_api.requests_for("repos/create-deployment") == []


def test_two_pipelines_in_one_workflow_keep_their_own_comment_and_status(
    github: GitHub, github_api: GitHubAPIServer
) -> None:
    # the docs' caller with its one job twice, as a team with two models writes it: each
    # call names its pipeline (its artifact, deployment queue, comment and status)
    repo = github.repos[ADOPTER].path
    workflow = repo / ".github" / "workflows" / "ml.yml"
    text = workflow.read_text(encoding="utf-8")
    head, job = text.split("jobs:\n", 1)
    body = job.split("\n", 1)[1]
    named = {
        name: f"  {name}:\n" + body.replace("    with:\n", f"    with:\n      name: {name}\n", 1)
        for name in ("credit", "limit")
    }
    workflow.write_text(head + "jobs:\n" + named["credit"] + named["limit"], encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, *COMMIT, "-m", "two models")
    sha = propose(github, "tune")

    runs = github.pull_request(ADOPTER, 9, "tune")

    ml = only(runs, "ml")
    for name in ("credit", "limit"):
        assert ml.jobs[f"{name} / gate"].result == "success", ml.jobs[f"{name} / gate"].log
        assert (ml.id, f"{name}-run") in ml.github.artifacts
    comments = gate_comments(github_api)
    assert len(comments) == 2 and len({c["body"].split("\n", 1)[0] for c in comments}) == 2
    statuses = github_api.requests_for("repos/create-commit-status")
    assert sorted((s.path.rsplit("/", 1)[1], s.json["context"]) for s in statuses) == [
        (sha, "ci-ml/gates/credit"),
        (sha, "ci-ml/gates/limit"),
    ]


def docs_matrix_caller() -> str:
    """The caller of 'A matrix of models' in docs/github-actions.md, verbatim."""
    page = (REPO / "docs" / "github-actions.md").read_text(encoding="utf-8")
    section = page.split("## A matrix of models", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)[0]


# the docs' three configs: the example's, and two other estimators (thresholds a first
# model of each passes, so every leg is judged and none blocks)
VARIANTS = {
    "ci-ml-logistic.yaml": (
        "sklearn.linear_model.LogisticRegression",
        "    max_iter: 500\n    C: 0.5\n",
    ),
    "ci-ml-forest.yaml": (
        "sklearn.ensemble.RandomForestClassifier",
        "    n_estimators: 40\n    max_depth: 6\n",
    ),
}


def test_a_matrix_of_three_models_posts_one_combined_comment(
    github: GitHub, github_api: GitHubAPIServer, ci_ml_release: tuple[Path, str]
) -> None:
    repo = github.repos[ADOPTER].path
    config = (repo / "ci-ml.yaml").read_text(encoding="utf-8")
    params = config.split("  params:\n", 1)[1].split("  seed:", 1)[0]
    for name, (estimator, own) in VARIANTS.items():
        text = config.replace("sklearn.ensemble.HistGradientBoostingClassifier", estimator)
        text = text.replace(params, own).replace("min: 0.78", "min: 0.6")
        (repo / name).write_text(text, encoding="utf-8")
    workflow = repo / ".github" / "workflows" / "ml.yml"
    workflow.write_text(adopt(docs_matrix_caller(), ci_ml_release[1]), encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, *COMMIT, "-m", "three models")
    sha = propose(github, "tune")

    runs = github.pull_request(ADOPTER, 11, "tune")

    ml = only(runs, "ml")
    assert ml.conclusion == "success"
    legs = {
        "boosting": "HistGradientBoosting",
        "logistic": "LogisticRegression",
        "forest": "RandomForest",
    }
    for (name, estimator), config_file in zip(legs.items(), ["ci-ml.yaml", *VARIANTS], strict=True):
        gate = ml.jobs[f"ml ({name}, {config_file}) / gate"]
        assert gate.result == "success", gate.log
        stored = ml.github.artifacts[(ml.id, f"{name}-run")]  # three artifacts, no collision
        assert estimator in json.loads((stored / "model.json").read_text())["estimator"]
        assert json.loads((stored / "gate-report.json").read_text())["verdict"] == "pass"
    assert sorted(n for r, n in ml.github.artifacts if r == ml.id) == [
        "boosting-run",
        "forest-run",
        "logistic-run",
    ]
    combine = ml.jobs["report / combine"]
    assert combine.result == "success", combine.log
    assert sorted(n for by, of, n in github.downloads if by == ml.id) == [
        "boosting-run",
        "forest-run",
        "logistic-run",
    ]
    # exactly one comment: the combined one (the legs have comment: false)
    created = github_api.requests_for("issues/create-comment")
    assert len(created) == 1
    (comment,) = gate_comments(github_api)
    assert comment["body"].startswith("<!-- ci-ml:ml/combine/combined=matrix -->\n")
    body = comment["body"]
    assert "ci-ml matrix: 3 legs — 3 pass" in body
    for name, estimator in legs.items():
        assert f"<summary>✅ {name}: PASS</summary>" in body
        assert estimator in body
    assert body.count("| ✅ pass |") == 3 and body.count("yes, on merge") == 3
    # three statuses, one per leg; none combined
    statuses = github_api.requests_for("repos/create-commit-status")
    assert sorted((s.path.rsplit("/", 1)[1], s.json["context"]) for s in statuses) == [
        (sha, "ci-ml/gates/boosting"),
        (sha, "ci-ml/gates/forest"),
        (sha, "ci-ml/gates/logistic"),
    ]
    assert "ci-ml matrix: 3 legs" in combine.summary


def test_fork_pull_request_through_the_publisher(
    github: GitHub, github_api: GitHubAPIServer
) -> None:
    head = propose(github, "contributor-idea")
    github_api.state.open_pull(ADOPTER, 8, head, "contributor-idea")

    calls_after: dict[str, int] = {}
    github.after_run.append(lambda run: calls_after.setdefault(run.name, len(github_api.requests)))

    runs = github.pull_request(ADOPTER, 8, "contributor-idea", head_repo="someone/credit-model")

    ml = only(runs, "ml")
    assert calls_after["ml"] == 0  # a fork's run never talks to the API
    assert ml.conclusion == "success", ml.jobs["ml / gate"].log
    assert ml.secrets == {}  # GitHub gives a fork's run no secrets
    # so it cannot read the registry: the change gates are not judged (policy approve)
    check_gate(ml, "inconclusive")
    publish = only(runs, "ml-publish")
    job = publish.jobs["publish / publish"]
    assert job.result == "success", job.log
    created = github_api.requests_for("issues/create-comment")
    assert len(created) == 1
    assert created[0].path.endswith(f"/repos/{ADOPTER}/issues/8/comments")
    body = created[0].json["body"]
    assert "ci-ml verdict: **INCONCLUSIVE**" in body
    assert "a pull request from a fork gets no secrets" in body
    statuses = github_api.requests_for("repos/create-commit-status")
    assert [(s.path.rsplit("/", 1)[1], s.json["context"], s.json["state"]) for s in statuses] == [
        (head, "ci-ml/gates", "success")
    ]
    assert "fork" in statuses[0].json["description"]
    assert github.downloads == [(publish.id, ml.id, "ci-ml-run")]  # the fork run's artifact


def test_push_to_main_deploys_after_approval(
    github: GitHub,
    github_api: GitHubAPIServer,
    moto_endpoint: str,  # noqa: F811
) -> None:
    propose(github, "tune")
    repo = github.repos[ADOPTER].path
    git(repo, "-c", "user.name=m", "-c", "user.email=m@x.invalid", "merge", "-q", "--no-ff", "tune")
    github.approvers = ["octocat"]

    runs = github.push(ADOPTER, "main")

    ml = only(runs, "ml")
    assert ml.conclusion == "success", ml.jobs["ml / deploy"].log
    outputs = check_gate(ml)
    deploy = ml.jobs["ml / deploy"]
    assert deploy.result == "success", deploy.log
    created = github_api.requests_for("repos/create-deployment")
    assert len(created) == 1  # the one GitHub made for the environment
    assert created[0].json["environment"] == "production"
    requests = github_api.requests_for("repos/create-deployment-status")
    assert [r.json["state"] for r in requests] == ["in_progress", "success"]
    assert requests[-1].json["log_url"].endswith(f"/actions/runs/{ml.id}")
    registry = open_registry(f"s3://{BUCKET}/models?endpoint_url={moto_endpoint}")
    production = registry.get_production()
    assert production is not None
    assert production.digest == outputs["model-digest"]
    assert registry.history()[-1].action == "promote"
    assert only(runs, "ml-publish").jobs["publish / publish"].result == "skipped"


def test_push_without_approval_does_not_deploy(github: GitHub, github_api: GitHubAPIServer) -> None:
    runs = github.push(ADOPTER, "main")

    ml = only(runs, "ml")
    check_gate(ml)
    assert ml.jobs["ml / deploy"].result == "failure"
    assert github_api.requests_for("repos/create-deployment") == []
    assert github_api.requests_for("repos/create-deployment-status") == []


def test_ci_ml_runs_its_own_example_pipeline(github: GitHub, github_api: GitHubAPIServer) -> None:
    """Dogfooding: a pull request to ci-ml itself runs example-pipeline.yml, which calls
    ml-pipeline.yml by `$/` with the example's local registry and DVC's cache on."""
    github.disabled.add(".github/workflows/ci.yml")  # ci-ml's own tests: this very suite
    propose(github, "docs-typo", repo_name=CI_ML)

    runs = github.pull_request(CI_ML, 9, "docs-typo")

    assert sorted(run.name for run in runs) == ["example-pipeline", "example-publish"]
    pipeline = only(runs, "example-pipeline")
    assert pipeline.conclusion == "success", pipeline.jobs["ml / gate"].log
    check_gate(pipeline)
    assert only(runs, "example-publish").jobs["publish / publish"].result == "skipped"
    created = github_api.requests_for("issues/create-comment")
    assert [r.path.rsplit("/repos/", 1)[1] for r in created] == [f"{CI_ML}/issues/9/comments"]
    # dvc-cache: "true" saved DVC's cache under its key for the next run
    assert [k for k in github.caches if k.startswith("ci-ml-dvc-Linux-")]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
