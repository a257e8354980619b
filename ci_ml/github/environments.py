"""The deployment environment that guards production: required reviewers, a wait timer and
the branches that may deploy, set through GitHub's REST API.

:func:`setup_environment` creates or updates the environment (``PUT
/repos/{owner}/{repo}/environments/{environment_name}``), so a job with
``environment: production`` waits until one of the reviewers approves it. Running it
again with the same arguments changes nothing. It needs a token with admin rights on the
repository (a fine-grained token with "Administration: write", or a classic token with
``repo``); the ``GITHUB_TOKEN`` of a workflow never has them.

Reviewers are users (``octocat``) or teams (``octo-org/ml-maintainers``, also written
``@octo-org/ml-maintainers``); their ids come from ``GET /users/{username}`` and
``GET /orgs/{org}/teams/{team_slug}``.

Branch policies:

    protected       only branches with branch protection rules may deploy (the default)
    default-branch  only the repository's default branch (a custom branch policy)
    all             any branch: the reviewers are the only guard
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from ci_ml.errors import BadInputError
from ci_ml.github.client import GitHubClient, GitHubError

T = TypeVar("T")
BRANCH_POLICIES: tuple[str, ...] = ("protected", "default-branch", "all")
MAX_REVIEWERS = 6  # GitHub's limit
MAX_WAIT_TIMER = 43_200  # minutes (30 days), GitHub's limit

_REPO = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}")
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_TEAM = re.compile(r"@?([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})")
_ADMIN_HINT = (
    "creating an environment needs a token with admin rights on the repository: a "
    "fine-grained token with 'Administration: write' or a classic token with the 'repo' "
    "scope, from a repository admin (a workflow's GITHUB_TOKEN never has them); set it "
    "as GITHUB_TOKEN and run again"
)


@dataclass(frozen=True)
class Reviewer:
    """A required reviewer: a user or a team, with GitHub's id for it."""

    type: Literal["User", "Team"]
    name: str  # login, or org/team-slug
    id: int


def setup_environment(
    client: GitHubClient,
    repo: str,
    name: str = "production",
    reviewers: Iterable[str] = (),
    wait_timer: int = 0,
    branch_policy: str = "protected",
    *,
    prevent_self_review: bool = False,
) -> dict[str, Any]:
    """Create or update the deployment environment ``name`` of ``repo`` (``owner/name``).

    ``reviewers`` (one to six users or ``org/team`` teams) must approve each deployment;
    ``wait_timer`` delays it by that many minutes; ``branch_policy`` is one of
    :data:`BRANCH_POLICIES`; ``prevent_self_review`` stops whoever started the run from
    approving it. Returns what was set (see :func:`describe`), with GitHub's answer under
    ``"environment"``. Raises :class:`~ci_ml.errors.BadInputError` for bad arguments and
    for a token that may not administer the repository.
    """
    names = _check_arguments(repo, name, reviewers, wait_timer, branch_policy)
    repository = _get_repository(client, repo)
    resolved = [_resolve(client, reviewer) for reviewer in names]
    body = {
        "wait_timer": wait_timer,
        "prevent_self_review": prevent_self_review,
        "reviewers": [{"type": r.type, "id": r.id} for r in resolved],
        "deployment_branch_policy": _branch_settings(branch_policy),
    }
    path = f"/repos/{repo}/environments/{quote(name, safe='')}"
    environment = _admin_call(lambda: client.put(path, body), repo, name)
    patterns: list[str] = []
    if branch_policy == "default-branch":
        patterns = [str(repository["default_branch"])]
        _admin_call(lambda: _ensure_branch_patterns(client, path, patterns), repo, name)
    return {
        "repository": repo,
        "name": name,
        "url": environment.get("html_url"),
        "reviewers": [{"type": r.type, "name": r.name, "id": r.id} for r in resolved],
        "wait_timer": wait_timer,
        "prevent_self_review": prevent_self_review,
        "branch_policy": branch_policy,
        "branch_patterns": patterns,
        "environment": environment,
    }


def describe(result: dict[str, Any]) -> str:
    """One paragraph saying what :func:`setup_environment` set, for people."""
    who = ", ".join(
        r["name"] + (" (team)" if r["type"] == "Team" else "") for r in result["reviewers"]
    )
    branches = {
        "protected": "only protected branches may deploy",
        "default-branch": f"only {', '.join(result['branch_patterns'])} may deploy",
        "all": "any branch may deploy",
    }[result["branch_policy"]]
    lines = [
        f"environment {result['name']!r} of {result['repository']}: "
        f"a deployment waits for one of {who} to approve",
        f"{branches}; wait timer {result['wait_timer']} min; "
        f"self-review {'prevented' if result['prevent_self_review'] else 'allowed'}",
    ]
    if result.get("url"):
        lines.append(str(result["url"]))
    return "\n".join(lines)


# -- arguments --------------------------------------------------------------------------


def _check_arguments(
    repo: str, name: str, reviewers: Iterable[str], wait_timer: int, branch_policy: str
) -> list[str]:
    """Every argument checked before any request; the reviewers, deduplicated."""
    if not _REPO.fullmatch(repo or ""):
        raise BadInputError(
            f"repository {repo!r} is not of the form OWNER/NAME, e.g. octo-org/models."
        )
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise BadInputError(
            f"environment name {name!r} must be 1 to 255 printable characters, e.g. production."
        )
    if branch_policy not in BRANCH_POLICIES:
        raise BadInputError(
            f"branch policy {branch_policy!r} is not one of {', '.join(BRANCH_POLICIES)}."
        )
    if isinstance(wait_timer, bool) or not 0 <= wait_timer <= MAX_WAIT_TIMER:
        raise BadInputError(
            f"wait timer {wait_timer!r} must be a number of minutes from 0 to {MAX_WAIT_TIMER}."
        )
    names = list(dict.fromkeys(r.strip().removeprefix("@") for r in reviewers if r.strip()))
    if not names:
        raise BadInputError(
            "name at least one reviewer (a user such as octocat or a team such as "
            "octo-org/ml-maintainers): without one, every push to the branch deploys unapproved."
        )
    if len(names) > MAX_REVIEWERS:
        raise BadInputError(
            f"{len(names)} reviewers given; GitHub allows at most {MAX_REVIEWERS} per "
            "environment: name a team instead of its members."
        )
    for reviewer in names:
        if not (_LOGIN.fullmatch(reviewer) or _TEAM.fullmatch(reviewer)):
            raise BadInputError(
                f"reviewer {reviewer!r} is neither a GitHub login (octocat) nor a team "
                "(org/team-slug)."
            )
    return names


def _branch_settings(branch_policy: str) -> dict[str, bool] | None:
    if branch_policy == "protected":
        return {"protected_branches": True, "custom_branch_policies": False}
    if branch_policy == "default-branch":
        return {"protected_branches": False, "custom_branch_policies": True}
    return None  # any branch


# -- requests ---------------------------------------------------------------------------


def _get_repository(client: GitHubClient, repo: str) -> dict[str, Any]:
    """The repository, which also proves the token works before anything is changed."""
    try:
        found: dict[str, Any] = client.get(f"/repos/{repo}")
    except GitHubError as exc:
        if exc.status == 404:
            raise BadInputError(
                f"repository {repo} was not found, or the token cannot see it; check the "
                "name and that GITHUB_TOKEN belongs to someone with access."
            ) from None
        raise
    return found


def _resolve(client: GitHubClient, reviewer: str) -> Reviewer:
    """A user's or a team's id, from its login or org/slug."""
    team = _TEAM.fullmatch(reviewer)
    try:
        if team:
            org, slug = team.groups()
            found = client.get(f"/orgs/{org}/teams/{slug}")
            return Reviewer("Team", f"{org}/{slug}", int(found["id"]))
        found = client.get(f"/users/{reviewer}")
    except GitHubError as exc:
        if exc.status != 404:
            raise
        what = (
            f"team {reviewer!r} was not found, or the token cannot see it (reading an "
            "organization's teams needs 'Members: read')"
            if team
            else f"GitHub has no user {reviewer!r}"
        )
        raise BadInputError(f"{what}; check the reviewer's name.") from None
    if found.get("type") != "User":
        raise BadInputError(
            f"{reviewer!r} is a GitHub {found.get('type', 'account')}, not a user; name "
            "one of its teams as org/team-slug instead."
        )
    return Reviewer("User", str(found["login"]), int(found["id"]))


def _ensure_branch_patterns(client: GitHubClient, path: str, patterns: list[str]) -> None:
    """Add the branch name patterns the environment lacks (creating one twice is refused)."""
    existing = {
        policy["name"]
        for policy in client.paginate(
            f"{path}/deployment-branch-policies", items_key="branch_policies"
        )
    }
    for pattern in patterns:
        if pattern not in existing:
            client.post(f"{path}/deployment-branch-policies", {"name": pattern, "type": "branch"})


def _admin_call(call: Callable[[], T], repo: str, name: str) -> T:
    """Run a request that needs admin rights; a refusal becomes one clear BadInputError.

    The repository was readable just before, so a 403 or 404 here means the token lacks
    the rights, not that the repository is missing.
    """
    try:
        return call()
    except BadInputError as exc:  # the client's 403
        raise BadInputError(
            f"GitHub refused to set up environment {name!r} of {repo}: {_ADMIN_HINT}. ({exc})"
        ) from None
    except GitHubError as exc:
        if exc.status == 404:
            raise BadInputError(
                f"GitHub refused to set up environment {name!r} of {repo} (404): {_ADMIN_HINT}."
            ) from None
        if exc.status == 422:
            raise BadInputError(
                f"GitHub did not accept environment {name!r} of {repo} ({_said(exc)}); "
                "reviewers need read access to the repository, and required reviewers on a "
                "private repository need GitHub Pro, Team or Enterprise."
            ) from None
        raise


def _said(exc: GitHubError) -> str:
    """GitHub's own words from the client's message: 'GitHub answered 422 to X (said); hint.'"""
    found = re.search(r" \((.*)\); [^;]*$", str(exc))
    return found.group(1) if found else str(exc)
