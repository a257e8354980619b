"""The DVC pipeline example adopted with the docs' caller, run whole (issue 16's bar).

An adopter's repository holds examples/credit-pipeline (a `dvc.yaml` whose `train` stage
makes the model, over `params.yaml`) in the layout of this repository, with the docs'
caller pointed at it by `working-directory` (docs/github-actions.md, "DVC pipelines").
A push to main gates and deploys the first model to the S3 registry (moto); then a
same-repository pull request whose only change is `params.yaml` runs the pipeline again,
and its sticky comment on the local GitHub API shows the params diff against
production, the data part of "What changed", the curves and the verdict, with the
`ci-ml/gates` status to match. The runner, the API server and the registry are those of
tests/test_caller_workflow.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_ml.registry import open_registry
from tests.conftest import REPO, git
from tests.credit_pipeline import PIPELINE, pipeline_project
from tests.github_api.server import GitHubAPIServer
from tests.registry.test_registry import moto_endpoint, s3_admin  # noqa: F401  (fixtures)
from tests.test_caller_workflow import (  # noqa: F401  (fixtures)
    ADOPTER,
    BUCKET,
    COMMIT,
    adopt,
    check_gate,
    ci_ml_release,
    docs_callers,
    gate_comments,
    host_adopter,
    hosting_ci_ml,
    only,
    registry_bucket,
)
from tests.workflow_runner import GitHub

pytestmark = pytest.mark.slow


def pipeline_caller(sha: str) -> str:
    """The docs' caller with the `with:` that their DVC section gives the example pipeline
    (`working-directory` names its folder; the config is that folder's ci-ml.yaml)."""
    page = (REPO / "docs" / "github-actions.md").read_text(encoding="utf-8")
    section = page.split("## DVC pipelines (dvc.yaml)\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    (given,) = [b for b in blocks if f"working-directory: {PIPELINE.as_posix()}\n" in b]
    head, rest = adopt(docs_callers()[0], sha).split("    with:\n", 1)
    secrets = rest.split("    secrets:\n", 1)[1]
    return f"{head}{given}    secrets:\n{secrets}"


@pytest.fixture
def github(
    tmp_path: Path,
    github_api: GitHubAPIServer,
    github_webhooks: Callable[..., dict[str, Any]],
    ci_ml_release: tuple[Path, str],  # noqa: F811
    moto_endpoint: str,  # noqa: F811
    registry_bucket: str,  # noqa: F811
) -> Iterator[GitHub]:
    """GitHub, hosting ci-ml and an adopter's fresh repository holding the DVC pipeline
    example (no dvc.lock, no data: a fresh clone) with the caller and the publisher."""
    hub = hosting_ci_ml(
        tmp_path / "github", github_api, github_webhooks, ci_ml_release, moto_endpoint
    )
    sha = ci_ml_release[1]
    project = pipeline_project(tmp_path / "credit-model")
    host_adopter(hub, project, pipeline_caller(sha), adopt(docs_callers()[1], sha))
    yield hub
    hub.close()


def dvc_caches(github: GitHub) -> list[str]:
    return [key for key in github.caches if key.startswith("ci-ml-dvc-Linux-")]


def change_params(repo: Path, branch: str, old: str, new: str) -> str:
    """A commit on ``branch`` whose only change is one line of the example's params.yaml,
    as its author edits it (comments kept); returns the commit."""
    git(repo, "checkout", "-q", "-b", branch)
    params = repo / PIPELINE / "params.yaml"
    text = params.read_text(encoding="utf-8")
    assert text.count(old) == 1, text
    params.write_text(text.replace(old, new), encoding="utf-8")
    git(repo, "add", str(params))
    git(repo, *COMMIT, "-m", f"params: {new.strip()}")
    git(repo, "checkout", "-q", "main")
    assert git(repo, "diff", "--name-only", "main", branch) == f"{PIPELINE.as_posix()}/params.yaml"
    return git(repo, "rev-parse", branch)


def test_a_params_change_gets_the_params_data_and_curves_on_its_pull_request(
    github: GitHub,
    github_api: GitHubAPIServer,
    moto_endpoint: str,  # noqa: F811
) -> None:
    # production: the first push to main trains the stage, passes (first_model: pass) and
    # is deployed once the environment's reviewer approves
    github.approvers = ["octocat"]
    pushed = only(github.push(ADOPTER, "main"), "ml")
    assert pushed.conclusion == "success", pushed.jobs["ml / deploy"].log
    outputs = check_gate(pushed)
    assert "Running stage 'train':\n> python train.py" in pushed.jobs["ml / gate"].log
    assert pushed.jobs["ml / deploy"].result == "success", pushed.jobs["ml / deploy"].log
    registry = open_registry(f"s3://{BUCKET}/models?endpoint_url={moto_endpoint}")
    production = registry.get_production()
    assert production is not None and production.digest == outputs["model-digest"]
    pushed_calls = len(github_api.requests)
    (pushed_cache,) = dvc_caches(github)  # saved by the gate job

    # a pull request whose only change is params.yaml: far fewer boosting rounds
    repo = github.repos[ADOPTER].path
    head = change_params(repo, "fewer-rounds", "max_iter: 200", "max_iter: 3")

    runs = github.pull_request(ADOPTER, 12, "fewer-rounds")

    ml = only(runs, "ml")
    gate = ml.jobs["ml / gate"]
    assert gate.result == "failure", gate.log  # the gate blocked: the job fails, after reporting
    assert gate.outputs["verdict"] == "fail"
    assert ml.jobs["ml / deploy"].result == "skipped"
    stored = ml.github.artifacts[(ml.id, "ci-ml-run")]
    card = json.loads((stored / "model.json").read_text())
    assert card["dvc"]["params"]["train.max_iter"] == 3  # the stage re-ran on the new params
    made = github_api.requests[pushed_calls:]
    created = [r for r in made if r.operation_id == "issues/create-comment"]
    assert [r.path.rsplit("/repos/", 1)[1] for r in created] == [f"{ADOPTER}/issues/12/comments"]
    body = created[0].json["body"]
    assert [c["body"] for c in gate_comments(github_api)] == [body]

    assert "ci-ml verdict: **FAIL**" in body
    changed = body.split(f"### What changed since production {production.version}\n", 1)[1]
    changed = changed.split("\n###", 1)[0].split("<details><summary>Model parameters", 1)[0]
    assert "**Params** (the dvc stage's): 1 changed" in changed
    assert "| train.max_iter | 200 | 3 |" in changed
    assert "**Data**: none changed." in changed  # same data, same split: only the params
    assert "2 dependencies" in changed  # train.py and data/train.csv, hashed in dvc.lock
    curves = body.split("<details><summary>Curves: ROC", 1)[1].split("</details>", 1)[0]
    assert "```mermaid" in curves and "xychart-beta" in curves
    assert 'title "ROC: candidate blue, production orange, chance grey"' in curves
    assert "roc_auc change" in body

    statuses = [r for r in made if r.operation_id == "repos/create-commit-status"]
    assert [(s.path.rsplit("/", 1)[1], s.json["context"], s.json["state"]) for s in statuses] == [
        (head, "ci-ml/gates", "failure")
    ]
    assert [r for r in made if r.operation_id == "repos/create-deployment"] == []
    assert registry.get_production() == production  # a pull request never deploys
    assert only(runs, "ml-publish").jobs["publish / publish"].result == "skipped"
    # params.yaml is in DVC's cache key: the pull request's run (whose restore key brings
    # back the push's cache) saved one of its own, with the model its stage made
    assert dvc_caches(github)[0] == pushed_cache and len(dvc_caches(github)) == 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
