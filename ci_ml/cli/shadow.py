"""``ci-ml shadow report``: a thin command over :func:`ci_ml.deploy.shadow.report`.

Exit codes as the gate's: 0 pass (inconclusive: 0 with a warning), 1 fail, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ci_ml.cli.common import ConfigOpt, JsonOpt, err, print_json, project
from ci_ml.errors import GateBlocked

RequestsOpt = Annotated[
    Path, typer.Option("--requests", help="The request log folder of ci-ml serve --shadow.")
]
LabelsOpt = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="Outcomes: a CSV/Parquet file or folder with request_id, the target and perhaps "
        "row_index (DVC-pulled when tracked).",
    ),
]
VersionOpt = Annotated[
    str, typer.Option("--shadow-version", help="The shadow version to judge (as served).")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only requests since 7d, 12h or an ISO time.")
]
TargetOpt = Annotated[
    str | None, typer.Option("--target", help="Outcome column of --labels (default: the data's).")
]
NewRunOpt = Annotated[
    Path | None,
    typer.Option("--run-dir", help="Where to write the records (default: a new run directory)."),
]


def report(
    requests: RequestsOpt,
    labels: LabelsOpt,
    shadow_version: VersionOpt,
    config: ConfigOpt = Path("ci-ml.yaml"),
    since: SinceOpt = None,
    target: TargetOpt = None,
    run_dir: NewRunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Judge a shadow version against production on labelled live traffic with the gates;
    writes a decision record that ci-ml deploy accepts like the gate's (exit 1 if blocked)."""
    from ci_ml.deploy import shadow

    found = project(config)
    directory = found.run_dir(run_dir, new=True)
    sources = shadow.ShadowSources(requests, labels, shadow_version, since, target)
    record = shadow.report(found, directory, sources)
    if json_:
        print_json(record)
    reasons = "; ".join(record.reasons) or record.verdict
    if record.verdict == "fail":
        raise GateBlocked(f"shadow {shadow_version} blocked: {reasons}.")
    if record.verdict == "inconclusive":
        err(f"ci-ml: inconclusive — deployable only with a maintainer's approval: {reasons}.")
    elif not json_:
        err(f"shadow report: pass — {directory}")
