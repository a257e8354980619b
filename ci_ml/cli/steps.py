"""The pipeline steps on the command line: ``config check``, ``pull``, ``validate``, ``train``,
``evaluate``, ``gate``, ``report`` and ``run``, each a thin call of :mod:`ci_ml.api`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ci_ml.cli.common import (
    ConfigOpt,
    JsonOpt,
    RunDirOpt,
    err,
    github_client,
    mask_token,
    print_json,
    progress,
    project,
    run_links,
    show_published,
)
from ci_ml.errors import GateBlocked

DEFAULT_PIPELINE = "ci-ml"

if TYPE_CHECKING:
    from ci_ml.records import GateReport


def _step(
    name: str,
    config: Path,
    run_dir: Path | None,
    as_json: bool,
    *,
    new: bool = False,
    passed: Callable[[Any], bool] = lambda record: True,
) -> tuple[Any, Path]:
    """Run one step; "done" is said only when ``passed(record)`` (a blocked step says why
    in the one line of its error instead)."""
    from ci_ml import api

    found = project(config)
    directory = found.run_dir(run_dir, new=new)
    func = dict(api.STEPS)[name]
    with progress(name):
        record = func(found, directory)
    if as_json:
        print_json(record)
    elif passed(record):
        err(f"{name}: done — {directory}")
    return record, directory


def config_check(config: ConfigOpt = Path("ci-ml.yaml")) -> None:
    """Validate ci-ml.yaml and print the effective config (defaults filled in).

    Checks everything that needs no data: the schema, the metrics and gates, the estimator
    and its params, the expectation suite and the ONNX export."""
    from ci_ml.config import dump_config
    from ci_ml.project import check_project

    found = project(config)
    check_project(found)
    print(dump_config(found.config), end="")
    err(f"{found.config_path}: valid.")


def pull(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Pull the configured data with DVC and record its version (starts a new run)."""
    _step("pull", config, run_dir, json_, new=True)


def validate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Run the data gates: built-in checks and the Great Expectations suite."""
    record, directory = _step(
        "validate", config, run_dir, json_, passed=lambda found: found.success
    )
    if not record.success:
        failed = [
            f"{c.name} ({c.column})" if c.column else c.name
            for c in record.checks
            if not c.success and c.severity == "critical"
        ]
        raise GateBlocked(
            f"data gates failed: {', '.join(failed)}; see {directory / 'data-report.json'}."
        )


def train(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Train the candidate and save it as model.skops with model.json."""
    _step("train", config, run_dir, json_)


def evaluate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Compute the candidate's metrics on the holdout rows."""
    _step("evaluate", config, run_dir, json_)


def gate(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Apply the gates and write the decision record gate-report.json (exit 1 if blocked)."""
    record, _ = _step("gate", config, run_dir, json_, passed=lambda found: found.verdict != "fail")
    _raise_unless_pass(record)


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
    name: Annotated[
        str,
        typer.Option(
            "--name",
            envvar="CI_ML_PIPELINE",
            help="The pipeline's name (ml-pipeline.yml's 'name' input): several pipelines "
            "reporting on one pull request each keep their own comment and status.",
        ),
    ] = DEFAULT_PIPELINE,
    status_context: Annotated[
        str | None,
        typer.Option(
            "--status-context",
            help="Context name of the commit status (default: ci-ml/gates, or "
            "ci-ml/gates/NAME for a pipeline --name other than ci-ml).",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Sticky-comment key (default: workflow/job, plus the pipeline --name; add "
            "the matrix values when a matrix of one pipeline reports on one pull request).",
        ),
    ] = None,
    comment: Annotated[
        bool,
        typer.Option(
            "--comment/--no-comment",
            help="With --github, post the sticky PR comment (--no-comment: the status and job "
            "summary only, for a leg of a matrix whose 'ci-ml combine' job comments).",
        ),
    ] = True,
) -> None:
    """Write report.md from the run files and print it (and post it with --github)."""
    from ci_ml import api, publish

    if publish_from is not None:
        mask_token()
        show_published(publish.publish_from(publish_from.resolve(), github_client))
        return
    found = project(config)
    directory = found.run_dir(run_dir)
    links = run_links()
    text = api.report(found, directory, links)
    if not github:
        print(text, end="")
        return
    mask_token()
    context = status_context or publish.status_context(name)
    show_published(
        publish.publish(
            directory,
            text,
            github_client,
            status_context=context,
            key=key,
            pipeline=name,
            comment=comment,
        )
    )


def run(
    config: ConfigOpt = Path("ci-ml.yaml"), run_dir: RunDirOpt = None, json_: JsonOpt = False
) -> None:
    """Run every step: pull, validate, train, evaluate, gate, report, register."""
    from ci_ml import api
    from ci_ml.project import check_project

    found = project(config)
    check_project(found)  # a config that 'config check' refuses starts no run
    directory = found.run_dir(run_dir, new=True)
    clock = {"t": time.perf_counter()}

    def on_step(name: str) -> None:
        if not json_:
            err(f"· {name} (at {time.perf_counter() - clock['t']:.1f}s)")

    with progress("run"):
        results = api.run(found, directory, on_step)
    if json_:
        print_json({k: v for k, v in results.items() if k != "report"})
    else:
        _summary(results, directory)
    _raise_unless_pass(results["gate"])


RunAllOpt = Annotated[
    bool,
    typer.Option("--run-all", help="First run the queued experiments ('dvc exp run --run-all')."),
]


NoRegisterOpt = Annotated[
    bool,
    typer.Option(
        "--no-register",
        help="Leave the best unregistered (CI: registering is the deploy job's).",
    ),
]


def experiments(
    config: ConfigOpt = Path("ci-ml.yaml"),
    run_dir: RunDirOpt = None,
    run_all: RunAllOpt = False,
    no_register: NoRegisterOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Judge every DVC experiment of this commit against production (one table, best first);
    the best becomes the run, registered if it passes. Exit code by the best's verdict."""
    from ci_ml import api
    from ci_ml.project import check_project
    from ci_ml.records import GateReport, read_record

    found = project(config)
    check_project(found)
    directory = found.run_dir(run_dir, new=True)
    with progress("experiments"):
        record = api.experiments(found, directory, run_all=run_all, register_best=not no_register)
    best = read_record(directory / "gate-report.json", GateReport)
    if json_:
        print_json(record)
    else:
        for row in record.experiments:
            mark = "*" if row.name == record.winner else " "
            print(f"{mark} {row.name:<20} {row.verdict:<13} {'; '.join(row.reasons[:1])}")
        if best.verdict != "fail" and not no_register:
            print(f"registered the model of experiment {record.winner}")
        print(f"run files: {directory}  (report: {directory / 'report.md'})")
    _raise_unless_pass(best)


def _summary(results: dict[str, Any], directory: Path) -> None:
    from ci_ml.report import ICONS

    gate_report = results["gate"]
    verdict = gate_report.verdict
    lines = [f"\n{ICONS.get(verdict, '')} verdict: {verdict.upper()}"]
    for g in gate_report.gates:
        lines.append(f"  {ICONS.get(g.verdict, '')} {g.name}: {g.reason}")
    if "register" in results:
        lines.append(f"registered model version {results['register'].version}")
    lines.append(f"run files: {directory}  (report: {directory / 'report.md'})")
    print("\n".join(lines))


def _raise_unless_pass(gate_report: GateReport) -> None:
    """Exit 1 on fail; an inconclusive verdict (policy 'approve') exits 0 with a warning."""
    reasons = "; ".join(gate_report.reasons) or gate_report.verdict
    if gate_report.verdict == "fail":
        raise GateBlocked(f"blocked: {reasons}.")
    if gate_report.verdict == "inconclusive":
        err(f"ci-ml: inconclusive — deployable only with a maintainer's approval: {reasons}.")
