"""``ci-ml combine``: one report for a matrix of pipelines (:mod:`ci_ml.report.combine`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ci_ml.cli.common import github_client, mask_token, run_links, show_published
from ci_ml.errors import BadInputError


def combine(
    directories: Annotated[
        list[Path] | None,
        typer.Argument(
            help="The legs' run directories; a folder named NAME-run (the artifact's name) "
            "is the leg NAME.",
            show_default=False,
        ),
    ] = None,
    leg: Annotated[
        list[str] | None,
        typer.Option("--leg", help="NAME=DIR: a leg named explicitly (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the report to this file.")
    ] = None,
    github: Annotated[
        bool,
        typer.Option(
            "--github",
            help="Also post it: the job summary and one sticky PR comment of its own (no "
            "status: each leg keeps its ci-ml/gates/NAME).",
        ),
    ] = False,
    name: Annotated[
        str,
        typer.Option("--name", help="Names the combined comment, so two matrices keep two."),
    ] = "matrix",
) -> None:
    """Combine the run directories of a matrix of pipelines into one report: a row per leg
    (verdict, key metrics beside production's, whether it deploys), then each leg's report."""
    from ci_ml.publish import publish_combined
    from ci_ml.report.combine import combine as combine_legs
    from ci_ml.report.combine import read_legs

    legs = read_legs([d.resolve() for d in directories or []], _named(leg or []))
    text = combine_legs(legs, run_links())
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if not github:
        print(text, end="")
        return
    mask_token()
    show_published(publish_combined(text, github_client, name=name))


def _named(pairs: list[str]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for pair in pairs:
        leg_name, equals, folder = pair.partition("=")
        if not equals or not leg_name or not folder:
            raise BadInputError(f"--leg {pair!r} is not NAME=DIR; e.g. --leg credit=runs/credit.")
        if leg_name in named:
            raise BadInputError(f"--leg {leg_name} is given twice; give each leg its own name.")
        named[leg_name] = Path(folder).resolve()
    return named
