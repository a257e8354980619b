"""Options and output helpers shared by the ``ci-ml`` command modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path of ci-ml.yaml (its folder is the project root)."),
]
RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Run directory. Default: a new one under .ci-ml/runs for pull/run, "
        "else .ci-ml/runs/latest.",
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="CI_ML_REGISTRY_URL",
        help="Registry URL or directory (default: registry.url of ci-ml.yaml).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the step's record as JSON.")]


def err(message: str) -> None:
    """One line on stderr (stdout is kept for results and --json)."""
    sys.stderr.write(message + "\n")
