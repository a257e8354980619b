"""What the ``ci-ml`` command modules share: every common flag (declared once per meaning), the
one decorator that turns errors into exit codes, JSON printing and the progress spinner.

Exit codes (DESIGN.md): 0 done and passed, 1 a gate blocked, 2 bad input, 3 an outside service
failed, 4 production moved (conflict), 70 a bug. Library modules are imported inside the
functions, so ``ci-ml --help`` loads none of them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from ci_ml.project import Project
    from ci_ml.registry import Registry

INTERNAL_ERROR = 70
F = TypeVar("F", bound=Callable[..., Any])

# --config, meaning 1: the project's config, required
ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path of ci-ml.yaml (its folder is the project root)."),
]
# --config, meaning 2: the project's config, optional when --registry says where the models are
OptionalConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="ci-ml.yaml (its folder is the project root; it gives registry.url and "
        "model.trusted_types); optional with --registry. Default: ./ci-ml.yaml when it exists.",
    ),
]
# --run-dir, meaning 1: where a step reads and writes (pull and run start a new one)
RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Run directory. Default: a new one under .ci-ml/runs for pull/run, "
        "else .ci-ml/runs/latest.",
    ),
]
# --run-dir, meaning 2: a finished run that a command acts on
GatedRunOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="The gated run (default: the latest).")
]
TrainedRunOpt = Annotated[
    Path | None, typer.Option("--run-dir", help="The trained run (default: the latest).")
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="CI_ML_REGISTRY_URL",
        help="Registry URL or directory (default: registry.url of ci-ml.yaml).",
    ),
]
RepoOpt = Annotated[
    str | None,
    typer.Option("--repo", help="OWNER/NAME on GitHub (default: $GITHUB_REPOSITORY)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the step's record as JSON.")]

_state = {"traceback": False}


def err(message: str) -> None:
    """One line on stderr (stdout is kept for results and --json)."""
    sys.stderr.write(message + "\n")


def show_tracebacks(on: bool) -> None:
    """``--traceback``: let errors propagate with their traceback."""
    _state["traceback"] = on


def command(func: F) -> F:
    """Run a command body; turn CiMlError into one line and its exit code."""
    from ci_ml.errors import CiMlError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CiMlError as exc:
            if _state["traceback"]:
                raise
            err(f"ci-ml: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err("ci-ml: interrupted.")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _state["traceback"]:
                raise
            err(
                f"ci-ml: unexpected error ({type(exc).__name__}: {exc}); this is a bug — "
                "run again with --traceback and report it."
            )
            raise typer.Exit(INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


def print_json(record: Any) -> None:
    """A record on stdout as indented JSON."""
    print(json.dumps(record, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    """JSON for what json cannot encode: records (e.g. a ModelVersion) as objects, else str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def project(config: Path) -> Project:
    """The project of ``--config``."""
    from ci_ml.project import open_project

    return open_project(config)


def optional_project(config: Path | None, registry: str | None) -> Project | None:
    """The project of ``--config``; None when only ``--registry`` is given and there is no
    ./ci-ml.yaml (a registry alone is enough)."""
    path = config or Path("ci-ml.yaml")
    if config is None and registry and not path.is_file():
        return None
    return project(path)


def open_registry(found: Project | None, url: str | None) -> Registry:
    """The registry of ``--registry`` (relative to the current folder without a project),
    else the project's ``registry.url``."""
    if found is not None:
        return found.registry(url)
    from ci_ml.registry import open_registry as open_url

    assert url, "a registry URL is needed without a project"
    return open_url(url, root=Path.cwd())


class progress:
    """A spinner on stderr while a step runs (only on a terminal)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status: Any = None

    def __enter__(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status(f"ci-ml {self.name} ...")
            self.status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)


# -- publishing on GitHub (report, combine) ---------------------------------------------


def github_client() -> Any:
    """The GitHub API client (GITHUB_TOKEN, GITHUB_API_URL)."""
    from ci_ml.github.client import GitHubClient

    return GitHubClient()


def run_links() -> dict[str, str] | None:
    """Links to this workflow run and its artifacts, inside Actions."""
    from ci_ml.github.actions import read_context

    url = read_context().run_url
    return {"workflow run": url, "artifacts": url + "#artifacts"} if url else None


def mask_token() -> None:
    """Inside Actions, tell the runner to mask the token in every log line."""
    import os

    from ci_ml.github.actions import mask_commands

    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if token and os.environ.get("GITHUB_ACTIONS") == "true":
        for line in mask_commands(token):
            print(line)


def show_published(result: Any) -> None:
    """What publishing did: annotations on stdout, the rest on stderr."""
    for line in result.annotations:
        print(line)
    for line in result.done:
        err(f"ci-ml: {line}")
    for line in result.warnings:
        err(f"ci-ml: warning: {line}")
