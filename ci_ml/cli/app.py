"""The ``ci-ml`` command line: the typer app and the one table of its commands.

Each command is a plain function in a module of :mod:`ci_ml.cli` (one per area); :data:`COMMANDS`
names them, and :func:`build` registers each under the one error decorator
(:func:`ci_ml.cli.common.command`). Nothing outside ``ci_ml.cli`` imports this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Annotated, Any

import typer
from typer.core import TyperGroup

try:  # the click that typer parses with: its own copy in recent typer, else click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - typer before it vendored click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from ci_ml.cli import deploy, export, github, matrix, monitor, registry, serve, shadow, steps
from ci_ml.cli.common import command, show_tracebacks

# group name -> its help; "" is the top level
GROUPS: dict[str, str] = {
    "": "CI/CD for machine-learning models: data and model gates, a comparison with "
    "production, and deployment of only the models that pass.",
    "config": "Check and show ci-ml.yaml.",
    "registry": "Model versions and the production pointer.",
    "github": "Set a GitHub repository up for ci-ml.",
    "shadow": "A shadow version served beside production, judged on live traffic.",
}

# (group, command name, function), in the order ``ci-ml --help`` lists them
COMMANDS: list[tuple[str, str, Callable[..., Any]]] = [
    ("", "pull", steps.pull),
    ("", "validate", steps.validate),
    ("", "train", steps.train),
    ("", "evaluate", steps.evaluate),
    ("", "gate", steps.gate),
    ("", "report", steps.report),
    ("", "combine", matrix.combine),
    ("", "run", steps.run),
    ("", "experiments", steps.experiments),
    ("", "serve", serve.serve),
    ("", "monitor", monitor.monitor),
    ("", "retrain", monitor.retrain),
    ("", "deploy", deploy.deploy),
    ("", "rollback", deploy.rollback),
    ("", "export", export.export),
    ("config", "check", steps.config_check),
    ("registry", "list", registry.list_versions),
    ("registry", "show", registry.show),
    ("registry", "history", registry.history),
    ("registry", "promote", registry.promote),
    ("shadow", "report", shadow.report),
    ("github", "setup-environment", github.setup_environment),
]


def _print_version(value: bool) -> None:
    # eager, so `ci-ml --version` works without a command (a plain callback never runs then)
    if value:
        from ci_ml import __version__

        print(f"ci-ml {__version__}")
        raise typer.Exit(0)


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
    show_tracebacks(traceback)


class OneLineUsageError(click_errors.UsageError):
    """A flag or argument click refuses, said like every other error: one line on stderr."""

    def show(self, file: IO[Any] | None = None) -> None:
        text = self.format_message().strip()
        if self.ctx is not None:
            see = f"see '{self.ctx.command_path} --help'"
            text = (
                f"{text} {see.capitalize()}."
                if text.endswith("?")
                else f"{text.rstrip('.')}; {see}."
            )
        typer.echo(f"ci-ml: {text}", file=file, err=True)


def _one_line(exc: click_errors.UsageError) -> click_errors.UsageError:
    if isinstance(exc, (OneLineUsageError, click_errors.NoArgsIsHelpError)):
        return exc  # already one line, or the help that a bare group shows
    found = OneLineUsageError(exc.format_message(), exc.ctx)
    found.exit_code = exc.exit_code
    return found


class Root(TyperGroup):
    """The top-level group: usage errors of every command it parses become one line."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except click_errors.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except click_errors.UsageError as exc:
            raise _one_line(exc) from None


def _typer(help_text: str, name: str | None = None, **extra: Any) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        **extra,
    )


def build() -> typer.Typer:
    """The ``ci-ml`` app with every command of :data:`COMMANDS`."""
    root = _typer(GROUPS[""], name="ci-ml", cls=Root)
    root.callback()(main_options)
    groups = {"": root}
    for name, help_text in GROUPS.items():
        if name:
            groups[name] = _typer(help_text)
    for group, name, func in COMMANDS:
        groups[group].command(name)(command(func))
    for name, sub in groups.items():
        if name:
            root.add_typer(sub, name=name)
    return root


app = build()


def main() -> None:
    """Console-script entry point."""
    app()
