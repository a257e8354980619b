"""A GitHub Actions runner for whole workflows, on this machine.

``GitHub`` plays GitHub's side: the repositories it hosts (real git repositories), the
events that start workflows (and the `workflow_run` events their completion starts),
secrets, artifacts, caches, environments with deployments. ``WorkflowRun`` and ``Job`` play
the runner's: jobs in `needs` order with `if:`, called workflows (`uses:` on a job) with
their inputs, secrets and outputs, steps with `if:`, `env:`, `working-directory:`,
`shell:`, composite actions (local, `$/`, or `owner/repo/path@ref` of a hosted
repository), GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY, masks, and the
stand-ins for GitHub's own actions (stand_ins.py). Expressions go to GitHub's own engine.

A job with `strategy.matrix` (literal values, `include`, `exclude`) runs once per
combination, one after another, named `job (value, ...)` as GitHub shows it, with its
`matrix` and `strategy` contexts; `needs` sees the legs' combined result and outputs.

What it does not do: matrix values from expressions, `max-parallel` (legs run one after
another), services, containers, `docker://` and JavaScript actions other than the
stand-ins, `hashFiles`, cancellation, and permission checks on the token
(tests/test_workflows.py checks the permissions the files ask for).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .expressions import Expressions
from .stand_ins import PINNED, STAND_INS, StepFailed

Webhooks = Callable[..., dict[str, Any]]
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    "sh": ["sh", "-e"],
    "python": ["python"],
}
REMOTE = re.compile(r"^(?P<owner>[^/]+)/(?P<repo>[^/@]+)(?:/(?P<path>[^@]+))?@(?P<ref>.+)$")


def load(text: str) -> dict[str, Any]:
    # YAML 1.1's `on:` is True to PyYAML; GitHub reads it as the key "on"
    found = yaml.load(text, Loader=yaml.BaseLoader)
    assert isinstance(found, dict)
    return found


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass
class Repository:
    """A repository GitHub hosts: a git repository on this machine."""

    full_name: str
    path: Path
    default_branch: str = "main"
    visibility: str = "public"

    def sha(self, ref: str) -> str:
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")

    def read(self, sha: str, path: str) -> str:
        return git(self.path, "show", f"{sha}:{path}")

    def files(self, sha: str, folder: str) -> list[str]:
        listed = git(self.path, "ls-tree", "--name-only", f"{sha}:{folder}")
        return [f"{folder}/{name}" for name in listed.splitlines()]

    def export(self, sha: str, dest: Path) -> Path:
        """The tree of ``sha`` in ``dest``, as a runner downloads an action's repository."""
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha], cwd=self.path, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return dest


@dataclass
class StepResult:
    name: str
    outcome: str  # success, failure, skipped
    conclusion: str
    outputs: dict[str, str]
    log: str  # masked, as GitHub shows it
    raw: str = ""  # as the processes wrote it


@dataclass
class JobResult:
    name: str
    result: str  # success, failure, skipped
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    asked: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return "\n".join(f"## {s.name} ({s.outcome})\n{s.log}" for s in self.steps)

    @property
    def raw_log(self) -> str:
        return "\n".join(s.raw for s in self.steps)


class GitHub:
    """GitHub's side of workflow runs, with the local API server as its REST API."""

    def __init__(
        self,
        root: Path,
        *,
        api_url: str,
        token: str,
        webhooks: Webhooks,
        machine_env: dict[str, str],
    ) -> None:
        self.root, self.api_url, self.token, self.webhooks = root, api_url, token, webhooks
        self.machine_env = machine_env
        self.repos: dict[str, Repository] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.artifacts: dict[tuple[int, str], Path] = {}
        self.downloads: list[tuple[int, int, str]] = []  # (by run, of run, artifact)
        self.caches: dict[str, Path] = {}
        self.runs: list[WorkflowRun] = []
        self.approvals: dict[int, list[str]] = {}
        self.approvers: list[str] = []
        self.after_run: list[Callable[[WorkflowRun], None]] = []
        self.disabled: set[str] = set()  # workflow files disabled in the repository's settings
        self.expressions = Expressions()

    def close(self) -> None:
        self.expressions.close()

    def host(self, repo: Repository, secrets: dict[str, str] | None = None) -> Repository:
        self.repos[repo.full_name] = repo
        self.secrets[repo.full_name] = dict(secrets or {})
        return repo

    # -- events --------------------------------------------------------------------------------

    def _repository_payload(self, repo: Repository, example: dict[str, Any]) -> dict[str, Any]:
        owner, _, name = repo.full_name.partition("/")
        payload = copy.deepcopy(example)
        payload.update(
            full_name=repo.full_name,
            name=name,
            default_branch=repo.default_branch,
            visibility=repo.visibility,
            private=repo.visibility != "public",
        )
        payload["owner"] = {**payload.get("owner", {}), "login": owner}
        return payload

    def push(self, repo_name: str, branch: str) -> list[WorkflowRun]:
        """Someone pushed ``branch``: the `push` workflows of its head commit run."""
        repo = self.repos[repo_name]
        sha = repo.sha(branch)
        event = self.webhooks("push")
        event["ref"], event["after"] = f"refs/heads/{branch}", sha
        event["repository"] = self._repository_payload(repo, event["repository"])
        return self.trigger(repo, "push", event, sha=sha, ref=f"refs/heads/{branch}")

    def pull_request(
        self, repo_name: str, number: int, head: str, *, head_repo: str | None = None
    ) -> list[WorkflowRun]:
        """A pull request of ``head`` (a commit of ``repo_name``, pushed there by
        ``head_repo`` when a fork) into the default branch was opened: the workflows of
        the merge commit run, as refs/pull/N/merge."""
        repo = self.repos[repo_name]
        base = repo.sha(repo.default_branch)
        head_sha = repo.sha(head)
        git(repo.path, "update-ref", f"refs/pull/{number}/head", head_sha)
        merge = _merge_commit(repo.path, base, head_sha, number)
        git(repo.path, "update-ref", f"refs/pull/{number}/merge", merge)
        event = self.webhooks("pull_request", "opened")
        event["number"] = number
        repository = self._repository_payload(repo, event["repository"])
        event["repository"] = repository
        pull = event["pull_request"]
        pull["number"] = number
        pull["base"].update(ref=repo.default_branch, sha=base, repo=repository)
        forked = head_repo is not None and head_repo != repo_name
        head_repository = copy.deepcopy(repository)
        if forked:
            assert head_repo is not None
            head_repository.update(full_name=head_repo, name=head_repo.partition("/")[2], fork=True)
            head_repository["owner"] = {
                **head_repository["owner"],
                "login": head_repo.split("/")[0],
            }
        pull["head"].update(ref=head, sha=head_sha, repo=head_repository)
        return self.trigger(
            repo, "pull_request", event, sha=merge, ref=f"refs/pull/{number}/merge", fork=forked
        )

    def trigger(
        self,
        repo: Repository,
        event_name: str,
        event: dict[str, Any],
        *,
        sha: str,
        ref: str,
        fork: bool = False,
    ) -> list[WorkflowRun]:
        """Run every workflow of ``sha`` that ``event`` starts, then what their completion
        starts (`workflow_run`)."""
        started = []
        for path in repo.files(sha, ".github/workflows"):
            if path in self.disabled:
                continue
            workflow = load(repo.read(sha, path))
            if not _starts(workflow.get("on", {}), event_name, event):
                continue
            run = WorkflowRun(self, repo, path, workflow, event_name, event, sha, ref, fork)
            self.runs.append(run)
            run.execute()
            for observe in self.after_run:
                observe(run)
            started.append(run)
        for run in list(started):
            started += self._completed(run)
        return started

    def _completed(self, run: WorkflowRun) -> list[WorkflowRun]:
        """`workflow_run` workflows, from the default branch, for a completed run."""
        repo = run.repository
        event = self.webhooks("workflow_run", "completed")
        event["repository"] = self._repository_payload(repo, event["repository"])
        details = event["workflow_run"]
        details.update(
            id=run.id,
            name=run.name,
            event=run.event_name,
            head_sha=run.event.get("pull_request", {}).get("head", {}).get("sha", run.sha),
            head_branch=run.event.get("pull_request", {}).get("head", {}).get("ref"),
            conclusion=run.conclusion,
            status="completed",
        )
        head_repo = run.event.get("pull_request", {}).get("head", {}).get("repo")
        details["head_repository"] = head_repo or event["repository"]
        details["repository"] = event["repository"]
        sha = repo.sha(repo.default_branch)
        return self.trigger(
            repo, "workflow_run", event, sha=sha, ref=f"refs/heads/{repo.default_branch}"
        )

    # -- environments -------------------------------------------------------------------------

    def enter_environment(self, run: WorkflowRun, name: str) -> None:
        """What GitHub does before a job with `environment:` starts: wait for a required
        reviewer (here: the approvers the test set; none means nobody approves), then
        create the deployment of the run's commit to it."""
        if not self.approvers:
            raise StepFailed(f"the deployment to {name} was not approved")
        self.approvals[run.id] = list(self.approvers)
        response = requests.post(
            f"{self.api_url}/repos/{run.repository.full_name}/deployments",
            json={"ref": run.sha, "environment": name, "auto_merge": False},
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
            },
            timeout=30,
        )
        response.raise_for_status()


def _merge_commit(path: Path, base: str, head: str, number: int) -> str:
    """The test merge GitHub makes for a pull request (refs/pull/N/merge)."""
    work = path.parent / f".merge-{number}"
    shutil.rmtree(work, ignore_errors=True)
    git(path, "worktree", "add", "-q", "--detach", str(work), base)
    try:
        git(
            work,
            "-c",
            "user.name=GitHub",
            "-c",
            "user.email=noreply@github.com",
            "merge",
            "-q",
            "--no-ff",
            "-m",
            f"Merge {head} into {base}",
            head,
        )
        return git(work, "rev-parse", "HEAD")
    finally:
        git(path, "worktree", "remove", "--force", str(work))


def _starts(on: Any, event_name: str, event: dict[str, Any]) -> bool:
    """Whether a workflow's `on:` takes this event."""
    if isinstance(on, str):
        return on == event_name
    if isinstance(on, list):
        return event_name in on
    if event_name not in on:
        return False
    spec = on[event_name] or {}
    if "types" in spec:
        action = event.get("action")
        if action not in spec["types"]:
            return False
    if event_name == "workflow_run":
        return event["workflow_run"]["name"] in spec.get("workflows", [])
    if event_name == "pull_request" and "branches" in spec:
        base = event["pull_request"]["base"]["ref"]
        return any(fnmatch.fnmatchcase(base, b) for b in spec["branches"])
    if event_name == "push" and "branches" in spec:
        branch = event["ref"].removeprefix("refs/heads/")
        return any(fnmatch.fnmatchcase(branch, b) for b in spec["branches"])
    return True


@dataclass
class Source:
    """Where a workflow file comes from: `$/` resolves against it."""

    repo: Repository
    sha: str
    path: str


class WorkflowRun:
    """One run of one workflow: its jobs, in `needs` order."""

    counter = 4242

    def __init__(
        self,
        github: GitHub,
        repository: Repository,
        path: str,
        workflow: dict[str, Any],
        event_name: str,
        event: dict[str, Any],
        sha: str,
        ref: str,
        fork: bool,
    ) -> None:
        WorkflowRun.counter += 1
        self.id = WorkflowRun.counter
        self.github, self.repository, self.path, self.workflow = github, repository, path, workflow
        self.event_name, self.event, self.sha, self.ref, self.fork = (
            event_name,
            event,
            sha,
            ref,
            fork,
        )
        self.name = workflow.get("name") or path
        self.jobs: dict[str, JobResult] = {}
        self.conclusion = "success"
        self.token = github.token
        # GitHub gives a fork's pull request run no secrets
        self.secrets = {} if fork else dict(github.secrets[repository.full_name])
        self.masks = {self.token, *filter(None, self.secrets.values())}

    def context(self, job_name: str) -> dict[str, Any]:
        return {
            "event": self.event,
            "event_name": self.event_name,
            "sha": self.sha,
            "ref": self.ref,
            "ref_name": self.ref.rpartition("/")[2],
            "repository": self.repository.full_name,
            "repository_owner": self.repository.full_name.partition("/")[0],
            "run_id": str(self.id),
            "run_number": "1",
            "run_attempt": "1",
            "workflow": self.name,
            "job": job_name,
            "token": self.token,
            "server_url": "https://github.com",
            "api_url": self.github.api_url,
            "actor": "octocat",
            "base_ref": self.event.get("pull_request", {}).get("base", {}).get("ref", ""),
            "head_ref": self.event.get("pull_request", {}).get("head", {}).get("ref", ""),
        }

    def execute(self) -> None:
        source = Source(self.repository, self.sha, self.path)
        results = self.run_jobs(self.workflow, source, {}, self.secrets, prefix="")
        self.conclusion = "failure" if _failed(results) else "success"

    def run_jobs(
        self,
        workflow: dict[str, Any],
        source: Source,
        inputs: dict[str, Any],
        secrets: dict[str, str],
        prefix: str,
    ) -> dict[str, JobResult]:
        """Run a workflow's jobs; returns them by id."""
        results: dict[str, JobResult] = {}
        pending = dict(workflow["jobs"])
        while pending:
            ready = [
                name for name, job in pending.items() if all(n in results for n in _needs(job))
            ]
            assert ready, f"jobs {sorted(pending)} wait on each other"
            for name in ready:
                job = pending.pop(name)
                if "strategy" in job and "matrix" in job["strategy"]:
                    results[name] = self.run_matrix(
                        workflow, source, name, job, inputs, secrets, results, prefix
                    )
                    continue
                results[name] = self.run_job(
                    workflow, source, name, job, inputs, secrets, results, prefix
                )
                self.jobs[prefix + name] = results[name]
        return results

    def run_matrix(
        self,
        workflow: dict[str, Any],
        source: Source,
        name: str,
        spec: dict[str, Any],
        inputs: dict[str, Any],
        secrets: dict[str, str],
        done: dict[str, JobResult],
        prefix: str,
    ) -> JobResult:
        """Every combination of the job's matrix, as a job of its own; their sum for `needs`."""
        combinations = expand_matrix(spec["strategy"]["matrix"])
        legs = []
        for index, matrix in enumerate(combinations):
            strategy = {
                "fail-fast": spec["strategy"].get("fail-fast", True),
                "job-index": index,
                "job-total": len(combinations),
            }
            shown = ", ".join(str(v) for v in matrix.values() if not isinstance(v, (dict, list)))
            leg_name = f"{name} ({shown})"
            leg = self.run_job(
                workflow,
                source,
                name,
                spec,
                inputs,
                secrets,
                done,
                prefix,
                matrix=matrix,
                strategy=strategy,
                shown=leg_name,
            )
            self.jobs[prefix + leg_name] = leg
            legs.append(leg)
        results = {leg.result for leg in legs}
        outcome = next((r for r in ("failure", "success") if r in results), "skipped")
        found = JobResult(prefix + name, outcome)
        for leg in legs:  # as GitHub: the last leg to set an output wins
            found.outputs.update({k: v for k, v in leg.outputs.items() if v})
        return found

    def run_job(
        self,
        workflow: dict[str, Any],
        source: Source,
        name: str,
        spec: dict[str, Any],
        inputs: dict[str, Any],
        secrets: dict[str, str],
        done: dict[str, JobResult],
        prefix: str,
        matrix: dict[str, Any] | None = None,
        strategy: dict[str, Any] | None = None,
        shown: str | None = None,
    ) -> JobResult:
        needs = {n: {"result": done[n].result, "outputs": done[n].outputs} for n in _needs(spec)}
        status = "success" if all(n["result"] == "success" for n in needs.values()) else "failure"
        contexts = {
            "github": self.context(name),
            "needs": needs,
            "inputs": inputs,
            "vars": {},
            "matrix": matrix or {},
            "strategy": strategy or {},
        }
        shown = shown or name
        expressions = self.github.expressions
        if not expressions.condition(spec.get("if", "success()"), contexts, status):
            return JobResult(prefix + shown, "skipped")
        if "uses" in spec:
            return self.call_workflow(source, shown, spec, contexts, secrets, prefix)
        job = Job(self, prefix + shown, spec, workflow, source, inputs, secrets, needs)
        job.matrix, job.strategy, job.job_id = matrix or {}, strategy or {}, name
        return job.execute()

    def call_workflow(
        self,
        source: Source,
        name: str,
        spec: dict[str, Any],
        contexts: dict[str, Any],
        secrets: dict[str, str],
        prefix: str,
    ) -> JobResult:
        called_source = self.resolve_workflow(source, spec["uses"])
        called = load(called_source.repo.read(called_source.sha, called_source.path))
        declared = called["on"]["workflow_call"] or {}
        expressions = self.github.expressions
        given = expressions.value(spec.get("with", {}), {**contexts, "secrets": secrets})
        unknown = set(given) - set(declared.get("inputs", {}))
        if unknown:
            raise AssertionError(f"{spec['uses']} has no inputs {sorted(unknown)}")
        inputs: dict[str, Any] = {}
        for key, declaration in (declared.get("inputs") or {}).items():
            value = given.get(key, declaration.get("default"))
            if value is None and declaration.get("required") == "true":
                raise AssertionError(f"{spec['uses']} needs the input {key}")
            inputs[key] = _typed(value, declaration.get("type", "string"))
        if spec.get("secrets") == "inherit":
            passed = dict(secrets)
        else:
            passed = {
                k: expressions.text(v, {**contexts, "secrets": secrets})
                for k, v in (spec.get("secrets") or {}).items()
            }
        results = self.run_jobs(called, called_source, inputs, passed, prefix=f"{prefix}{name} / ")
        result = JobResult(prefix + name, "failure" if _failed(results) else "success")
        jobs = {k: {"result": r.result, "outputs": r.outputs} for k, r in results.items()}
        result.outputs = {
            k: expressions.text(v["value"], {**contexts, "jobs": jobs, "inputs": inputs})
            for k, v in (declared.get("outputs") or {}).items()
        }
        return result

    def resolve_workflow(self, source: Source, uses: str) -> Source:
        if uses.startswith("./"):
            return Source(self.repository, self.sha, uses[2:])
        if uses.startswith("$/"):
            return Source(source.repo, source.sha, uses[2:])
        found = REMOTE.match(uses)
        assert found and found["path"], f"cannot resolve the reusable workflow {uses}"
        repo = self.github.repos[f"{found['owner']}/{found['repo']}"]
        return Source(repo, repo.sha(found["ref"]), found["path"])


def expand_matrix(matrix: dict[str, Any]) -> list[dict[str, Any]]:
    """A matrix's combinations as GitHub makes them: the product of its lists, less each
    `exclude`; then each `include` extends the combinations it matches without changing
    their values, or else is a combination of its own."""
    assert isinstance(matrix, dict), f"the runner takes literal matrices only, not {matrix!r}"
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combinations: list[dict[str, Any]] = [{}]
    for key, values in axes.items():
        assert isinstance(values, list), f"matrix.{key}: a list of values, not {values!r}"
        combinations = [{**c, key: v} for c in combinations for v in values]
    if not axes:
        combinations = []

    def matches(original: dict[str, Any], entry: dict[str, Any]) -> bool:
        return all(original.get(k, v) == v for k, v in entry.items())

    for entry in matrix.get("exclude", []):
        combinations = [c for c in combinations if not matches(c, entry)]
    # what an include may not change: a product's own values, an include's whole entry
    originals = [dict(c) for c in combinations]
    for entry in matrix.get("include", []):
        extended = False
        for combination, original in zip(combinations, originals, strict=True):
            if matches(original, entry):
                combination.update(entry)
                extended = True
        if not extended:
            combinations.append(dict(entry))
            originals.append(dict(entry))
    return combinations


def _failed(results: dict[str, JobResult]) -> bool:
    return any(r.result == "failure" for r in results.values())


def _needs(spec: dict[str, Any]) -> list[str]:
    needs = spec.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return {"boolean": False, "number": 0}.get(kind, "")
    if kind == "boolean":
        return value in (True, "true")
    if kind == "number":
        number = float(value)
        return int(number) if number.is_integer() else number
    return value if isinstance(value, str) else json.dumps(value)


class Job:
    """One job on a fresh runner: its own workspace, temp folder, tool cache and home."""

    def __init__(
        self,
        run: WorkflowRun,
        name: str,
        spec: dict[str, Any],
        workflow: dict[str, Any],
        source: Source,
        inputs: dict[str, Any],
        secrets: dict[str, str],
        needs: dict[str, Any],
    ) -> None:
        self.run, self.name, self.spec, self.workflow, self.source = (
            run,
            name,
            spec,
            workflow,
            source,
        )
        self.inputs, self.secrets, self.needs = inputs, secrets, needs
        self.matrix: dict[str, Any] = {}
        self.strategy: dict[str, Any] = {}
        self.job_id = name.rpartition(" / ")[2]  # github.job: the job's id, not its shown name
        self.token = run.token
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
        self.home = run.github.root / "runners" / f"{run.id}-{slug}" / "home"
        repo_name = run.repository.full_name.partition("/")[2]
        self.workspace = self.home.parent / "work" / repo_name / repo_name
        self.temp = self.home.parent / "temp"
        for folder in (self.home, self.workspace, self.temp):
            folder.mkdir(parents=True)
        self.env: dict[str, str] = {}  # GITHUB_ENV and stand-ins' variables
        self.paths: list[Path] = []  # GITHUB_PATH, newest first
        self.post: list[Callable[[], None]] = []
        self.asked: dict[str, str] = {}
        self.summary: list[str] = []
        self.steps: list[StepResult] = []
        self.masks = set(run.masks) | set(filter(None, secrets.values()))
        self.deadline = time.monotonic() + 60 * float(spec.get("timeout-minutes", 360))

    def add_path(self, folder: Path) -> None:
        self.paths.insert(0, folder)

    # -- contexts ------------------------------------------------------------------------------

    def github_context(self, action_path: Path | None = None) -> dict[str, Any]:
        found = self.run.context(self.job_id)
        found["workspace"] = str(self.workspace)
        if action_path is not None:
            found["action_path"] = str(action_path)
        return found

    def runner_context(self) -> dict[str, str]:
        return {
            "os": "Linux",
            "arch": "X64",
            "name": "ci-ml-test-runner",
            "temp": str(self.temp),
            "tool_cache": str(self.home.parent / "tool"),
            "environment": "github-hosted",
        }

    def base_env(self) -> dict[str, str]:
        """What every step's process starts from: the machine, then the runner's variables."""
        runner = self.runner_context()
        github = self.github_context()
        env = {
            **self.run.github.machine_env,
            "HOME": str(self.home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "RUNNER_OS": runner["os"],
            "RUNNER_ARCH": runner["arch"],
            "RUNNER_NAME": runner["name"],
            "RUNNER_TEMP": runner["temp"],
            "RUNNER_TOOL_CACHE": runner["tool_cache"],
            "RUNNER_ENVIRONMENT": runner["environment"],
        }
        for key in (
            "event_name",
            "sha",
            "ref",
            "ref_name",
            "repository",
            "repository_owner",
            "run_id",
            "run_number",
            "run_attempt",
            "workflow",
            "job",
            "server_url",
            "api_url",
            "actor",
            "base_ref",
            "head_ref",
            "workspace",
        ):
            env[f"GITHUB_{key.upper()}"] = str(github[key])
        env["GITHUB_EVENT_PATH"] = str(self.home.parent / "event.json")
        env["GITHUB_REF_TYPE"] = "branch"
        env["GITHUB_GRAPHQL_URL"] = f"{self.run.github.api_url}/graphql"
        return env

    def contexts(
        self,
        env: dict[str, str],
        steps: dict[str, Any],
        *,
        inputs: dict[str, Any] | None = None,
        action_path: Path | None = None,
        status: str = "success",
    ) -> dict[str, Any]:
        found = {
            "github": self.github_context(action_path),
            "env": env,
            "inputs": self.inputs if inputs is None else inputs,
            "steps": steps,
            "runner": self.runner_context(),
            "job": {"status": status},
            "needs": self.needs,
            "strategy": self.strategy,
            "matrix": self.matrix,
            "vars": {},
        }
        if action_path is None:  # composite actions see no secrets
            found["secrets"] = {**self.secrets, "GITHUB_TOKEN": self.token}
        return found

    # -- the job ------------------------------------------------------------------------------

    def execute(self) -> JobResult:
        (self.home.parent / "event.json").write_text(json.dumps(self.run.event), encoding="utf-8")
        expressions = self.run.github.expressions
        result = JobResult(self.name, "success")
        result.asked = self.asked
        workflow_env = self.workflow.get("env", {})
        start = self.contexts({}, {})
        env = {k: expressions.text(v, start) for k, v in workflow_env.items()}
        env.update(
            {
                k: expressions.text(v, self.contexts(env, {}))
                for k, v in self.spec.get("env", {}).items()
            }
        )
        defaults = {
            **self.workflow.get("defaults", {}).get("run", {}),
            **self.spec.get("defaults", {}).get("run", {}),
        }
        environment = self.spec.get("environment")
        if environment:
            name = environment if isinstance(environment, str) else environment["name"]
            try:
                self.run.github.enter_environment(self.run, expressions.text(name, start))
            except StepFailed as refused:
                result.result = "failure"
                result.steps.append(
                    StepResult("environment", "failure", "failure", {}, str(refused))
                )
                return result
        steps: dict[str, Any] = {}
        status = "success"
        for number, step in enumerate(self.spec["steps"]):
            found = self.step(
                step, number, env, steps, defaults, status, self.inputs, None, self.source
            )
            result.steps.append(found)
            if found.conclusion == "failure":
                status = "failure"
        for save in reversed(self.post):
            save()
        result.result = status
        result.summary = "".join(self.summary)
        # as GitHub does, a failed job has its outputs too (what its steps set)
        result.outputs = {
            k: expressions.text(v, self.contexts(env, steps, status=status))
            for k, v in self.spec.get("outputs", {}).items()
        }
        return result

    def step(
        self,
        step: dict[str, Any],
        number: int,
        env: dict[str, str],
        steps: dict[str, Any],
        defaults: dict[str, str],
        status: str,
        inputs: dict[str, Any],
        action_path: Path | None,
        source: Source,
    ) -> StepResult:
        """Run one step (of the job, or of a composite action at ``action_path``)."""
        expressions = self.run.github.expressions
        contexts = self.contexts(env, steps, inputs=inputs, action_path=action_path, status=status)
        name = str(step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0])
        step_id = step.get("id", f"__{number}")
        if not expressions.condition(step.get("if", "success()"), contexts, status):
            steps[step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            return StepResult(name, "skipped", "skipped", {}, "")
        step_env = {**env, **self.env}
        step_env.update({k: expressions.text(v, contexts) for k, v in step.get("env", {}).items()})
        contexts["env"] = step_env
        try:
            if "uses" in step:
                given = {k: expressions.text(v, contexts) for k, v in step.get("with", {}).items()}
                outputs, log = self.uses(step["uses"], given, step_env, source)
            else:
                outputs, log = self.shell(step, step_env, contexts, defaults, action_path)
            outcome = "success"
        except StepFailed as failed:
            outputs, log, outcome = {}, str(failed), "failure"
        raw = log
        for mask in self.masks:
            log = log.replace(mask, "***")
        conclusion = "success" if step.get("continue-on-error") == "true" else outcome
        steps[step_id] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
        found = StepResult(name, outcome, conclusion, outputs, log, raw)
        self.steps.append(found)
        return found

    def process_env(self, step_env: dict[str, str]) -> dict[str, str]:
        process = {**self.base_env(), **step_env}
        process["PATH"] = os.pathsep.join([*map(str, self.paths), process["PATH"]])
        return process

    def shell(
        self,
        step: dict[str, Any],
        step_env: dict[str, str],
        contexts: dict[str, Any],
        defaults: dict[str, str],
        action_path: Path | None,
    ) -> tuple[dict[str, str], str]:
        expressions = self.run.github.expressions
        script = expressions.text(step["run"], contexts)
        shell = step.get("shell") or defaults.get("shell")
        if action_path is not None and not shell:
            raise AssertionError("a composite action's run step needs shell:")
        command = SHELLS[shell] if shell else ["bash", "-e"]
        folder = step.get("working-directory") or defaults.get("working-directory") or "."
        cwd = self.workspace / expressions.text(folder, contexts)
        files = {
            k: self.temp / f"_runner_file_commands/{k.lower()}_{len(self.steps)}"
            for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")
        }
        for path in files.values():
            path.parent.mkdir(exist_ok=True)
            path.write_text("", encoding="utf-8")
        script_file = self.temp / f"step-{len(self.steps)}.sh"
        script_file.write_text(script, encoding="utf-8")
        process = self.process_env(step_env)
        process.update({k: str(v) for k, v in files.items()})
        if action_path is not None:
            process["GITHUB_ACTION_PATH"] = str(action_path)
        timeout = max(1.0, self.deadline - time.monotonic())
        done = subprocess.run(
            [*command, str(script_file)],
            cwd=cwd,
            env=process,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log = done.stdout + done.stderr
        for line in done.stdout.splitlines():
            if line.startswith("::add-mask::"):
                self.masks.add(line.removeprefix("::add-mask::"))
        self.env.update(read_file_command(files["GITHUB_ENV"]))
        for line in files["GITHUB_PATH"].read_text(encoding="utf-8").splitlines():
            if line.strip():
                self.add_path(Path(line.strip()))
        self.summary.append(files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8"))
        outputs = read_file_command(files["GITHUB_OUTPUT"])
        if done.returncode != 0:
            raise StepFailed(f"{log}\nProcess completed with exit code {done.returncode}.")
        return outputs, log

    def uses(
        self, uses: str, given: dict[str, str], step_env: dict[str, str], source: Source
    ) -> tuple[dict[str, str], str]:
        if uses.startswith("./"):
            return self.composite(self.workspace / uses[2:], given, step_env, source)
        if uses.startswith("$/"):
            folder = self.download(source.repo, source.sha) / uses[2:]
            return self.composite(
                folder, given, step_env, Source(source.repo, source.sha, uses[2:])
            )
        found = REMOTE.match(uses)
        assert found, f"cannot resolve the action {uses}"
        name = f"{found['owner']}/{found['repo']}"
        if name in STAND_INS and not found["path"]:
            if PINNED[name] != found["ref"]:
                raise StepFailed(f"{uses} is not the pinned commit of {name}")
            log = f"(stand-in for {uses})"
            return STAND_INS[name](self, given), log
        if name not in self.run.github.repos:
            raise StepFailed(f"cannot download {uses}: no such repository here")
        repo = self.run.github.repos[name]
        sha = repo.sha(found["ref"])
        folder = self.download(repo, sha) / (found["path"] or "")
        return self.composite(folder, given, step_env, Source(repo, sha, found["path"] or ""))

    def download(self, repo: Repository, sha: str) -> Path:
        """An action's repository at ``sha``, as the runner keeps it under _actions/."""
        folder = self.home.parent / "_actions" / repo.full_name / sha
        if not folder.exists():
            repo.export(sha, folder)
        return folder

    def composite(
        self, folder: Path, given: dict[str, str], step_env: dict[str, str], source: Source
    ) -> tuple[dict[str, str], str]:
        spec = load((folder / "action.yml").read_text(encoding="utf-8"))
        assert spec["runs"]["using"] == "composite", f"{folder} is not a composite action"
        declared = spec.get("inputs", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise StepFailed(f"{folder.name} has no inputs {sorted(unknown)}")
        expressions = self.run.github.expressions
        inputs: dict[str, Any] = {}
        for key, declaration in declared.items():
            if key in given:
                inputs[key] = given[key]
            else:
                default_contexts = self.contexts(step_env, {}, inputs={}, action_path=folder)
                inputs[key] = expressions.text(declaration.get("default", ""), default_contexts)
        steps: dict[str, Any] = {}
        status, logs = "success", []
        for number, step in enumerate(spec["runs"]["steps"]):
            found = self.step(step, number, step_env, steps, {}, status, inputs, folder, source)
            logs.append(found.log)
            if found.conclusion == "failure":
                status = "failure"
        if status == "failure":
            raise StepFailed("\n".join(logs))
        contexts = self.contexts(step_env, steps, inputs=inputs, action_path=folder)
        outputs = {
            k: expressions.text(v.get("value", ""), contexts)
            for k, v in spec.get("outputs", {}).items()
        }
        return outputs, "\n".join(logs)


def file_command_entries(path: Path) -> list[tuple[str, str]]:
    """The entries of a GITHUB_OUTPUT or GITHUB_ENV file, in order, in its two forms:
    name=value and name<<DELIMITER ... DELIMITER."""
    found = []
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        name, equals, value = line.partition("=")
        if equals and "<<" not in name:
            found.append((name, value))
            continue
        name, _, delimiter = line.partition("<<")
        found.append((name, "\n".join(iter(lambda: next(lines), delimiter))))
    return found


def read_file_command(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT or GITHUB_ENV file as the runner reads it: the last value wins."""
    return dict(file_command_entries(path))
