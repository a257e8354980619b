"""``ci-ml github ...``: helpers that set a repository up for ci-ml."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from ci_ml.cli.common import RepoOpt


def setup_environment(
    reviewer: Annotated[
        list[str],
        typer.Option(
            "--reviewer", help="Required reviewer: a user login or ORG/TEAM (repeat; 1 to 6)."
        ),
    ],
    repo: RepoOpt = None,
    name: Annotated[str, typer.Option("--name", help="Environment name.")] = "production",
    wait_timer: Annotated[
        int, typer.Option("--wait-timer", help="Minutes to wait before deploying.")
    ] = 0,
    branch_policy: Annotated[
        str,
        typer.Option(
            "--branch-policy", help="Which branches may deploy: protected, default-branch, all."
        ),
    ] = "protected",
    prevent_self_review: Annotated[
        bool,
        typer.Option(
            "--prevent-self-review",
            help="The one who pushed cannot approve their own deployment.",
        ),
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create or update the deployment environment with required reviewers
    (needs a token with admin rights on the repository, in GITHUB_TOKEN)."""
    from ci_ml.errors import BadInputError
    from ci_ml.github import environments
    from ci_ml.github.client import GitHubClient

    target = repo or os.environ.get("GITHUB_REPOSITORY")
    if not target:
        raise BadInputError("no repository given; pass --repo OWNER/NAME.")
    with GitHubClient() as client:
        result = environments.setup_environment(
            client,
            target,
            name,
            reviewer,
            wait_timer,
            branch_policy,
            prevent_self_review=prevent_self_review,
        )
    print(json.dumps(result, indent=2) if json_ else environments.describe(result))
