"""``ci-ml deploy`` and ``ci-ml rollback``: thin commands over :mod:`ci_ml.deploy`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ci_ml.cliopts import ConfigOpt, RegistryOpt
from ci_ml.cliopts import err as _err


def register(app: typer.Typer, command: Callable[[Any], Any]) -> None:
    """Add the deploy and rollback commands to ``app``."""

    @app.command("deploy")
    @command
    def deploy_cmd(
        config: ConfigOpt = Path("ci-ml.yaml"),
        run_dir: Annotated[
            Path | None, typer.Option("--run-dir", help="The gated run (default: the latest).")
        ] = None,
        registry: RegistryOpt = None,
        approved_by: Annotated[
            list[str] | None,
            typer.Option(
                "--approved-by",
                help="Who approved an inconclusive candidate "
                "(inside Actions the environment's approvals are read from GitHub).",
            ),
        ] = None,
        environment: Annotated[
            str, typer.Option("--environment", help="GitHub environment of the deployment.")
        ] = "production",
    ) -> None:
        """Deploy a gated run: verify its decision record, promote, notify, smoke-test,
        and roll back automatically on failure (exit 1)."""
        from ci_ml import deploy
        from ci_ml.api import actor, open_project
        from ci_ml.api import register as register_run
        from ci_ml.errors import RolledBack
        from ci_ml.rundir import latest_run_dir

        project = open_project(config)
        directory = run_dir.resolve() if run_dir else latest_run_dir(project.runs_dir)
        github = _GitHubDeployment.start(environment)
        approvals = sorted(set(approved_by or []) | set(github.approvals))
        reg = _open(project, registry)
        try:
            result = deploy.deploy_run(
                project.config,
                reg,
                directory,
                by=actor(),
                approvals=approvals,
                context=github.context(),
                register=lambda: register_run(project, directory, reg),
            )
        except Exception:
            github.finish("failure", "ci-ml deploy refused or failed")
            raise
        for step in result.steps:
            _err(f"ci-ml: {step}")
        if result.rolled_back:
            github.finish("failure", f"rolled back: {result.reason}")
            raise RolledBack(f"deployment of {result.version} rolled back: {result.reason}")
        github.finish("success", f"{result.version} is in production")
        print(f"production is now {result.version} (was {result.previous or 'none'})")

    @app.command("rollback")
    @command
    def rollback_cmd(
        config: ConfigOpt = Path("ci-ml.yaml"),
        to: Annotated[
            str | None, typer.Option("--to", help="Version to restore (default: the previous).")
        ] = None,
        reason: Annotated[str, typer.Option("--reason", help="Why, for the history.")] = "manual",
        registry: RegistryOpt = None,
    ) -> None:
        """Put the previous (or a named) version back in production, notify and check it."""
        from ci_ml import deploy
        from ci_ml.api import actor, open_project

        project = open_project(config)
        result = deploy.rollback(
            project.config, _open(project, registry), to=to, by=actor(), reason=reason
        )
        for step in result.steps:
            _err(f"ci-ml: {step}")
        print(f"production is now {result.version} (was {result.previous})")


def _open(project: Any, url: str | None) -> Any:
    from ci_ml.registry import open_registry

    return open_registry(url or project.config.registry.url, root=project.root)


class _GitHubDeployment:
    """Best-effort GitHub records around a deployment (no-op outside Actions)."""

    def __init__(
        self, client: Any, ctx: Any, deployment: dict[str, Any] | None, approvals: list[str]
    ) -> None:
        self.client, self.ctx, self.deployment, self.approvals = client, ctx, deployment, approvals

    @classmethod
    def start(cls, environment: str) -> _GitHubDeployment:
        from ci_ml.github.actions import read_context

        ctx = read_context()
        token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
        if not (ctx.in_actions and ctx.repository and token):
            return cls(None, ctx, None, [])
        from ci_ml.errors import CiMlError
        from ci_ml.github.client import GitHubClient
        from ci_ml.github.deployments import find_deployment, run_approvals

        client = GitHubClient()
        try:
            approvals = run_approvals(client, ctx.repository, ctx.run_id)
            deployment = find_deployment(client, ctx.repository, ctx.sha, environment)
        except CiMlError as exc:
            _err(
                f"ci-ml: warning: cannot read the deployment from GitHub ({exc}); "
                "give the job 'deployments: write' and 'actions: read'."
            )
            return cls(client, ctx, None, [])
        self = cls(client, ctx, deployment, approvals)
        self._status("in_progress", "ci-ml deploy started")
        return self

    def context(self) -> dict[str, Any]:
        return {
            "run_url": self.ctx.run_url,
            "sha": self.ctx.sha or None,
            "deployment_id": (self.deployment or {}).get("id"),
        }

    def finish(self, state: str, description: str) -> None:
        self._status(state, description)

    def _status(self, state: str, description: str) -> None:
        if self.client is None or self.deployment is None:
            return
        from ci_ml.errors import CiMlError
        from ci_ml.github.deployments import set_deployment_status

        url = os.environ.get("CI_ML_SERVICE_URL")
        try:
            set_deployment_status(
                self.client,
                self.ctx.repository,
                int(self.deployment["id"]),
                state,
                description=description,
                environment_url=url,
                log_url=self.ctx.run_url,
            )
        except CiMlError as exc:
            _err(f"ci-ml: warning: could not record the deployment status ({exc}).")
