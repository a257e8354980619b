"""``ci-ml monitor`` and ``ci-ml retrain``: thin commands over :mod:`ci_ml.monitor.check`.

Exit codes: 0 fine; 1 drifting or stale (the ``status`` in ``monitor-report.json`` and in
``--json`` says which); 2 bad input; 3 GitHub, DVC or the registry failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ci_ml.cli.common import (
    OptionalConfigOpt,
    RegistryOpt,
    RepoOpt,
    err,
    open_registry,
    optional_project,
)

if TYPE_CHECKING:
    from ci_ml.records import MonitorReport

PathOpt = Path | None


def _opt(*names: str, **kwargs: Any) -> Any:
    return typer.Option(*names, **kwargs)


# -- where the data comes from
RecentOpt = Annotated[
    PathOpt,
    _opt("--recent", help="Recent rows: a CSV/Parquet file or folder (DVC-pulled when tracked)."),
]
RequestsOpt = Annotated[
    PathOpt, _opt("--requests", help="Instead of --recent: the request log folder of ci-ml serve.")
]
SinceOpt = Annotated[
    str | None, _opt("--since", help="With --requests: only requests since 7d, 12h or an ISO time.")
]
LabelsOpt = Annotated[
    PathOpt,
    _opt(
        "--labels",
        help="Labelled recent rows (file or folder) for the decay check. "
        "Default: the --recent rows that have the target.",
    ),
]
TargetOpt = Annotated[
    str | None, _opt("--target", help="Outcome column of the recent rows (default: the model's).")
]
ReferenceOpt = Annotated[
    PathOpt,
    _opt(
        "--reference",
        help="Training rows to compare with (default: the production version's reference.parquet).",
    ),
]
NoPullOpt = Annotated[bool, _opt("--no-pull", help="Do not dvc pull tracked data first.")]
OutOpt = Annotated[
    PathOpt, _opt("--out", help="Folder for the reports (default: .ci-ml/monitor in the project).")
]
# -- thresholds
PsiOpt = Annotated[float, _opt("--psi-threshold", min=0.0, help="PSI at which a feature drifts.")]
WassersteinOpt = Annotated[
    float,
    _opt(
        "--wasserstein-threshold",
        min=0.0,
        help="Wasserstein distance / reference std at which a numeric feature drifts.",
    ),
]
MissingOpt = Annotated[
    float,
    _opt(
        "--missing-threshold",
        min=0.0,
        max=1.0,
        help="Change of a feature's missing share at which it drifts.",
    ),
]
MetricOpt = Annotated[
    list[str] | None,
    _opt("--metric", help="Metric judged for decay (repeat; default: all recorded at the gate)."),
]
MaxDropOpt = Annotated[
    float,
    _opt(
        "--max-drop",
        min=0.0,
        help="Allowed drop of a metric since its gate, in its units (AUC, accuracy, log loss).",
    ),
]
MaxRelativeDropOpt = Annotated[
    float,
    _opt(
        "--max-relative-drop",
        min=0.0,
        help="Allowed rise of rmse and mae (in the target's units), as a share of the value "
        "at the gate: 0.02 is 2%.",
    ),
]
MaxDropForOpt = Annotated[
    list[str] | None,
    _opt("--max-drop-for", help="METRIC=DROP for one metric, in its units (repeat)."),
]
ConfidenceOpt = Annotated[
    float, _opt("--confidence", min=0.5, max=0.999, help="Confidence of the decay intervals.")
]
MinLabelledOpt = Annotated[
    int, _opt("--min-labelled", min=2, help="Fewest labelled rows to judge decay.")
]
# -- GitHub
GitHubOpt = Annotated[
    bool,
    _opt("--github", help="Open or update one GitHub issue per problem; write the job summary."),
]
IssueKeyOpt = Annotated[
    str, _opt("--issue-key", help="Names this monitor's issues (one per problem).")
]
CloseOpt = Annotated[
    bool,
    _opt("--close-resolved", help="With --github: close the issue of a problem that went away."),
]
DispatchOpt = Annotated[
    str | None,
    _opt(
        "--dispatch",
        help="Start this workflow (file name or id) when the status calls for retraining.",
    ),
]
DispatchOnOpt = Annotated[
    str, _opt("--dispatch-on", help="drifting (retrain on drift or decay) or stale (decay only).")
]
DispatchRefOpt = Annotated[
    str | None,
    _opt("--dispatch-ref", help="Branch or tag to run it on (default: the default branch)."),
]
DispatchInputOpt = Annotated[
    list[str] | None,
    _opt("--dispatch-input", help="NAME=VALUE input of the started workflow (repeat)."),
]
RefOpt = Annotated[
    str | None, _opt("--ref", help="Branch or tag to run it on (default: the default branch).")
]
InputOpt = Annotated[
    list[str] | None, _opt("--input", help="NAME=VALUE input of the started workflow (repeat).")
]
JsonOpt = Annotated[bool, _opt("--json", help="Print monitor-report.json.")]


def monitor(
    recent: RecentOpt = None,
    requests: RequestsOpt = None,
    since: SinceOpt = None,
    labels: LabelsOpt = None,
    target: TargetOpt = None,
    reference: ReferenceOpt = None,
    no_pull: NoPullOpt = False,
    out: OutOpt = None,
    config: OptionalConfigOpt = None,
    registry: RegistryOpt = None,
    psi: PsiOpt = 0.2,
    wasserstein: WassersteinOpt = 0.1,
    missing: MissingOpt = 0.05,
    metric: MetricOpt = None,
    max_drop: MaxDropOpt = 0.02,
    max_relative_drop: MaxRelativeDropOpt = 0.02,
    max_drop_for: MaxDropForOpt = None,
    confidence: ConfidenceOpt = 0.95,
    min_labelled: MinLabelledOpt = 30,
    github: GitHubOpt = False,
    repo: RepoOpt = None,
    issue_key: IssueKeyOpt = "monitor",
    close_resolved: CloseOpt = False,
    dispatch: DispatchOpt = None,
    dispatch_on: DispatchOnOpt = "drifting",
    dispatch_ref: DispatchRefOpt = None,
    dispatch_input: DispatchInputOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compare recent production data with the production model's training data: feature
    and prediction drift, and performance decay where outcomes have arrived. Exit 1 when
    drifting or stale."""
    from ci_ml.errors import GateBlocked
    from ci_ml.monitor import check
    from ci_ml.monitor.decay import DecaySettings
    from ci_ml.monitor.drift import DriftThresholds
    from ci_ml.monitor.issues import (
        check_dispatch_on,
        parse_drops,
        parse_pairs,
        wants_dispatch,
    )

    check_dispatch_on(dispatch_on)
    inputs = parse_pairs(dispatch_input, "--dispatch-input")
    root, reg, trusted, defaults = _project(config, registry)
    settings = check.MonitorSettings(
        drift=DriftThresholds(psi=psi, wasserstein=wasserstein, missing=missing),
        decay=DecaySettings(
            max_drop,
            parse_drops(max_drop_for),
            confidence,
            max_relative_drop=max_relative_drop,
            **defaults,
        ),
        metrics=tuple(metric or ()),
        min_labelled=min_labelled,
    )
    sources = check.Sources(recent, requests, since, labels, target, reference, not no_pull)
    out_dir = out or root / ".ci-ml" / "monitor"
    record = check.run(root, reg, out_dir, sources, settings, trusted)
    _show(record, out_dir, json_)
    if github:
        _publish(record, repo, issue_key, close_resolved)
    if dispatch and wants_dispatch(record.status, dispatch_on):
        _dispatch(repo, dispatch, dispatch_ref, inputs)
    if record.status != check.FINE:
        raise GateBlocked(f"monitor: {record.status} — {'; '.join(record.reasons)}.")


def retrain(
    workflow: Annotated[
        str, typer.Argument(help="The pipeline workflow: its file name (ml.yml) or id.")
    ],
    repo: RepoOpt = None,
    ref: RefOpt = None,
    input_: InputOpt = None,
) -> None:
    """Start the retraining pipeline now (workflow_dispatch); needs actions: write."""
    from ci_ml.monitor.issues import parse_pairs

    _dispatch(repo, workflow, ref, parse_pairs(input_, "--input"))


def _project(config: Path | None, url: str | None) -> tuple[Path, Any, list[str], dict[str, Any]]:
    """Root, registry, trusted types and decay defaults: from ci-ml.yaml, or --registry alone."""
    found = optional_project(config, url)
    reg = open_registry(found, url)
    if found is None:
        return Path.cwd(), reg, [], {}
    cfg = found.config
    defaults = {
        "resamples": cfg.comparison.resamples,
        "seed": cfg.comparison.seed,
        "threshold": cfg.model.threshold,
    }
    return found.root, reg, list(cfg.model.trusted_types), defaults


def _show(record: MonitorReport, out_dir: Path, as_json: bool) -> None:
    from ci_ml.monitor.check import MONITOR_MD
    from ci_ml.records import MONITOR_REPORT

    if as_json:
        print(json.dumps(record.model_dump(mode="json"), indent=2))
        return
    print(f"status: {record.status}")
    for reason in record.reasons:
        print(f"  {reason}")
    print(f"report: {out_dir / MONITOR_MD}  (record: {out_dir / MONITOR_REPORT})")


def _publish(record: MonitorReport, repo: str | None, key: str, close_resolved: bool) -> None:
    from ci_ml.monitor.issues import publish_report

    for outcome in publish_report(record, repo, key=key, close_resolved=close_resolved):
        if outcome.result is not None:
            result = outcome.result
            err(f"ci-ml: {outcome.problem} issue #{result.number} {result.action}: {result.url}")


def _dispatch(repo: str | None, workflow: str, ref: str | None, inputs: dict[str, str]) -> None:
    from ci_ml.monitor.issues import start_workflow

    result = start_workflow(repo, workflow, ref, inputs)
    where = f": {result.run_url}" if result.run_url else ""
    err(f"ci-ml: started {result.workflow} on {result.ref}{where}")
