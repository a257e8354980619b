"""One GitHub issue per problem, and starting a workflow (``workflow_dispatch``).

The issue rule: each key (e.g. ``monitor/drift``) owns one issue. Its body starts with the
hidden marker ``<!-- ci-ml:{key} -->`` (the same marker as the sticky comment) and the issue
carries a label (e.g. ``ci-ml:drift``). The next run lists the issues with that label, open
and closed, through every page, and finds its own by the marker:

* an open one is edited in place (left alone when nothing changed);
* a closed one is reopened with the new body, so a problem keeps one history;
* only when none carries the marker is a new issue opened.

So a problem that persists never piles up issues. When no issue with the label carries the
marker (the label was removed, or GitHub dropped it for a token that may not set labels),
:func:`upsert_issue` looks through every issue of the repository for the marker before it
opens one, and gives the one it finds its label back. Closing an issue is fine.
:func:`close_issue` closes the issue of a problem that went away, with a comment saying so
(it looks among the labelled issues only).

:func:`dispatch_workflow` starts a workflow that has ``on: workflow_dispatch`` on the
repository's default branch (or a given ref); the token needs ``actions: write``.

These functions raise on failure (:class:`~ci_ml.github.client.GitHubError`, exit 3);
whether that fails the job is the caller's decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ci_ml.errors import BadInputError
from ci_ml.github.client import GitHubClient
from ci_ml.github.comments import compose_comment, marker, shorten

TITLE_LIMIT = 256
MAX_INPUTS = 25  # GitHub's limit on workflow_dispatch inputs

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_WORKFLOW = re.compile(r"[0-9]+|[A-Za-z0-9_.-]+\.ya?ml")
_LABEL = re.compile(r"[^,\x00-\x1f]{1,50}")


@dataclass(frozen=True)
class IssueResult:
    """What :func:`upsert_issue` or :func:`close_issue` did to the issue of a key."""

    action: Literal["created", "updated", "reopened", "unchanged", "closed"]
    number: int
    url: str
    truncated: bool = False


@dataclass(frozen=True)
class DispatchResult:
    """The workflow that was started, on which ref; the run's page when GitHub said."""

    workflow: str
    ref: str
    run_url: str | None = None


def _check_repo(repo: str) -> None:
    if not _REPO.fullmatch(repo):
        raise BadInputError(f"repository {repo!r} is not OWNER/NAME (e.g. octocat/Hello-World).")


def _check_label(label: str) -> None:
    if not _LABEL.fullmatch(label):
        raise BadInputError(
            f"issue label {label!r} is not allowed; use 1 to 50 characters without commas."
        )


def find_issue(
    client: GitHubClient, repo: str, key: str, label: str, *, unlabelled: bool = False
) -> dict[str, Any] | None:
    """The issue of ``key``: the open one if any, else the most recently updated closed one.

    Among the issues with ``label``; with ``unlabelled``, among every issue of ``repo``.
    """
    _check_repo(repo)
    _check_label(label)
    tag = marker(key)
    params = {"state": "all", "sort": "updated", "direction": "desc"}
    if not unlabelled:
        params["labels"] = label
    found = [
        dict(issue)
        for issue in client.paginate(f"/repos/{repo}/issues", params)
        if "pull_request" not in issue and (issue.get("body") or "").lstrip().startswith(tag)
    ]
    open_ones = [issue for issue in found if issue.get("state") == "open"]
    candidates = open_ones or found
    return candidates[0] if candidates else None


def upsert_issue(
    client: GitHubClient,
    repo: str,
    key: str,
    title: str,
    body: str,
    labels: Sequence[str],
) -> IssueResult:
    """Open, reopen or edit in place the one issue of ``key`` (found by ``labels[0]``)."""
    if not labels:
        raise BadInputError("an issue needs at least one label, by which ci-ml finds it again.")
    for label in labels:
        _check_label(label)
    text, truncated = compose_comment(key, body)
    title = shorten(title, TITLE_LIMIT)
    existing = find_issue(client, repo, key, labels[0])
    if existing is None:  # perhaps the label was dropped: look for the marker alone
        existing = find_issue(client, repo, key, labels[0], unlabelled=True)
    if existing is None:
        made = client.post(
            f"/repos/{repo}/issues", {"title": title, "body": text, "labels": list(labels)}
        )
        _check_labelled(made, labels[0], "opened")
        return IssueResult("created", made["number"], made["html_url"], truncated)
    number, was_open = existing["number"], existing.get("state") == "open"
    names = _label_names(existing)
    same = existing.get("body") == text and existing.get("title") == title
    if was_open and same and labels[0] in names:
        return IssueResult("unchanged", number, existing["html_url"], truncated)
    change: dict[str, Any] = {"title": title, "body": text}
    if not was_open:
        change["state"] = "open"
    if labels[0] not in names:
        change["labels"] = [*names, *(x for x in labels if x not in names)]
    edited = client.patch(f"/repos/{repo}/issues/{number}", change)
    if "labels" in change:
        _check_labelled(edited, labels[0], "updated")
    action: Literal["updated", "reopened"] = "updated" if was_open else "reopened"
    return IssueResult(action, edited["number"], edited["html_url"], truncated)


def _label_names(issue: Mapping[str, Any]) -> list[str]:
    found = [x.get("name") if isinstance(x, dict) else x for x in issue.get("labels") or []]
    return [str(name) for name in found if name]


def _check_labelled(issue: Mapping[str, Any], label: str, done: str) -> None:
    """GitHub drops labels a token may not set; the next run then looks for the marker in
    every issue, which is slower, so say how to fix it."""
    if label not in _label_names(issue):
        raise BadInputError(
            f"GitHub {done} issue #{issue['number']} but dropped its label {label!r}, by which "
            "the next run finds it quickly; give the token `issues: write` (a personal token: "
            f"push access), then add the label to #{issue['number']} by hand."
        )


def close_issue(
    client: GitHubClient, repo: str, key: str, label: str, comment: str
) -> IssueResult | None:
    """Close the open issue of ``key`` with ``comment``; None when no open one exists."""
    existing = find_issue(client, repo, key, label)
    if existing is None or existing.get("state") != "open":
        return None
    number = existing["number"]
    client.post(f"/repos/{repo}/issues/{number}/comments", {"body": comment})
    closed = client.patch(
        f"/repos/{repo}/issues/{number}", {"state": "closed", "state_reason": "completed"}
    )
    return IssueResult("closed", closed["number"], closed["html_url"])


def default_branch(client: GitHubClient, repo: str) -> str:
    """The repository's default branch, as GitHub says."""
    _check_repo(repo)
    branch = (client.get(f"/repos/{repo}") or {}).get("default_branch")
    if not isinstance(branch, str) or not branch:
        raise BadInputError(f"GitHub did not say which branch is the default of {repo}.")
    return branch


def dispatch_workflow(
    client: GitHubClient,
    repo: str,
    workflow: str,
    ref: str | None = None,
    inputs: Mapping[str, str] | None = None,
) -> DispatchResult:
    """Start ``workflow`` (its file name, e.g. ``ml.yml``, or its id) on ``ref``.

    ``ref`` defaults to the default branch. ``inputs`` must be inputs the workflow declares
    under ``on: workflow_dispatch`` (GitHub refuses others), at most 25.
    """
    _check_repo(repo)
    name = workflow.strip().rsplit("/", 1)[-1]
    if not _WORKFLOW.fullmatch(name):
        raise BadInputError(
            f"workflow {workflow!r} is neither a workflow file name (e.g. ml-pipeline.yml) "
            "nor a numeric workflow id."
        )
    given = dict(inputs or {})
    if len(given) > MAX_INPUTS:
        raise BadInputError(f"GitHub takes at most {MAX_INPUTS} workflow inputs; got {len(given)}.")
    target = ref or default_branch(client, repo)
    payload: dict[str, Any] = {"ref": target}
    if given:
        payload["inputs"] = given
    answer = client.post(f"/repos/{repo}/actions/workflows/{name}/dispatches", payload)
    run_url = answer.get("html_url") if isinstance(answer, dict) else None
    return DispatchResult(name, target, run_url)
