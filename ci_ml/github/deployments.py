"""Deployment records on GitHub: the deployment a job's ``environment:`` created, its
statuses, and who approved the run (for the registry's audit trail)."""

from __future__ import annotations

from typing import Any

from ci_ml.github.client import GitHubClient

STATES = ("in_progress", "success", "failure", "error", "inactive", "queued", "pending")


def find_deployment(
    client: GitHubClient, repo: str, sha: str, environment: str
) -> dict[str, Any] | None:
    """The newest deployment of ``sha`` to ``environment`` (the one the job created)."""
    found = client.get(
        f"/repos/{repo}/deployments",
        params={"sha": sha, "environment": environment, "per_page": 10},
    )
    return found[0] if found else None


def set_deployment_status(
    client: GitHubClient,
    repo: str,
    deployment_id: int,
    state: str,
    *,
    description: str = "",
    environment_url: str | None = None,
    log_url: str | None = None,
) -> dict[str, Any]:
    """Add a status (in_progress, success, failure ...) to a deployment."""
    if state not in STATES:
        raise ValueError(f"unknown deployment state {state!r}; allowed: {', '.join(STATES)}")
    body: dict[str, Any] = {"state": state, "description": description[:140]}
    if environment_url:
        body["environment_url"] = environment_url
    if log_url:
        body["log_url"] = log_url
    result: dict[str, Any] = client.post(
        f"/repos/{repo}/deployments/{deployment_id}/statuses", json=body
    )
    return result


def run_approvals(client: GitHubClient, repo: str, run_id: str) -> list[str]:
    """Logins of those who approved this workflow run's deployment reviews."""
    reviews = client.get(f"/repos/{repo}/actions/runs/{run_id}/approvals") or []
    return sorted(
        {r["user"]["login"] for r in reviews if r.get("state") == "approved" and r.get("user")}
    )
