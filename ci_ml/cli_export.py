"""``ci-ml export``: a thin command over :func:`ci_ml.export.export_run`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ci_ml.cliopts import ConfigOpt
from ci_ml.cliopts import err as _err


def register(app: typer.Typer, command: Callable[[Any], Any]) -> None:
    """Add the export command to ``app``."""

    @app.command("export")
    @command
    def export_cmd(
        config: ConfigOpt = Path("ci-ml.yaml"),
        run_dir: Annotated[
            Path | None, typer.Option("--run-dir", help="The trained run (default: the latest).")
        ] = None,
        format_: Annotated[
            str, typer.Option("--format", help="Export format; only 'onnx' for now.")
        ] = "onnx",
        tolerance: Annotated[
            float | None,
            typer.Option(
                "--tolerance",
                min=0,
                help="Largest allowed difference of a probability (regression: relative "
                "difference of a value). Default: export.tolerance of ci-ml.yaml, else 1e-4.",
            ),
        ] = None,
        numeric_dtype: Annotated[
            str,
            typer.Option(
                "--numeric-dtype",
                help="Float type of the numeric preprocessing in the graph: float64 (faithful) "
                "or float32 (smaller; tree models may then fail parity).",
            ),
        ] = "float64",
        json_: Annotated[bool, typer.Option("--json", help="Print parity.json.")] = False,
    ) -> None:
        """Export the run's model to model.onnx and check parity with the original on the
        whole holdout (parity.json); exit 1 if the export answers differently."""
        from ci_ml.api import open_project
        from ci_ml.errors import BadInputError, GateBlocked
        from ci_ml.export import ONNX_FILE, PARITY_FILE, export_run
        from ci_ml.parity import parity_reason
        from ci_ml.rundir import latest_run_dir

        if format_ != "onnx":
            raise BadInputError(f"--format {format_!r} is not supported; use --format onnx.")
        if numeric_dtype not in ("float64", "float32"):
            raise BadInputError(
                f"--numeric-dtype {numeric_dtype!r} is not supported; use float64 or float32."
            )
        project = open_project(config)
        directory = run_dir.resolve() if run_dir else latest_run_dir(project.runs_dir)
        record = export_run(project, directory, tolerance, numeric_dtype)  # type: ignore[arg-type]
        if json_:
            print(json.dumps(record, indent=2))
        if not record["success"]:
            raise GateBlocked(
                f"ONNX parity failed: {parity_reason(record)}; see {directory / PARITY_FILE}."
            )
        _err(f"export: {directory / ONNX_FILE} — parity passed: {parity_reason(record)}")
