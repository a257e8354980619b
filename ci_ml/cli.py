"""The ``ci-ml`` command line: parse flags, call :mod:`ci_ml.api`, print, exit.

Exit codes (DESIGN.md): 0 done and passed, 1 a gate blocked, 2 bad input,
3 an outside service failed, 4 production moved (conflict), 70 a bug.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ci_ml.cliopts import ConfigOpt, JsonOpt, RegistryOpt, RunDirOpt
from ci_ml.cliopts import err as _err
from ci_ml.errors import CiMlError, GateBlocked

INTERNAL_ERROR = 70
F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="ci-ml",
    help="CI/CD for machine-learning models: data and model gates, a comparison with "
    "production, and deployment of only the models that pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Check and show ci-ml.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")

_state = {"traceback": False}


def command(func: F) -> F:
    """Run a command body; turn CiMlError into one line and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CiMlError as exc:
            if _state["traceback"]:
                raise
            _err(f"ci-ml: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _err("ci-ml: interrupted.")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _state["traceback"]:
                raise
            _err(
                f"ci-ml: unexpected error ({type(exc).__name__}: {exc}); this is a bug — "
                "run again with --traceback and report it."
            )
            raise typer.Exit(INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _print_version(value: bool) -> None:
    # eager, so `ci-ml --version` works without a command (a plain callback never runs then)
    if value:
        from ci_ml import __version__

        print(f"ci-ml {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Global options."""
    _state["traceback"] = traceback


def _project(config: Path) -> Any:
    from ci_ml.api import open_project

    return open_project(config)


def _run_dir(project: Any, run_dir: Path | None, *, new: bool) -> Path:
    from ci_ml import rundir

    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir.resolve()
    if new:
        return rundir.new_run_dir(project.runs_dir)
    return rundir.latest_run_dir(project.runs_dir)


def _print_json(record: Any) -> None:
    print(json.dumps(record, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    """JSON for what json cannot encode: records (e.g. a ModelVersion) as objects, else str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _step(
    name: str, config: Path, run_dir: Path | None, as_json: bool, *, new: bool = False
) -> Any:
    from ci_ml import api

    project = _project(config)
    directory = _run_dir(project, run_dir, new=new)
    func = dict(api.STEPS)[name]
    with _progress(name):
        record = func(project, directory)
    if as_json:
        _print_json(record)
    else:
        _err(f"{name}: done — {directory}")
    return record


class _progress:
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


@config_app.command("check")
@command
def config_check(config: ConfigOpt = Path("ci-ml.yaml")) -> None:
    """Validate ci-ml.yaml and print the effective config (defaults filled in)."""
    from ci_ml.config import dump_config

    project = _project(config)
    print(dump_config(project.config), end="")
    _err(f"{project.config_path}: valid.")


@app.command()
@command
def pull(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Pull the configured data with DVC and record its version (starts a new run)."""
    _step("pull", config, run_dir, json_, new=True)


@app.command()
@command
def validate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Run the data gates: built-in checks and the Great Expectations suite."""
    record = _step("validate", config, run_dir, json_)
    if not record["success"]:
        raise GateBlocked(f"data gates failed: {', '.join(record['blocking'])}.")


@app.command()
@command
def train(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Train the candidate and save it as model.skops with model.json."""
    _step("train", config, run_dir, json_)


@app.command()
@command
def evaluate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Compute the candidate's metrics on the holdout rows."""
    _step("evaluate", config, run_dir, json_)


@app.command()
@command
def gate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Apply the gates and write the decision record gate-report.json (exit 1 if blocked)."""
    record = _step("gate", config, run_dir, json_)
    _raise_unless_pass(record)


@app.command()
@command
def report(
    config: ConfigOpt = Path("ci-ml.yaml"),
    run_dir: RunDirOpt = None,
    github: Annotated[
        bool,
        typer.Option(
            "--github",
            help="Also post it: job summary, annotations, the sticky PR "
            "comment and the commit status (needs GITHUB_TOKEN).",
        ),
    ] = False,
    publish_from: Annotated[
        Path | None,
        typer.Option(
            "--publish-from",
            help="Post the report of a fork pull request from this "
            "downloaded run directory (the workflow_run publisher job).",
        ),
    ] = None,
    status_context: Annotated[
        str, typer.Option("--status-context", help="Context name of the commit status.")
    ] = "ci-ml/gates",
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Sticky-comment key (default: workflow/job; add the "
            "matrix values when a matrix reports on one pull request).",
        ),
    ] = None,
) -> None:
    """Write report.md from the run files and print it (and post it with --github)."""
    from ci_ml import api, publish

    if publish_from is not None:
        _mask_token()
        _show(publish.publish_from(publish_from.resolve(), _github_client))
        return
    project = _project(config)
    directory = _run_dir(project, run_dir, new=False)
    links = _run_links()
    text = api.report(project, directory, links)
    if not github:
        print(text, end="")
        return
    _mask_token()
    _show(publish.publish(directory, text, _github_client, status_context=status_context, key=key))


def _github_client() -> Any:
    from ci_ml.github.client import GitHubClient

    return GitHubClient()


def _run_links() -> dict[str, str] | None:
    from ci_ml.github.actions import read_context

    url = read_context().run_url
    return {"workflow run": url, "artifacts": url + "#artifacts"} if url else None


def _mask_token() -> None:
    """Inside Actions, tell the runner to mask the token in every log line."""
    import os

    from ci_ml.github.actions import mask_commands

    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN")
    if token and os.environ.get("GITHUB_ACTIONS") == "true":
        for line in mask_commands(token):
            print(line)


def _show(result: Any) -> None:
    for line in result.annotations:
        print(line)
    for line in result.done:
        _err(f"ci-ml: {line}")
    for line in result.warnings:
        _err(f"ci-ml: warning: {line}")


@app.command()
@command
def run(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Run every step: pull, validate, train, evaluate, gate, report, register."""
    from ci_ml import api

    project = _project(config)
    directory = _run_dir(project, run_dir, new=True)
    clock = {"t": time.perf_counter()}

    def on_step(name: str) -> None:
        if not json_:
            _err(f"· {name} (at {time.perf_counter() - clock['t']:.1f}s)")

    with _progress("run"):
        results = api.run(project, directory, on_step)
    if json_:
        _print_json({k: v for k, v in results.items() if k != "report"})
    else:
        _summary(results, directory)
    _raise_unless_pass(results["gate"])


def _summary(results: dict[str, Any], directory: Path) -> None:
    from ci_ml.report import ICONS

    gate_report = results["gate"]
    verdict = gate_report["verdict"]
    lines = [f"\n{ICONS.get(verdict, '')} verdict: {verdict.upper()}"]
    for g in gate_report["gates"]:
        lines.append(f"  {ICONS.get(g['verdict'], '')} {g['name']}: {g['reason']}")
    if "register" in results:
        lines.append(f"registered model version {results['register'].version}")
    lines.append(f"run files: {directory}  (report: {directory / 'report.md'})")
    print("\n".join(lines))


def _raise_unless_pass(gate_report: dict[str, Any]) -> None:
    """Exit 1 on fail; an inconclusive verdict (policy 'approve') exits 0 with a warning."""
    reasons = "; ".join(gate_report.get("reasons") or []) or gate_report["verdict"]
    if gate_report["verdict"] == "fail":
        raise GateBlocked(f"blocked: {reasons}.")
    if gate_report["verdict"] == "inconclusive":
        _err(f"ci-ml: inconclusive — deployable only with a maintainer's approval: {reasons}.")


# --- registry ------------------------------------------------------------------------

registry_app = typer.Typer(help="Model versions and the production pointer.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


def _registry(config: Path, url: str | None) -> Any:
    from ci_ml.registry import open_registry

    if url:
        return open_registry(url, root=Path.cwd())
    project = _project(config)
    return open_registry(project.config.registry.url, root=project.root)


def _version_row(version: Any, production: str | None) -> str:
    mark = "*" if version.version == production else " "
    metrics = version.metadata.get("metrics") or {}
    shown = ", ".join(f"{k}={v:.4f}" for k, v in list(metrics.items())[:3] if isinstance(v, float))
    return f"{mark} {version.version}  {version.created_at[:19]}  {version.registered_by}  {shown}"


@registry_app.command("list")
@command
def registry_list(
    config: ConfigOpt = Path("ci-ml.yaml"), registry: RegistryOpt = None, json_: JsonOpt = False
) -> None:
    """List the registered versions, newest first (* marks production)."""
    from dataclasses import asdict

    reg = _registry(config, registry)
    versions = reg.list_versions()
    production = reg.get_production()
    current = production.version if production else None
    if json_:
        _print_json({"production": current, "versions": [asdict(v) for v in versions]})
        return
    if not versions:
        _err("no model registered yet; 'ci-ml run' registers a passing candidate.")
    for version in versions:
        print(_version_row(version, current))


@registry_app.command("show")
@command
def registry_show(
    version: Annotated[str, typer.Argument(help="Version (12 hex) or full digest; 'production'.")],
    config: ConfigOpt = Path("ci-ml.yaml"),
    registry: RegistryOpt = None,
) -> None:
    """Show one version's record as JSON."""
    from dataclasses import asdict

    from ci_ml.errors import BadInputError

    reg = _registry(config, registry)
    found = reg.get_production() if version == "production" else reg.get(version)
    if found is None:
        raise BadInputError(
            "no model is in production yet; promote one with 'ci-ml registry promote'."
        )
    _print_json(asdict(found))


@registry_app.command("history")
@command
def registry_history(
    config: ConfigOpt = Path("ci-ml.yaml"), registry: RegistryOpt = None, json_: JsonOpt = False
) -> None:
    """The production history: what was promoted or rolled back, when, by whom."""
    from dataclasses import asdict

    events = _registry(config, registry).history()
    if json_:
        _print_json([asdict(e) for e in events])
        return
    if not events:
        _err("nothing has been promoted yet.")
    for e in events:
        print(
            f"{e.seq:>4}  {e.at[:19]}  {e.action:<8} {e.version}  "
            f"(was {e.previous or '—'})  by {e.by}"
        )


@registry_app.command("promote")
@command
def registry_promote(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    expected_current: Annotated[
        str | None,
        typer.Option(
            "--expected-current",
            help="Refuse (exit 4) unless this version is in production now; "
            "'none' when nothing is. Default: whatever is in production now.",
        ),
    ] = None,
    config: ConfigOpt = Path("ci-ml.yaml"),
    registry: RegistryOpt = None,
) -> None:
    """Put a registered version in production (compare-and-swap; exit 4 on a conflict)."""
    from ci_ml.api import actor

    reg = _registry(config, registry)
    if expected_current is None:
        current = reg.get_production()
        expected = current.version if current else None
    else:
        expected = None if expected_current.lower() == "none" else expected_current
    event = reg.promote(version, expected, by=actor(), record={"via": "ci-ml registry promote"})
    print(f"production is now {event.version} (was {event.previous or 'none'}), event #{event.seq}")


def _register_areas() -> None:
    """Commands that live in their own modules (each exposes ``register(app, command)``)."""
    from ci_ml import cli_deploy, cli_export, cli_github, cli_monitor, cli_serve

    for module in (cli_serve, cli_monitor, cli_deploy, cli_github, cli_export):
        module.register(app, command)


_register_areas()


def main() -> None:
    """Console-script entry point."""
    app()
