"""``ci-ml deploy`` and ``ci-ml rollback``: thin commands over :mod:`ci_ml.deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ci_ml.cli.common import ConfigOpt, GatedRunOpt, RegistryOpt, err, project

if TYPE_CHECKING:
    from ci_ml.github.deployments import DeploymentRecord


def deploy(
    config: ConfigOpt = Path("ci-ml.yaml"),
    run_dir: GatedRunOpt = None,
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
    from ci_ml import api
    from ci_ml import deploy as deployment
    from ci_ml.errors import RolledBack
    from ci_ml.github.deployments import DeploymentRecord
    from ci_ml.project import actor

    found = project(config)
    directory = found.run_dir(run_dir)
    github = DeploymentRecord.start(environment)
    _warn(github)
    approvals = sorted(set(approved_by or []) | set(github.approvals))
    reg = found.registry(registry)
    try:
        result = deployment.deploy_run(
            found,
            reg,
            directory,
            by=actor(),
            approvals=approvals,
            context=github.context(),
            register=lambda: api.register(found, directory, reg),
        )
    except Exception:
        _finish(github, "failure", "ci-ml deploy refused or failed")
        raise
    for step in result.steps:
        err(f"ci-ml: {step}")
    if result.rolled_back:
        _finish(github, "failure", f"rolled back: {result.reason}")
        raise RolledBack(f"deployment of {result.version} rolled back: {result.reason}")
    _finish(github, "success", f"{result.version} is in production")
    print(f"production is now {result.version} (was {result.previous or 'none'})")


def rollback(
    config: ConfigOpt = Path("ci-ml.yaml"),
    to: Annotated[
        str | None, typer.Option("--to", help="Version to restore (default: the previous).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the history.")] = "manual",
    registry: RegistryOpt = None,
) -> None:
    """Put the previous (or a named) version back in production, notify and check it."""
    from ci_ml import deploy as deployment
    from ci_ml.project import actor

    found = project(config)
    result = deployment.rollback(
        found.config, found.registry(registry), to=to, by=actor(), reason=reason
    )
    for step in result.steps:
        err(f"ci-ml: {step}")
    print(f"production is now {result.version} (was {result.previous})")


def _finish(github: DeploymentRecord, state: str, description: str) -> None:
    github.finish(state, description)
    _warn(github)


def _warn(github: DeploymentRecord) -> None:
    for line in github.warnings:
        err(f"ci-ml: warning: {line}")
    github.warnings.clear()
