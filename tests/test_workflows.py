"""The GitHub workflows (.github/workflows) and composite actions (actions/*/action.yml).

Four kinds of check:

* zizmor, the GitHub Actions security linter, at its strictest persona: no findings.
* GitHub's own parser (npm @actions/workflow-parser, run by tests/workflow_parser/parse.mjs):
  no errors, including the callers' `with:` against the reusable workflows' inputs; and
  GitHub's expression engine deciding which events run the deploy job.
* Rules a user relies on: every action pinned to a reviewed commit, no `${{ }}` inside a
  script, read-only tokens unless a job asks for more, deploy only from the default branch
  after approval, forks never reach secrets or write tokens.
* The composite actions' `run:` steps, run the way a runner runs them (bash -eo pipefail,
  GITHUB_OUTPUT, GITHUB_ACTION_PATH, inputs through env:), on the example project.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflow_runner.runner import file_command_entries

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((REPO / "actions").glob("*/action.yml"))
PARSER = REPO / "tests" / "workflow_parser"
NPM_HINT = "npm ci --prefix tests/workflow_parser"
DOCS = REPO / "docs" / "github-actions.md"

# Every action this repository uses, at the commit its release tag points to. Checked by
# hand against each action's repository (see docs/github-actions.md); a change here is a
# reviewed upgrade, never a typo.
PINNED = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/setup-node": ("820762786026740c76f36085b0efc47a31fe5020", "v7.0.0"),
    "actions/cache": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "aws-actions/configure-aws-credentials": (
        "e6de054238d6b7531b4efff3b6587d9aade6a06c",
        "v6.2.3",
    ),
    "google-github-actions/auth": ("7c6bc770dae815cd3e89ee6cdf493a5fab2cc093", "v3.0.0"),
    "azure/login": ("f5d393ae46f8fde4be8b75f32e3fc50e654ad0ca", "v3.0.1"),
}
LOCAL_USES = ("./", "$/")
PERMISSION_LEVEL = {"none": 0, "read": 1, "write": 2}


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "on" not in document and True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def jobs(path: Path) -> dict[str, Any]:
    return load(path).get("jobs", {})


def steps_of(path: Path) -> list[dict[str, Any]]:
    document = load(path)
    if "runs" in document:
        return list(document["runs"].get("steps", []))
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def all_files() -> list[Path]:
    return [*WORKFLOWS, *ACTIONS]


def test_the_files_exist():
    assert {p.name for p in WORKFLOWS} >= {
        "ci.yml",
        "ml-pipeline.yml",
        "ml-publish.yml",
        "example-pipeline.yml",
        "example-publish.yml",
    }
    assert {p.parent.name for p in ACTIONS} >= {"setup", "run", "report", "deploy"}


# -- zizmor ---------------------------------------------------------------------------------


# The strictest persona; --offline: no GitHub API; --strict-collection: a file zizmor cannot
# read is an error, not a warning.
ZIZMOR_ARGS = ["--offline", "--strict-collection", "--persona", "auditor", "--no-progress"]
ZIZMOR_ARGS += ["--color", "never", ".github/", "actions/"]


def test_zizmor_finds_nothing():
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if zizmor is None:
        pytest.fail("zizmor is not installed: pip install -e '.[dev]'", pytrace=False)
    done = subprocess.run(
        [zizmor, *ZIZMOR_ARGS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout


# -- GitHub's parser ------------------------------------------------------------------------


def node(*args: str, stdin: str | None = None) -> Any:
    """Run tests/workflow_parser/parse.mjs; its JSON answer."""
    if shutil.which("node") is None:
        pytest.fail(f"node is not installed; install Node.js 20 or newer, then {NPM_HINT}")
    if not (PARSER / "node_modules" / "@actions" / "workflow-parser").is_dir():
        pytest.fail(f"GitHub's workflow parser is not installed; run: {NPM_HINT}", pytrace=False)
    done = subprocess.run(
        ["node", "--import", str(PARSER / "register.mjs"), str(PARSER / "parse.mjs"), *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def parsed() -> dict[str, list[str]]:
    answer = node("--root", str(REPO), *(rel(p) for p in all_files()))
    return {entry["file"]: entry["errors"] for entry in answer["files"]}


@pytest.mark.parametrize("path", all_files(), ids=rel)
def test_github_parser_finds_no_errors(parsed, path):
    assert parsed[rel(path)] == []


def test_the_parser_reports_errors(tmp_path):
    """The parser check can fail: a caller passing an input the workflow lacks is caught."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(REPO / ".github/workflows/ml-pipeline.yml", workflows)
    caller = (REPO / ".github/workflows/example-pipeline.yml").read_text(encoding="utf-8")
    (workflows / "caller.yml").write_text(caller.replace("extras: gx", "extra: gx"))
    (tmp_path / "action.yml").write_text("name: x\ndescription: y\nruns:\n  using: composite\n")

    answer = node("--root", str(tmp_path), ".github/workflows/caller.yml", "action.yml")

    caller_errors, action_errors = (entry["errors"] for entry in answer["files"])
    assert any("extra is not defined in the referenced workflow" in e for e in caller_errors)
    assert any("steps" in e for e in action_errors)


# -- pinning --------------------------------------------------------------------------------

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?:\s+#\s*(?P<comment>.*))?$")


def uses_lines(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [USES_LINE.match(line) for line in lines]
    return [(m["ref"], (m["comment"] or "").strip()) for m in found if m]


@pytest.mark.parametrize("path", all_files(), ids=rel)
def test_every_action_is_pinned_to_a_reviewed_commit(path):
    yaml_uses = [s["uses"] for s in steps_of(path) if "uses" in s]
    if "jobs" in load(path):
        yaml_uses += [job["uses"] for job in jobs(path).values() if "uses" in job]
    text_uses = uses_lines(path)
    assert sorted(ref for ref, _ in text_uses) == sorted(yaml_uses)  # none hidden from the scan

    for ref, comment in text_uses:
        if ref.startswith(LOCAL_USES):
            continue  # this repository, at the running commit
        action, _, sha = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{ref}: pin to a full commit SHA"
        assert action in PINNED, f"{ref}: not a reviewed action; add it to PINNED with care"
        assert (sha, comment) == PINNED[action], f"{ref} # {comment}: expected {PINNED[action]}"


# -- scripts --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", all_files(), ids=rel)
def test_no_expression_inside_a_script(path):
    """Values reach scripts through env:, so no input or event text becomes shell code."""
    for step in steps_of(path):
        if "run" in step:
            assert "${{" not in step["run"], f"{path.name}: {step.get('name')}"


@pytest.mark.parametrize("path", ACTIONS, ids=rel)
def test_composite_steps_name_their_shell_and_known_inputs(path):
    action = load(path)
    declared = set(action.get("inputs", {}))
    ids = {step["id"] for step in action["runs"]["steps"] if "id" in step}
    text = path.read_text(encoding="utf-8")
    assert set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text)) <= declared
    assert set(re.findall(r"steps\.([A-Za-z0-9_-]+)\.", text)) <= ids
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", step.get("name")
    for name, spec in {**action.get("inputs", {}), **action.get("outputs", {})}.items():
        assert spec.get("description"), f"{path.parent.name}: {name} has no description"


# -- permissions ----------------------------------------------------------------------------


def levels(permissions: Any) -> dict[str, int]:
    """A permissions block as {scope: level}; a missing scope is none."""
    if permissions in ({}, None):
        return {}
    assert isinstance(permissions, dict), f"use explicit scopes, not {permissions!r}"
    return {scope: PERMISSION_LEVEL[level] for scope, level in permissions.items()}


@pytest.mark.parametrize("path", WORKFLOWS, ids=rel)
def test_the_default_token_is_read_only(path):
    document = load(path)
    assert "permissions" in document, f"{path.name}: set top-level permissions"
    assert max(levels(document["permissions"]).values(), default=0) <= 1


def test_writes_are_asked_for_by_the_jobs_that_need_them():
    expected = {
        ("ml-pipeline.yml", "gate"): {"pull-requests", "statuses", "id-token"},
        ("ml-pipeline.yml", "deploy"): {"deployments", "id-token"},
        ("ml-combine.yml", "combine"): {"pull-requests"},
        ("ml-publish.yml", "publish"): {"pull-requests", "statuses"},
        ("ml-monitor.yml", "monitor"): {"issues"},
        ("ml-monitor.yml", "retrain"): {"actions"},
    }
    found = {}
    for path in WORKFLOWS:
        for name, job in jobs(path).items():
            if "uses" in job:
                continue  # a caller: checked against its callee below
            writes = {s for s, level in levels(job.get("permissions")).items() if level == 2}
            if writes:
                found[(path.name, name)] = writes
    assert found == expected


@pytest.mark.parametrize(
    "path", [p for p in WORKFLOWS if any("uses" in j for j in jobs(p).values())], ids=rel
)
def test_callers_grant_what_the_called_jobs_ask_for(path):
    """GitHub refuses to start a called job that asks for more than its caller grants."""
    for job in jobs(path).values():
        ref = job.get("uses", "")
        if not ref.startswith(LOCAL_USES):
            continue
        granted = levels(job.get("permissions"))
        for name, called in jobs(REPO / ref[2:]).items():
            for scope, level in levels(called.get("permissions")).items():
                assert granted.get(scope, 0) >= level, f"{ref} job {name} needs {scope}"


# -- deployment -----------------------------------------------------------------------------


def deploy_job() -> dict[str, Any]:
    return jobs(REPO / ".github/workflows/ml-pipeline.yml")["deploy"]


def test_deploy_waits_for_approval_and_never_overlaps():
    job = deploy_job()
    assert job["environment"] == "production"
    assert job["needs"] == "gate"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert "${{ inputs.name }}" in job["concurrency"]["group"]


def event(
    name: str,
    ref: str,
    verdict: str,
    default_branch: str = "main",
    deploy_inconclusive: bool = False,
) -> dict[str, Any]:
    return {
        "github": {
            "event_name": name,
            "ref": ref,
            "event": {"repository": {"default_branch": default_branch}},
        },
        "needs": {"gate": {"outputs": {"verdict": verdict}}},
        "inputs": {"deploy-inconclusive": deploy_inconclusive},
    }


def test_only_a_passing_push_to_the_default_branch_deploys():
    # inconclusive too, when the caller asks for it: the environment's approval is the policy's
    cases = {
        "push to main, pass": (event("push", "refs/heads/main", "pass"), True),
        "push to trunk (default), pass": (
            event("push", "refs/heads/trunk", "pass", default_branch="trunk"),
            True,
        ),
        "push to a branch, pass": (event("push", "refs/heads/feature", "pass"), False),
        "push of a tag, pass": (event("push", "refs/tags/main", "pass"), False),
        "pull request, pass": (event("pull_request", "refs/pull/7/merge", "pass"), False),
        "push to main, fail": (event("push", "refs/heads/main", "fail"), False),
        "push to main, inconclusive": (event("push", "refs/heads/main", "inconclusive"), False),
        "push to main, inconclusive, deploy-inconclusive": (
            event("push", "refs/heads/main", "inconclusive", deploy_inconclusive=True),
            True,
        ),
        "push to main, fail, deploy-inconclusive": (
            event("push", "refs/heads/main", "fail", deploy_inconclusive=True),
            False,
        ),
        "pull request, inconclusive, deploy-inconclusive": (
            event("pull_request", "refs/pull/7/merge", "inconclusive", deploy_inconclusive=True),
            False,
        ),
        "push to main, error": (event("push", "refs/heads/main", "error"), False),
        "workflow_dispatch on main": (event("workflow_dispatch", "refs/heads/main", "pass"), False),
    }
    request = {"expression": deploy_job()["if"], "contexts": [c for c, _ in cases.values()]}

    answer = node("--eval", stdin=json.dumps(request))

    assert dict(zip(cases, answer["results"], strict=True)) == {
        name: expected for name, (_, expected) in cases.items()
    }


# -- fork safety ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=rel)
def test_no_pull_request_target(path):
    assert "pull_request_target" not in load(path)["on"]
    assert "pull_request_target" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", all_files(), ids=rel)
def test_checkouts_keep_no_credentials(path):
    for step in steps_of(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=rel)
def test_secrets_are_passed_by_name_only(path):
    """`secrets: inherit` would hand every secret to the called workflow."""
    for job in jobs(path).values():
        assert job.get("secrets") != "inherit"


def test_the_publisher_runs_no_pull_request_code():
    publisher = REPO / ".github/workflows/ml-publish.yml"
    (job,) = jobs(publisher).values()
    steps = job["steps"]
    assert not any(str(s.get("uses", "")).startswith("actions/checkout") for s in steps)
    (download,) = [s for s in steps if "download-artifact" in str(s.get("uses", ""))]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["path"].startswith("${{ runner.temp }}")  # outside the workspace
    assert "secrets." not in publisher.read_text(encoding="utf-8")
    assert "head_repository.full_name != github.repository" in job["if"]  # forks only


def test_the_publisher_follows_the_pipeline():
    caller = load(REPO / ".github/workflows/example-publish.yml")
    pipeline = load(REPO / ".github/workflows/example-pipeline.yml")
    assert caller["on"]["workflow_run"]["workflows"] == [pipeline["name"]]
    assert caller["on"]["workflow_run"]["types"] == ["completed"]


def test_the_run_directory_is_uploaded_after_the_report():
    """`ci-ml report --github` leaves github-pr.json in a fork's run directory for the
    publisher, so the upload must come after it, and the publisher must read the same name."""
    pipeline = REPO / ".github/workflows/ml-pipeline.yml"
    gate = jobs(pipeline)["gate"]
    names = [s.get("name", "") for s in gate["steps"]]
    report = gate["steps"][names.index("Report on the pull request or commit")]
    assert names.index("Report on the pull request or commit") < names.index(
        "Upload the run directory"
    )
    assert "FORK" not in report["if"]  # forks too: ci-ml itself defers to the publisher
    (artifact,) = [s for s in gate["steps"] if "upload-artifact" in str(s.get("uses", ""))]
    assert artifact["with"]["name"] == "${{ inputs.name }}-run"
    publisher = REPO / ".github/workflows/ml-publish.yml"
    (download,) = [s for s in steps_of(publisher) if "download-artifact" in str(s.get("uses"))]
    assert download["with"]["name"] == "${{ inputs.name }}-run"

    def default_name(path: Path) -> str:
        return str(load(path)["on"]["workflow_call"]["inputs"]["name"]["default"])

    assert default_name(publisher) == default_name(pipeline)


@pytest.mark.parametrize(
    "path", [p for p in WORKFLOWS if "workflow_call" in load(p)["on"]], ids=rel
)
def test_reusable_workflows_document_their_interface(path):
    interface = load(path)["on"]["workflow_call"]
    for kind in ("inputs", "secrets", "outputs"):
        for name, spec in (interface.get(kind) or {}).items():
            assert spec.get("description"), f"{path.name}: {kind} {name} has no description"


# -- runners, cloud credentials, the matrix's fan-in ---------------------------------------

RUNS_ON = "${{ startsWith(inputs.runs-on, '[') && fromJSON(inputs.runs-on) || inputs.runs-on }}"
OIDC_INPUTS = {
    "aws-role-to-assume": "aws-actions/configure-aws-credentials",
    "gcp-workload-identity-provider": "google-github-actions/auth",
    "azure-client-id": "azure/login",
}


@pytest.mark.parametrize(
    "name", ["ml-pipeline.yml", "ml-monitor.yml", "ml-publish.yml", "ml-combine.yml"]
)
def test_reusable_workflows_run_on_the_runner_asked_for(name):
    path = REPO / ".github/workflows" / name
    declared = load(path)["on"]["workflow_call"]["inputs"]["runs-on"]
    assert (declared["type"], declared["default"]) == ("string", "ubuntu-latest")
    assert {job["runs-on"] for job in jobs(path).values()} == {RUNS_ON}


def test_runs_on_takes_a_label_or_a_json_list_of_labels():
    from tests.workflow_runner.expressions import Expressions

    labels = ["ubuntu-latest", "gpu-4x", '["self-hosted", "gpu"]']
    engine = Expressions()  # GitHub's expression engine
    try:
        found = [engine.value(RUNS_ON, {"inputs": {"runs-on": label}}) for label in labels]
    finally:
        engine.close()

    assert found == ["ubuntu-latest", "gpu-4x", ["self-hosted", "gpu"]]


def test_oidc_credentials_only_when_asked_for():
    """Each cloud's login runs only when its input is set, before anything reads the cloud;
    the jobs that use it ask for id-token: write, which a caller must grant (GitHub checks a
    called job's permissions when the workflow starts, used or not)."""
    action = load(REPO / "actions/credentials/action.yml")
    steps = action["runs"]["steps"]
    assert {s["if"]: s["uses"].partition("@")[0] for s in steps} == {
        f"inputs.{name} != ''": uses for name, uses in OIDC_INPUTS.items()
    }
    pipeline = load(PIPELINE)
    inputs = pipeline["on"]["workflow_call"]["inputs"]
    for job_name, before in (
        ("gate", "Pull, validate, train, evaluate, gate"),
        ("deploy", "Deploy"),
    ):
        job = jobs(PIPELINE)[job_name]
        assert job["permissions"]["id-token"] == "write"
        names = [s.get("name") for s in job["steps"]]
        login = job["steps"][names.index("Cloud credentials by OIDC")]
        assert names.index("Cloud credentials by OIDC") < names.index(before)
        assert login["if"] == " || ".join(f"inputs.{name} != ''" for name in OIDC_INPUTS)
        assert set(login["with"]) == set(action["inputs"]) <= set(inputs)
        assert all(inputs[name]["default"] == "" for name in action["inputs"])
        # a static key, when given, still wins; without one the OIDC step's variables stay
        used = job["steps"][names.index(before)]["env"]
        assert used["AWS_ACCESS_KEY_ID"] == (
            "${{ secrets.AWS_ACCESS_KEY_ID || env.AWS_ACCESS_KEY_ID }}"
        )


def test_the_fan_in_reads_the_legs_as_data_and_only_comments():
    path = REPO / ".github/workflows/ml-combine.yml"
    (job,) = jobs(path).values()
    assert job["permissions"] == {"pull-requests": "write"}
    assert not any(str(s.get("uses", "")).startswith("actions/checkout") for s in job["steps"])
    assert "secrets." not in path.read_text(encoding="utf-8")
    (download,) = [s for s in job["steps"] if "download-artifact" in str(s.get("uses", ""))]
    assert download["with"]["pattern"] == "${{ inputs.pattern }}"
    assert download["with"]["path"].startswith("${{ runner.temp }}")
    inputs = load(path)["on"]["workflow_call"]["inputs"]
    assert inputs["pattern"]["default"] == "*-run"  # what ml-pipeline.yml names its artifact
    pipeline_inputs = load(PIPELINE)["on"]["workflow_call"]["inputs"]
    assert (pipeline_inputs["comment"]["type"], pipeline_inputs["comment"]["default"]) == (
        "boolean",
        True,
    )
    assert gate_step("Report on the pull request or commit")["with"]["comment"] == (
        "${{ inputs.comment }}"
    )


# -- DVC pipelines -------------------------------------------------------------------------

PIPELINE = REPO / ".github/workflows/ml-pipeline.yml"
DVC_FILES = ["params.yaml", "dvc.yaml", "dvc.lock", "data.dvc", "models/churn/dvc.lock"]


def gate_step(name: str) -> dict[str, Any]:
    (step,) = [s for s in jobs(PIPELINE)["gate"]["steps"] if s.get("name") == name]
    return step


def test_the_gate_checks_out_the_history_it_is_asked_for():
    inputs = load(PIPELINE)["on"]["workflow_call"]["inputs"]
    assert (inputs["fetch-depth"]["type"], inputs["fetch-depth"]["default"]) == ("number", 0)
    assert "dvc#7547" in inputs["fetch-depth"]["description"]
    checkout = gate_step("Check out the project")
    assert checkout["with"] == {
        "persist-credentials": False,
        "fetch-depth": "${{ inputs.fetch-depth }}",
    }
    # the deploy job needs no history: one commit, actions/checkout's default
    (deploy_checkout,) = [s for s in deploy_job()["steps"] if "checkout" in str(s.get("uses"))]
    assert "fetch-depth" not in deploy_checkout["with"]


def test_experiment_refs_are_fetched_only_when_asked():
    inputs = load(PIPELINE)["on"]["workflow_call"]["inputs"]
    assert (inputs["fetch-experiments"]["type"], inputs["fetch-experiments"]["default"]) == (
        "boolean",
        False,
    )
    step = gate_step("Fetch DVC's experiment refs")
    names = [s.get("name") for s in jobs(PIPELINE)["gate"]["steps"]]
    assert names.index("Check out the project") < names.index(step["name"])
    contexts = [{"inputs": {"fetch-experiments": asked}} for asked in (False, True)]

    answer = node("--eval", stdin=json.dumps({"expression": step["if"], "contexts": contexts}))

    assert answer["results"] == [False, True]
    assert step["env"] == {"TOKEN": "${{ github.token }}"}  # the job's read-only token


def test_experiment_refs_are_fetched_without_showing_or_keeping_the_token(tmp_path):
    """The step's script against a real origin holding an experiment ref; a `git` first on
    PATH records what each call was given (arguments, and the header git was configured
    with) before running the real one."""
    origin = tmp_path / "origin"
    git_in(tmp_path, "init", "-q", "-b", "main", str(origin))
    git_in(origin, "commit", "-q", "--allow-empty", "-m", "baseline")
    git_in(origin, "commit", "-q", "--allow-empty", "-m", "exp")
    git_in(origin, "update-ref", "refs/exps/ab/cdef/bold-exp", "HEAD")
    git_in(origin, "reset", "-q", "--hard", "HEAD~1")
    workspace = tmp_path / "workspace"
    git_in(tmp_path, "clone", "-q", str(origin), str(workspace))
    record = tmp_path / "git-calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_git = shutil.which("git")
    (bin_dir / "git").write_text(
        f"#!{sys.executable}\n"
        "import json, os, subprocess, sys\n"
        f"header = subprocess.run([{real_git!r}, 'config', '--get',"
        " 'http.https://github.com/.extraheader'], capture_output=True, text=True).stdout\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'header': header.strip()}) + '\\n')\n"
        f"sys.exit(subprocess.run([{real_git!r}, *sys.argv[1:]]).returncode)\n"
    )
    (bin_dir / "git").chmod(0o755)
    token = "ghs_" + "s3cr3t" * 6
    step = gate_step("Fetch DVC's experiment refs")

    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=workspace,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "GITHUB_SERVER_URL": "https://github.com",
            "TOKEN": token,
        },
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert git_in(workspace, "for-each-ref", "--format=%(refname)", "refs/exps") == (
        "refs/exps/ab/cdef/bold-exp"
    )
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert not any(token in arg or basic in arg for c in calls(record) for arg in c["argv"])
    fetches = [c for c in calls(record) if c["argv"][:1] == ["fetch"]]
    assert fetches == [
        {
            "argv": ["fetch", "--no-tags", "origin", "+refs/exps/*:refs/exps/*"],
            "header": f"AUTHORIZATION: basic {basic}",
        }
    ]
    log = done.stdout + done.stderr
    assert token not in log
    assert log.count(basic) == 1 and f"::add-mask::{basic}" in log  # the runner hides it
    assert "DVC experiment refs: 1" in log
    for kept in (workspace / ".git" / "config", tmp_path / ".gitconfig"):  # repo, global
        text = kept.read_text(encoding="utf-8") if kept.exists() else ""
        assert token not in text and basic not in text, kept


def git_in(cwd: Path, *args: str) -> str:
    author = ["-c", "user.name=ci-ml tests", "-c", "user.email=tests@ci-ml.invalid"]
    done = subprocess.run(
        ["git", *author, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_dvc_cache_is_restored_with_the_key_the_setup_works_out():
    action = load(REPO / "actions" / "setup" / "action.yml")
    (restore,) = [s for s in action["runs"]["steps"] if s.get("name") == "Restore DVC's cache"]
    assert restore["uses"].startswith("actions/cache@")
    assert restore["with"] == {
        "path": "${{ steps.dvc.outputs.dir }}",
        "key": "${{ steps.dvc.outputs.key }}",
        "restore-keys": "${{ steps.dvc.outputs.restore-key }}",
    }


def test_the_dvc_cache_key_changes_with_dvc_lock_params_and_dvc_files(runner, project):
    workdir = runner.workspace / "ml"
    shutil.copytree(project, workdir, symlinks=True)
    (workdir / "models" / "churn").mkdir(parents=True)
    for name in DVC_FILES[:3] + DVC_FILES[4:]:
        (workdir / name).write_text(f"# {name}\n", encoding="utf-8")
    git_in(workdir, "add", "-A")
    git_in(workdir, "commit", "-q", "-m", "a dvc.yaml pipeline")

    def key() -> tuple[str, str]:
        result = runner.run("setup", {"working-directory": "ml", "dvc-cache": "true"}, only={"dvc"})
        assert result.code == 0, result.log
        return result.steps["dvc"]["key"], result.steps["dvc"]["restore-key"]

    first, restore_key = key()
    assert restore_key == "ci-ml-dvc-Linux-" and first.startswith(restore_key)
    seen = {first}
    for name in DVC_FILES:
        with (workdir / name).open("a", encoding="utf-8") as changed:
            changed.write("# changed\n")
        changed_key, changed_restore_key = key()
        assert changed_key not in seen, f"the key misses a change of {name}"
        assert changed_restore_key == restore_key  # so the older cache is still restored
        seen.add(changed_key)

    # what does not name data leaves the key alone: other files, and files git does not track
    (workdir / "ci-ml.yaml").write_text("# changed\n", encoding="utf-8")
    (workdir / "scratch").mkdir()
    (workdir / "scratch" / "dvc.lock").write_text("untracked\n", encoding="utf-8")
    assert key()[0] == changed_key


def test_a_project_in_a_folder_of_a_dvc_repository_caches_that_repositorys_cache(runner, project):
    # like examples/credit-pipeline: the project's dvc.yaml in a folder, .dvc/ at the root
    workdir = runner.workspace / "ml"
    shutil.copytree(project, workdir, symlinks=True)
    (workdir / "models" / "churn").mkdir(parents=True)
    (workdir / "models" / "churn" / "params.yaml").write_text("seed: 0\n", encoding="utf-8")
    git_in(workdir, "add", "-A")
    git_in(workdir, "commit", "-q", "-m", "a project in a folder")

    def dvc_step(folder: str) -> dict[str, str]:
        result = runner.run(
            "setup", {"working-directory": folder, "dvc-cache": "true"}, only={"dvc"}
        )
        assert result.code == 0, result.log
        return result.steps["dvc"]

    nested = dvc_step("ml/models/churn")
    assert nested.get("cache") == "true"
    assert nested["dir"] == str(workdir / ".dvc" / "cache")
    # keyed on the DVC repository's files (data.dvc at its root included), wherever it starts
    assert nested["key"] == dvc_step("ml")["key"]
    (runner.workspace / "elsewhere").mkdir()
    assert dvc_step("elsewhere").get("cache") is None  # nothing there for DVC to cache


# What GitHub runs a workflow for: its `on:` filters for an event and the files it changes
# (docs: "Workflow syntax", filter pattern cheat sheet). `*` stops at `/`, `**` does not,
# `?` and `+` repeat the character before them, a `!` in `paths` excludes again.


def filter_pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] in "?+":
            out, i = out + pattern[i], i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        elif pattern[i] == "\\":
            out, i = out + re.escape(pattern[i + 1]), i + 2
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def filtered_in(patterns: list[str], name: str) -> bool:
    """`branches:`/`paths:`: the last pattern that matches decides; `!` excludes."""
    included = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if filter_pattern(pattern.removeprefix("!")).fullmatch(name):
            included = not negated
    return included


def runs_for(on: Any, event_name: str, branch: str, changed: list[str]) -> bool:
    """Whether `on:` starts the workflow for an event on ``branch`` (a pull request's
    base) changing ``changed``; a pull request's action is `synchronize`."""
    if isinstance(on, str | list):
        return event_name in ([on] if isinstance(on, str) else on)
    if event_name not in on:
        return False
    spec = on[event_name] or {}
    if "synchronize" not in spec.get("types", ["opened", "synchronize", "reopened"]):
        return False
    if "branches" in spec and not filtered_in(spec["branches"], branch):
        return False
    if "branches-ignore" in spec and filtered_in(spec["branches-ignore"], branch):
        return False
    if "paths" in spec and not any(filtered_in(spec["paths"], f) for f in changed):
        return False
    ignored = spec.get("paths-ignore", [])
    return not (ignored and all(filtered_in(ignored, f) for f in changed))


def docs_dvc_section() -> str:
    text = DOCS.read_text(encoding="utf-8")
    return text.split("## DVC pipelines (dvc.yaml)\n", 1)[1].split("\n## ", 1)[0]


def dvc_trigger_callers() -> dict[str, dict[str, Any]]:
    """The callers a user copies or runs, and the path filter the docs show."""
    blocks = re.findall(r"```yaml\n(.*?)```", docs_dvc_section(), flags=re.DOTALL)
    (snippet,) = [b for b in blocks if "paths:" in b]
    callers = {
        "example-pipeline.yml": load(REPO / ".github/workflows/example-pipeline.yml")["on"],
        "docs caller": yaml_on(docs_callers()[0]),
        "docs path filter": yaml_on(snippet),
    }
    return callers


def yaml_on(text: str) -> Any:
    document = yaml.safe_load(text)
    return document["on"] if "on" in document else document[True]


@pytest.mark.parametrize("changed", DVC_FILES)
@pytest.mark.parametrize("caller", ["example-pipeline.yml", "docs caller", "docs path filter"])
def test_a_change_to_a_dvc_file_alone_runs_the_gate(caller, changed):
    on = dvc_trigger_callers()[caller]
    assert runs_for(on, "pull_request", "main", [changed])
    assert runs_for(on, "push", "main", [changed])


def test_the_trigger_check_can_fail():
    """The filters are really read: a change the docs' filter leaves out runs nothing, and
    a paths-ignore of lock files or a missing branch would drop a dvc.lock change."""
    snippet = dvc_trigger_callers()["docs path filter"]
    assert not runs_for(snippet, "pull_request", "main", ["README.md"])
    assert runs_for(snippet, "pull_request", "main", ["README.md", "src/train.py"])
    ignoring = {"pull_request": {"paths-ignore": ["**.lock", "docs/**"]}}
    assert not runs_for(ignoring, "pull_request", "main", ["dvc.lock", "docs/x.md"])
    excluding = {"pull_request": {"paths": ["**", "!**/dvc.lock"]}}
    assert not runs_for(excluding, "pull_request", "main", ["models/churn/dvc.lock"])
    assert not runs_for({"push": {"branches": ["main"]}}, "push", "dev", ["dvc.lock"])
    assert not runs_for({"push": None}, "pull_request", "main", ["dvc.lock"])


# -- the caller in the docs -----------------------------------------------------------------


def docs_callers() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return [b for b in blocks if "OWNER/ci-ml/.github/workflows/" in b]


def test_the_docs_callers_are_valid_workflows(tmp_path):
    """The callers in docs/github-actions.md, with OWNER and SHA filled in, pass the parser
    (inputs checked against this repository's reusable workflows) and the rules above."""
    callers = docs_callers()
    assert len(callers) == 3  # the pipeline, the publisher, the matrix with its fan-in
    workflows = tmp_path / ".github" / "workflows"
    shutil.copytree(REPO / ".github" / "workflows", workflows)
    names = []
    for number, block in enumerate(callers):
        text = re.sub(r"OWNER/ci-ml/(\.github/workflows/[\w.-]+)@SHA", r"$/\1", block)
        path = workflows / f"docs-caller-{number}.yml"
        path.write_text(text, encoding="utf-8")
        names.append(rel_to(path, tmp_path))
        assert "${{" not in "".join(s.get("run", "") for s in steps_of_caller(path))
        assert max(levels(load(path)["permissions"]).values(), default=0) <= 1
        for job in jobs(path).values():
            granted = levels(job.get("permissions"))
            for called in jobs(workflows / Path(job["uses"][2:]).name).values():
                for scope, level in levels(called.get("permissions")).items():
                    assert granted.get(scope, 0) >= level, f"docs caller lacks {scope}"
    answer = node("--root", str(tmp_path), *names)
    assert [entry["errors"] for entry in answer["files"]] == [[], [], []]


def rel_to(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def steps_of_caller(path: Path) -> list[dict[str, Any]]:
    return [s for job in jobs(path).values() for s in job.get("steps", [])]


def test_the_docs_name_every_pin():
    text = DOCS.read_text(encoding="utf-8")
    for action, (sha, version) in PINNED.items():
        assert f"{action}@{sha}" in text and version in text, action


# -- running the composite actions' scripts -------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


class CompositeRunner:
    """Runs an action's `run:` steps as the runner does; `uses:` steps are skipped.

    The setup action's install step is never run here: it would install into the very
    environment that runs the tests.

    Expressions in env:, working-directory: and the outputs are the plain lookups the
    actions use (inputs.x, steps.id.outputs.y, github.x.y); anything else is an error.
    """

    def __init__(self, workspace: Path, env: dict[str, str], github: dict[str, Any]) -> None:
        self.workspace, self.env, self.github = workspace, env, github

    def lookup(self, name: str, inputs: dict[str, str], steps: dict[str, Any]) -> str:
        head, _, rest = name.partition(".")
        if head == "inputs":
            return inputs[rest]
        if head == "steps":
            step, _, output = rest.partition(".outputs.")
            return steps.get(step, {}).get(output, "")
        if head == "github":
            value: Any = self.github
            for part in rest.split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            return "" if value is None else str(value)
        raise AssertionError(f"the step runner does not know ${{{{ {name} }}}}")

    def expand(self, text: Any, inputs: dict[str, str], steps: dict[str, Any]) -> str:
        return EXPRESSION.sub(lambda m: self.lookup(m[1], inputs, steps), str(text))

    def run(
        self, action: str, given: dict[str, str] | None = None, only: set[str] | None = None
    ) -> RunResult:
        """Run the action's `run:` steps (those with an id in ``only``, if given)."""
        path = REPO / "actions" / action / "action.yml"
        spec = load(path)
        inputs = {k: str(v.get("default", "")) for k, v in spec.get("inputs", {}).items()}
        assert set(given or {}) <= set(inputs), f"{action} has no input {set(given or {})}"
        inputs.update(given or {})
        steps: dict[str, dict[str, str]] = {}
        logs = []
        for number, step in enumerate(spec["runs"]["steps"]):
            if "uses" in step or (only is not None and step.get("id") not in only):
                continue
            assert "if" not in step, "the step runner does not evaluate if:"
            outputs_file = self.workspace.parent / f"output-{action}-{number}"
            outputs_file.write_text("")
            step_env = {k: self.expand(v, inputs, steps) for k, v in step.get("env", {}).items()}
            cwd = self.workspace / self.expand(step.get("working-directory", "."), inputs, steps)
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=cwd,
                env={
                    **self.env,
                    **step_env,
                    "GITHUB_OUTPUT": str(outputs_file),
                    "GITHUB_ACTION_PATH": str(path.parent),
                },
                capture_output=True,
                text=True,
                check=False,
            )
            logs.append(done.stdout + done.stderr)
            steps[step.get("id", str(number))] = read_outputs(outputs_file)
            if done.returncode != 0:
                return RunResult(done.returncode, {}, steps, "\n".join(logs))
        outputs = {
            name: self.expand(value["value"], inputs, steps)
            for name, value in spec.get("outputs", {}).items()
        }
        return RunResult(0, outputs, steps, "\n".join(logs))


class RunResult:
    def __init__(self, code: int, outputs: dict[str, str], steps: dict[str, Any], log: str) -> None:
        self.code, self.outputs, self.steps, self.log = code, outputs, steps, log


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it; an action writes each output once."""
    entries = file_command_entries(path)
    names = [name for name, _ in entries]
    for name in names:
        assert names.count(name) == 1, f"output {name} written twice"
    return dict(entries)


@pytest.fixture
def runner(tmp_path: Path) -> CompositeRunner:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    # a runner starts clean: no credentials left in this test process by other fixtures
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_REPOSITORY": "octo-org/models",
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
    }
    return CompositeRunner(workspace, env, {"event": {"repository": {"visibility": "public"}}})


def fake_ci_ml(runner: CompositeRunner, tmp_path: Path) -> Path:
    """A `ci-ml` first on PATH that records its arguments and chosen variables."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    record = tmp_path / "ci-ml-calls.jsonl"
    script = bin_dir / "ci-ml"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    keep = ('GITHUB_TOKEN', 'CI_ML_REGISTRY_URL', 'AWS_ACCESS_KEY_ID')\n"
        "    env = {k: os.environ[k] for k in keep if k in os.environ}\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': env}) + '\\n')\n"
        "sys.exit(json.loads(os.environ.get('FAKE_EXIT', '{}')).get(sys.argv[1], 0))\n"
    )
    script.chmod(0o755)
    runner.env["PATH"] = f"{bin_dir}{os.pathsep}{runner.env['PATH']}"
    return record


def calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_setup_installs_the_ci_ml_the_action_belongs_to(runner):
    result = runner.run("setup", {"extras": " gx, s3 "}, only={"plan"})

    plan = result.steps["plan"]
    assert plan["spec"] == f"{REPO}[gx,s3]"
    assert plan["pip-key"].startswith("ci-ml-pip-Linux-X64-py")
    assert plan["pip-dir"]


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        ("ci-ml==0.2.0", "ci-ml[s3]==0.2.0"),
        (
            "ci-ml @ git+https://example.invalid/ci-ml@abc",
            "ci-ml[s3] @ git+https://example.invalid/ci-ml@abc",
        ),
    ],
)
def test_setup_adds_the_extras_to_a_requirement(runner, source, spec):
    result = runner.run(
        "setup", {"extras": "s3", "source": source, "pip-cache": "false"}, only={"plan"}
    )

    assert result.steps["plan"] == {"spec": spec}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"extras": "s3; rm -rf /"}, "must be names separated by commas"),
        ({"source": "./missing"}, "No such file or directory"),
        ({"source": "."}, "has no pyproject.toml"),
    ],
)
def test_setup_refuses_bad_inputs(runner, given, message):
    result = runner.run("setup", given, only={"plan"})

    assert result.code != 0
    assert message in result.log


@pytest.mark.parametrize(
    ("dvc_cache", "visibility", "cached"),
    [("auto", "public", False), ("auto", "private", True), ("true", "public", True)],
)
def test_setup_keeps_dvc_cache_only_where_data_cannot_leak(
    runner, project, dvc_cache, visibility, cached
):
    shutil.copytree(project, runner.workspace / "ml", symlinks=True)
    runner.github["event"]["repository"]["visibility"] = visibility

    result = runner.run("setup", {"working-directory": "ml", "dvc-cache": dvc_cache}, only={"dvc"})

    assert result.code == 0, result.log
    dvc = result.steps["dvc"]
    assert (dvc.get("cache") == "true") is cached
    if cached:
        assert dvc["dir"] == str(runner.workspace / "ml" / ".dvc" / "cache")
        assert re.fullmatch(r"ci-ml-dvc-Linux-[0-9a-f]{16}", dvc["key"])


@pytest.mark.slow
def test_run_on_the_example_project(runner, project):
    shutil.copytree(project, runner.workspace / "ml", symlinks=True)

    result = runner.run("run", {"working-directory": "ml"})

    assert result.code == 0, result.log
    run_dir = runner.workspace / "ml" / ".ci-ml" / "runs" / "github-4242-1"
    card = json.loads((run_dir / "model.json").read_text())
    assert result.outputs == {
        "verdict": "pass",
        "exit-code": "0",
        "run-dir": str(run_dir),
        "report": str(run_dir / "report.md"),
        "model-digest": card["digest"],
    }
    assert "ci-ml verdict" in (run_dir / "report.md").read_text()
    assert "::group::ci-ml train" in result.log


@pytest.mark.slow
def test_run_with_a_blocking_gate(runner, project):
    workdir = runner.workspace / "ml"
    shutil.copytree(project, workdir, symlinks=True)
    config = workdir / "ci-ml.yaml"
    # a gate no model reaches; a small model is enough to miss it
    text = config.read_text().replace("min: 0.78", "min: 0.999")
    config.write_text(text.replace("max_iter: 200", "max_iter: 10"))

    result = runner.run("run", {"working-directory": "ml"})

    assert result.code == 1, result.log
    outputs = result.steps["run"]
    assert (outputs["verdict"], outputs["exit-code"]) == ("fail", "1")
    assert Path(outputs["report"]).is_file()  # the report still says why
    assert "::error title=ci-ml gate::ci-ml gate exited 1 (a gate blocked" in result.log


def test_run_after_blocked_data_gates_still_gates_and_reports(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    runner.env["FAKE_EXIT"] = json.dumps({"validate": 1, "gate": 1})

    result = runner.run("run", {"fail-step": "false"})

    assert result.code == 0, result.log  # fail-step false: the job decides later
    assert [c["argv"][0] for c in calls(record)] == ["pull", "validate", "gate", "report"]
    assert (result.outputs["verdict"], result.outputs["exit-code"]) == ("error", "1")
    assert "ci-ml train: skipped, the data gates blocked the candidate" in result.log


@pytest.mark.parametrize(
    ("code", "meaning"), [(3, "an outside service failed"), (70, "--traceback")]
)
def test_run_stops_at_an_error(runner, tmp_path, code, meaning):
    record = fake_ci_ml(runner, tmp_path)
    runner.env["FAKE_EXIT"] = json.dumps({"pull": code})

    result = runner.run("run")

    assert result.code == code
    assert [c["argv"][0] for c in calls(record)] == ["pull"]
    assert result.steps["run"]["exit-code"] == str(code)
    assert meaning in result.log


def test_run_refuses_an_unknown_step(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)

    result = runner.run("run", {"steps": "pull *", "fail-step": "false"})

    assert result.code == 0
    assert (result.outputs["verdict"], result.outputs["exit-code"]) == ("error", "2")
    assert "unknown step '*'" in result.log
    assert [c["argv"][0] for c in calls(record)] == ["pull"]


def test_run_gates_experiments_without_registering(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)

    result = runner.run("run", {"steps": "experiments"})

    assert result.code == 0, result.log
    (call,) = calls(record)
    assert call["argv"][0] == "experiments" and call["argv"][-1] == "--no-register"


def test_the_pipeline_gates_experiments_when_asked():
    gate = load(REPO / ".github/workflows/ml-pipeline.yml")["jobs"]["gate"]
    (run,) = [s for s in gate["steps"] if s.get("id") == "run"]
    expression = run["with"]["steps"]
    assert "inputs.experiments && 'experiments'" in expression
    assert "'pull validate train evaluate gate report'" in expression


def test_run_passes_the_registry_and_credentials(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    runner.env["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE"  # as the step's env: would

    result = runner.run("run", {"steps": "pull", "registry-url": "s3://bucket/models"})

    assert result.code == 0, result.log
    (call,) = calls(record)
    assert call["argv"] == [
        "pull",
        "--config",
        "ci-ml.yaml",
        "--run-dir",
        result.outputs["run-dir"],
    ]
    assert call["env"] == {
        "CI_ML_REGISTRY_URL": "s3://bucket/models",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    }
    assert result.outputs["verdict"] == ""  # no gate ran


def test_run_keeps_odd_run_files_out_of_the_outputs(runner, tmp_path):
    fake_ci_ml(runner, tmp_path)
    run_dir = runner.workspace / "run"
    run_dir.mkdir()
    (run_dir / "gate-report.json").write_text(json.dumps({"verdict": "pass\nmodel-digest=x"}))
    (run_dir / "model.json").write_text(json.dumps({"digest": "not-hex"}))

    result = runner.run("run", {"steps": "gate", "run-dir": "run"})

    assert result.outputs["verdict"] == ""
    assert result.outputs["model-digest"] == ""
    assert list(read_outputs(Path(runner.workspace.parent / "output-run-0"))) == [
        "run-dir",
        "verdict",
        "exit-code",
        "report",
        "model-digest",
    ]


def test_report_publishes_a_run_of_this_job(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    (runner.workspace / "run").mkdir()

    result = runner.run("report", {"run-dir": "run", "github-token": "ghs_token"})

    assert result.code == 0, result.log
    (call,) = calls(record)
    run_dir = str(runner.workspace / "run")
    assert call["argv"] == [
        "report",
        "--github",
        "--comment",
        "--config",
        "ci-ml.yaml",
        "--run-dir",
        run_dir,
    ]
    assert call["env"] == {"GITHUB_TOKEN": "ghs_token"}
    assert result.outputs["report"] == f"{run_dir}/report.md"


def test_report_leaves_the_comment_to_the_fan_in_when_asked(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    (runner.workspace / "run").mkdir()

    result = runner.run("report", {"run-dir": "run", "comment": "false"})

    assert result.code == 0, result.log
    (call,) = calls(record)
    assert call["argv"][:3] == ["report", "--github", "--no-comment"]


def test_report_publishes_a_fork_run_as_data(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    downloaded = tmp_path / "runner-temp" / "ci-ml-publish"
    downloaded.mkdir(parents=True)

    result = runner.run("report", {"publish-from": str(downloaded), "github-token": "t"})

    assert result.code == 0, result.log
    (call,) = calls(record)
    assert call["argv"] == ["report", "--github", "--publish-from", str(downloaded)]


def test_report_needs_a_run(runner, tmp_path):
    fake_ci_ml(runner, tmp_path)

    result = runner.run("report")

    assert result.code == 2
    assert "set run-dir" in result.log


def test_deploy_calls_ci_ml_deploy(runner, tmp_path):
    record = fake_ci_ml(runner, tmp_path)
    run_dir = runner.workspace / "run"
    run_dir.mkdir()
    (run_dir / "gate-report.json").write_text(json.dumps({"verdict": "pass"}))
    (run_dir / "model.json").write_text(json.dumps({"digest": "ab" * 32}))

    result = runner.run(
        "deploy", {"run-dir": "run", "registry-url": "s3://b/m", "github-token": "t"}
    )

    assert result.code == 0, result.log
    (call,) = calls(record)
    assert call["argv"] == ["deploy", "--config", "ci-ml.yaml", "--run-dir", str(run_dir)]
    assert call["env"] == {"GITHUB_TOKEN": "t", "CI_ML_REGISTRY_URL": "s3://b/m"}
    assert result.outputs == {"verdict": "pass", "model-digest": "ab" * 32}
