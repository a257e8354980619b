"""The little in-memory state the test server keeps where a flow needs it.

Issue comments, commit statuses, deployments and deployment statuses. Every
object starts as a copy of GitHub's published example for the operation and
only the fields that the request determines are overridden (ids, URLs, body,
state, timestamps...): the shapes are GitHub's, never invented here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .openapi import Match, OpenAPI, Operation


@dataclass
class Reply:
    """What the server sends back: status, JSON body, extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """A matched request as a state handler sees it."""

    match: Match
    body: Any
    query: dict[str, str]
    base_url: str

    def param(self, name: str) -> str:
        return self.match.params[name]

    @property
    def repo(self) -> str:
        return f"{self.param('owner')}/{self.param('repo')}"


Handler = Callable[["GitHubState", Call], Reply | None]
HANDLERS: dict[str, Handler] = {}


def handles(operation_id: str) -> Callable[[Handler], Handler]:
    """Register a state handler for one documented operation."""

    def register(function: Handler) -> Handler:
        HANDLERS[operation_id] = function
        return function

    return register


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


DOCS_URL = "https://docs.github.com/rest"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error reply in GitHub's ``basic-error`` shape."""
    body = {"message": message, "documentation_url": DOCS_URL, "status": str(status)}
    return Reply(status, body, dict(headers or {}))


def not_found() -> Reply:
    return error(404, "Not Found")


class GitHubState:
    """Comments, statuses and deployments created through the server (or seeded by tests)."""

    def __init__(self, api: OpenAPI) -> None:
        self.api = api
        self.lock = threading.RLock()
        self._next_id = 1
        self.comments: dict[int, dict[str, Any]] = {}
        self.comment_issue: dict[int, tuple[str, int]] = {}
        self.statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.deployments: dict[int, dict[str, Any]] = {}
        self.deployment_repo: dict[int, str] = {}
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id - 1

    def example(self, operation_id: str) -> Any:
        """A fresh copy of the published example for an operation's success response."""
        operation = self.operation(operation_id)
        return self.api.example(operation, self.api.success_status(operation))

    def operation(self, operation_id: str) -> Operation:
        return self.api.operation(operation_id)

    def handle(self, call: Call) -> Reply | None:
        """Answer from state if the operation needs it, else None (the plain example)."""
        handler = HANDLERS.get(call.match.operation.operation_id)
        if handler is None:
            return None
        with self.lock:
            return handler(self, call)

    # -- pull requests ----------------------------------------------------------------

    def open_pull(self, repo: str, number: int, head_sha: str, head_ref: str) -> dict[str, Any]:
        """A pull request GitHub knows, so that pulls/get answers with its head commit
        (without one, pulls/get answers with the published example as it is)."""
        pull = self.example("pulls/get")
        # no reviewer teams: the published example's team lacks the `type` its schema requires
        pull.update(number=number, state="open", requested_teams=[])
        pull["head"].update(sha=head_sha, ref=head_ref)
        with self.lock:
            self.pulls[(repo, number)] = pull
        return pull

    # -- issue comments ---------------------------------------------------------------

    def add_comment(self, base_url: str, repo: str, issue: int, body: str) -> dict[str, Any]:
        """Create an issue comment (also how tests seed many comments quickly)."""
        comment = self.example("issues/create-comment")
        comment_id = self.new_id()
        stamp = now()
        comment.update(
            id=comment_id,
            body=body,
            url=f"{base_url}/repos/{repo}/issues/comments/{comment_id}",
            html_url=f"https://github.com/{repo}/pull/{issue}#issuecomment-{comment_id}",
            issue_url=f"{base_url}/repos/{repo}/issues/{issue}",
            created_at=stamp,
            updated_at=stamp,
        )
        with self.lock:
            self.comments[comment_id] = comment
            self.comment_issue[comment_id] = (repo, issue)
        return comment

    def comments_on(self, repo: str, issue: int) -> list[dict[str, Any]]:
        """The comments on one issue or pull request, oldest first (as GitHub lists them)."""
        with self.lock:
            ids = sorted(i for i, where in self.comment_issue.items() if where == (repo, issue))
            return [self.comments[i] for i in ids]

    def _comment(self, call: Call) -> dict[str, Any] | None:
        comment_id = int(call.param("comment_id"))
        if self.comment_issue.get(comment_id, ("", 0))[0] != call.repo:
            return None
        return self.comments.get(comment_id)


@handles("issues/create-comment")
def _create_comment(state: GitHubState, call: Call) -> Reply:
    issue = int(call.param("issue_number"))
    comment = state.add_comment(call.base_url, call.repo, issue, call.body["body"])
    return Reply(201, comment, {"location": comment["url"]})


@handles("issues/list-comments")
def _list_comments(state: GitHubState, call: Call) -> Reply:
    return Reply(200, state.comments_on(call.repo, int(call.param("issue_number"))))


@handles("issues/get-comment")
def _get_comment(state: GitHubState, call: Call) -> Reply:
    comment = state._comment(call)
    return not_found() if comment is None else Reply(200, comment)


@handles("issues/update-comment")
def _update_comment(state: GitHubState, call: Call) -> Reply:
    comment = state._comment(call)
    if comment is None:
        return not_found()
    comment.update(body=call.body["body"], updated_at=now())
    return Reply(200, comment)


@handles("issues/delete-comment")
def _delete_comment(state: GitHubState, call: Call) -> Reply:
    comment = state._comment(call)
    if comment is None:
        return not_found()
    del state.comments[comment["id"]], state.comment_issue[comment["id"]]
    return Reply(204)


# -- commit statuses ------------------------------------------------------------------


@handles("repos/create-commit-status")
def _create_status(state: GitHubState, call: Call) -> Reply:
    status = state.example("repos/create-commit-status")
    status_id, stamp, sha = state.new_id(), now(), call.param("sha")
    status.update(
        id=status_id,
        url=f"{call.base_url}/repos/{call.repo}/statuses/{sha}",
        state=call.body["state"],
        description=call.body.get("description"),
        target_url=call.body.get("target_url"),
        context=call.body.get("context", "default"),
        created_at=stamp,
        updated_at=stamp,
    )
    state.statuses.setdefault((call.repo, sha), []).insert(0, status)
    return Reply(201, status, {"location": status["url"]})


@handles("repos/list-commit-statuses-for-ref")
def _list_statuses(state: GitHubState, call: Call) -> Reply:
    return Reply(200, list(state.statuses.get((call.repo, call.param("ref")), [])))


# -- deployments ----------------------------------------------------------------------

_DEPLOYMENT_FIELDS = ("ref", "task", "environment", "description", "payload")
_DEPLOYMENT_FLAGS = ("transient_environment", "production_environment")


@handles("repos/create-deployment")
def _create_deployment(state: GitHubState, call: Call) -> Reply:
    deployment = state.example("repos/create-deployment")
    deployment_id, stamp = state.new_id(), now()
    url = f"{call.base_url}/repos/{call.repo}/deployments/{deployment_id}"
    deployment.update(
        {key: call.body[key] for key in _DEPLOYMENT_FIELDS + _DEPLOYMENT_FLAGS if key in call.body}
    )
    deployment.update(
        id=deployment_id,
        url=url,
        statuses_url=f"{url}/statuses",
        repository_url=f"{call.base_url}/repos/{call.repo}",
        sha=call.body["ref"] if _is_sha(call.body["ref"]) else deployment["sha"],
        original_environment=deployment["environment"],
        created_at=stamp,
        updated_at=stamp,
    )
    state.deployments[deployment_id] = deployment
    state.deployment_repo[deployment_id] = call.repo
    state.deployment_statuses[deployment_id] = []
    return Reply(201, deployment)


def _is_sha(ref: str) -> bool:
    return len(ref) in (40, 64) and all(c in "0123456789abcdef" for c in ref)


@handles("repos/list-deployments")
def _list_deployments(state: GitHubState, call: Call) -> Reply:
    wanted = {k: v for k, v in call.query.items() if k in ("sha", "ref", "task", "environment")}
    found = [
        d
        for i, d in state.deployments.items()
        if state.deployment_repo[i] == call.repo and all(d.get(k) == v for k, v in wanted.items())
    ]
    return Reply(200, sorted(found, key=lambda d: -int(d["id"])))


def _deployment(state: GitHubState, call: Call) -> dict[str, Any] | None:
    deployment_id = int(call.param("deployment_id"))
    if state.deployment_repo.get(deployment_id) != call.repo:
        return None
    return state.deployments[deployment_id]


@handles("repos/get-deployment")
def _get_deployment(state: GitHubState, call: Call) -> Reply:
    deployment = _deployment(state, call)
    return not_found() if deployment is None else Reply(200, deployment)


@handles("repos/create-deployment-status")
def _create_deployment_status(state: GitHubState, call: Call) -> Reply:
    deployment = _deployment(state, call)
    if deployment is None:
        return not_found()
    status = state.example("repos/create-deployment-status")
    status_id, stamp = state.new_id(), now()
    log_url = call.body.get("log_url", call.body.get("target_url", ""))
    status.update(
        id=status_id,
        url=f"{deployment['url']}/statuses/{status_id}",
        state=call.body["state"],
        description=call.body.get("description", ""),
        environment=call.body.get("environment", deployment["environment"]),
        environment_url=call.body.get("environment_url", ""),
        target_url=log_url,
        log_url=log_url,
        deployment_url=deployment["url"],
        repository_url=deployment["repository_url"],
        created_at=stamp,
        updated_at=stamp,
    )
    state.deployment_statuses[deployment["id"]].insert(0, status)
    return Reply(201, status, {"location": status["url"]})


@handles("repos/list-deployment-statuses")
def _list_deployment_statuses(state: GitHubState, call: Call) -> Reply:
    deployment = _deployment(state, call)
    if deployment is None:
        return not_found()
    return Reply(200, list(state.deployment_statuses[deployment["id"]]))


@handles("pulls/get")
def _get_pull(state: GitHubState, call: Call) -> Reply | None:
    pull = state.pulls.get((call.repo, int(call.param("pull_number"))))
    return None if pull is None else Reply(200, pull)
