"""``ci-ml export``: a thin command over :func:`ci_ml.api.export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ci_ml.cli.common import ConfigOpt, TrainedRunOpt, err, project


def export(
    config: ConfigOpt = Path("ci-ml.yaml"),
    run_dir: TrainedRunOpt = None,
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
    from ci_ml import api
    from ci_ml.errors import BadInputError, GateBlocked
    from ci_ml.export.parity import parity_reason
    from ci_ml.rundir import ONNX, PARITY

    if format_ != "onnx":
        raise BadInputError(f"--format {format_!r} is not supported; use --format onnx.")
    if numeric_dtype not in ("float64", "float32"):
        raise BadInputError(
            f"--numeric-dtype {numeric_dtype!r} is not supported; use float64 or float32."
        )
    found = project(config)
    directory = found.run_dir(run_dir)
    record = api.export(found, directory, tolerance, numeric_dtype)
    if json_:
        print(json.dumps(record.model_dump(mode="json"), indent=2))
    reason = parity_reason(record.model_dump())
    if not record.success:
        raise GateBlocked(f"ONNX parity failed: {reason}; see {directory / PARITY}.")
    err(f"export: {directory / ONNX} — parity passed: {reason}")
