"""Deployment records on GitHub: the deployment a job's ``environment:`` created, its
statuses, and who approved the run (for the registry's audit trail)."""

from __future__ import annotations

import os
from typing import Any

from ci_ml.errors import CiMlError
from ci_ml.github.actions import ActionsContext, read_context
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


class DeploymentRecord:
    """Best-effort GitHub records around one ``ci-ml deploy``: the deployment the job's
    ``environment:`` created, its statuses, and the run's approvers. A no-op outside Actions
    or without a token; a GitHub failure becomes a line in :attr:`warnings`, never an error."""

    def __init__(
        self,
        client: GitHubClient | None,
        ctx: ActionsContext,
        deployment: dict[str, Any] | None,
        approvals: list[str],
    ) -> None:
        self.client, self.ctx, self.deployment, self.approvals = client, ctx, deployment, approvals
        self.warnings: list[str] = []

    @classmethod
    def start(cls, environment: str) -> DeploymentRecord:
        """Find this run's deployment to ``environment`` and mark it in progress."""
        ctx = read_context()
        token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
        if not (ctx.in_actions and ctx.repository and token):
            return cls(None, ctx, None, [])
        client = GitHubClient()
        try:
            approvals = run_approvals(client, ctx.repository, ctx.run_id)
            deployment = find_deployment(client, ctx.repository, ctx.sha, environment)
        except CiMlError as exc:
            record = cls(client, ctx, None, [])
            record.warnings.append(
                f"cannot read the deployment from GitHub ({exc}); "
                "give the job 'deployments: write' and 'actions: read'."
            )
            return record
        record = cls(client, ctx, deployment, approvals)
        record.finish("in_progress", "ci-ml deploy started")
        return record

    def context(self) -> dict[str, Any]:
        """What the registry's history records of this run."""
        return {
            "run_url": self.ctx.run_url,
            "sha": self.ctx.sha or None,
            "deployment_id": (self.deployment or {}).get("id"),
        }

    def finish(self, state: str, description: str) -> None:
        """Add a status to the deployment (when there is one)."""
        if self.client is None or self.deployment is None:
            return
        try:
            set_deployment_status(
                self.client,
                self.ctx.repository,
                int(self.deployment["id"]),
                state,
                description=description,
                environment_url=os.environ.get("CI_ML_SERVICE_URL"),
                log_url=self.ctx.run_url,
            )
        except CiMlError as exc:
            self.warnings.append(f"could not record the deployment status ({exc}).")
