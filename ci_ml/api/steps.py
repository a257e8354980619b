"""The pipeline's steps: one function per step, each reading and writing run files
(re-exported by :mod:`ci_ml.api`; see its docstring and DESIGN.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ci_ml import decide, engines, gates, quality, rundir, training
from ci_ml import report as render
from ci_ml.api.files import (
    write_holdout_predictions,
    write_plots,
    write_reference,
    write_training_ids,
)
from ci_ml.api.outofcore import evaluate as evaluate_streamed
from ci_ml.api.outofcore import streams
from ci_ml.data import Dataset, data_version, dvc_pull, dvc_targets
from ci_ml.errors import (
    BadInputError,
    CiMlError,
    ConfigError,
    CredentialsMissing,
    DataError,
    GateBlocked,
)
from ci_ml.evaluation import record as evaluation_record
from ci_ml.evaluation.baseline import Baseline, fetch_production
from ci_ml.export.convert import export_onnx
from ci_ml.export.parity import DEFAULT_TOLERANCE, parity
from ci_ml.github.actions import read_context
from ci_ml.models import sha256_file
from ci_ml.project import (
    Project,
    actor,
    load_candidate,
    load_data,
    load_training,
    now,
    pulled_version,
    split_data,
)
from ci_ml.records import (
    BaselineRef,
    DataReport,
    Evaluation,
    ExperimentsRecord,
    GateReport,
    ModelCard,
    ParityRecord,
    PullRecord,
    read_optional,
    read_record,
    write_record,
)
from ci_ml.training import stage

StepHook = Callable[[str], None]


# --- steps --------------------------------------------------------------------------


def pull(project: Project) -> PullRecord:
    """``dvc pull`` the configured data and record its version; returns pull.json."""
    targets = dvc_targets(project.config.data, project.root)
    if targets:
        dvc_pull(project.root, targets)
    for target in stage.data_stages(project.root, project.config.data):
        stage.reproduce(project.root, target, DataError)  # the data is a stage's output
        targets.append(stage.shown_target(target, project.root))
    return PullRecord(
        data_path=project.config.data.path,
        dvc_targets=targets,
        data_version=data_version(project.root, project.config.data),
        pulled_at=now(),
        row_identity=production_identity(project),
    )


def production_identity(project: Project) -> list[str] | None:
    """The identity columns of production's rows, so that the split keeps each row on the
    side it was on for production (None: no production, or it cannot be read here — the
    comparison's own guard then keeps production's training rows out)."""
    if project.config.data.id:
        return None
    try:
        production = project.registry().get_production()
    except CiMlError:
        return None
    found = production.metadata.get("row_identity") if production else None
    return [str(c) for c in found] if isinstance(found, list) else None


def write_pull(project: Project, run_dir: Path) -> PullRecord:
    """The pull step: :func:`pull`, written as the run's pull.json."""
    record = pull(project)
    write_record(run_dir, rundir.PULL, record)
    return record


def validate(project: Project, run_dir: Path) -> DataReport:
    """Built-in checks and the GX suite on ``data.engine``; writes data-report.json."""
    suite = project.config.expectations
    if project.config.data.engine != "pandas":  # out of core: nothing loaded into pandas
        version = pulled_version(project, run_dir)
        data = split_data(project, run_dir)  # data.path split, if no holdout file is given
        found = engines.data_gates(project.root, data, suite)
        checks, task, rows = found.checks, found.task, found.rows
    else:
        import pandas as pd

        dataset, version = load_data(project, run_dir)
        checks = quality.builtin_checks(dataset, project.config.data)
        if suite is not None:
            frame = pd.concat([dataset.train, dataset.holdout], ignore_index=True)
            checks += quality.run_suite(frame, project.root / suite.suite, suite.suite)
        task, rows = dataset.task, {"train": len(dataset.train), "holdout": len(dataset.holdout)}
    extra = {
        "data_version": version,
        "task": task,
        "rows": rows,
        "suite": suite.suite if suite else None,
        "created_at": now(),
    }
    record = DataReport.model_validate(quality.report(checks, extra))
    write_record(run_dir, rundir.DATA_REPORT, record)
    return record


def train(project: Project, run_dir: Path) -> ModelCard:
    """Fit the candidate (built-in or user command); writes model.skops + model.json."""
    data_report = read_record(run_dir / rundir.DATA_REPORT, DataReport)
    if not data_report.success:
        raise GateBlocked(
            f"data gates failed ({', '.join(data_report.blocking)}); "
            f"not training — see {run_dir / rundir.DATA_REPORT}."
        )
    model_cfg = project.config.model
    dataset, version = load_training(project, run_dir)
    project.check_metrics(dataset.task, dataset.classes)  # before fitting: the names it needs
    dvc: dict[str, Any] | None = None
    if model_cfg.dvc_stage:
        model, model_path, dvc = train_stage(project, dataset, run_dir)
        digest = sha256_file(model_path)
    else:
        model_path = run_dir / training.model_file_name(model_cfg)
        if model_cfg.command:
            model, digest = training.train_command(
                model_cfg, dataset, project.root, run_dir, model_path
            )
        else:
            model, digest = training.train_builtin(model_cfg, dataset, model_path)
    extra = {
        "data_version": version,
        "git_sha": training.git_sha(project.root),
        "size_bytes": model_path.stat().st_size,
        "row_identity": list(dataset.identity),
        "model_file": model_path.name,
        "dvc": dvc,
        "train_sample": asdict(dataset.train_sample) if dataset.train_sample else None,
    }
    card = ModelCard.model_validate(training.model_card(model_cfg, dataset, model, digest, extra))
    write_record(run_dir, rundir.MODEL_CARD, card)
    return card


def train_stage(project: Project, dataset: Dataset, run_dir: Path) -> tuple[Any, Path, Any]:
    """The dvc_stage way to train (:mod:`ci_ml.stage`): the model, its run file, its stage."""
    config = project.config
    files = [project.root / p for p in (config.data.path, config.data.holdout.file) if p]
    gated = [sha256_file(f) for f in files]
    model, model_path, dvc = stage.train_stage(
        config.model, config.data, dataset, project.root, run_dir
    )
    changed = [f for f, before in zip(files, gated, strict=True) if sha256_file(f) != before]
    if changed:  # dvc repro re-made the data: the model did not train on what was gated
        model_path.unlink()
        raise DataError(
            f"'dvc repro' of the stage changed {changed[0].name} after the data gates judged "
            "it (an upstream stage was out of date); run 'ci-ml run' again, so that the gates "
            "judge the data the stage trains on."
        )
    if model_path.name == rundir.ONNX and config.export is not None:
        model_path.unlink()
        raise ConfigError(
            f"'export' converts a scikit-learn model to ONNX, but the stage's model "
            f"{dvc['model_path']} is an ONNX model already, which ci-ml evaluates and serves "
            "as it is; remove the 'export' section."
        )
    return model, model_path, dvc


def evaluate(project: Project, run_dir: Path) -> Evaluation:
    """Candidate and production on the same holdout rows; writes metrics.json, evaluation.json."""
    config = project.config
    model, card = load_candidate(project, run_dir)
    streamed = streams(project, run_dir)  # engines duckdb, spark: a large holdout
    dataset, version = (load_training if streamed else load_data)(project, run_dir)
    project.check_metrics(dataset.task, dataset.classes)
    try:
        baseline = fetch_production(project.registry(), run_dir, config.model.trusted_types)
    except CredentialsMissing as exc:
        baseline = unread_in_fork(exc)
    if streamed:
        found = evaluate_streamed(project, run_dir, dataset, version, model, card, baseline)
    else:
        found = evaluation_record.evaluate(config, dataset, version, model, card, baseline, now())
    write_record(run_dir, rundir.SMOKE, found.smoke)
    write_reference(dataset, run_dir)
    write_training_ids(dataset, run_dir)
    write_holdout_predictions(found.holdout, run_dir, dataset.classes)
    rundir.write_json(run_dir, rundir.METRICS, found.metrics)
    write_plots(found.evaluation.curves or [], run_dir)
    write_record(run_dir, rundir.EVALUATION, found.evaluation)
    return found.evaluation


def unread_in_fork(error: CredentialsMissing) -> Baseline:
    """The baseline of a fork's pull request run, which gets no credentials to read the
    registry: unknown, so the change gates apply ``comparison.fork_pull_request``. Outside
    such a run, missing credentials are the error they are."""
    ctx = read_context()
    pr = ctx.pull_request
    if not (ctx.in_actions and ctx.event_name == "pull_request" and pr and pr.is_fork):
        raise error
    problem = (
        "production could not be read: a pull request from a fork gets no secrets "
        f"({error}); the gates compare again on the default branch after the merge"
    )
    return Baseline("unknown (not readable from a fork)", "", {}, problem=problem, unread=True)


def gate(project: Project, run_dir: Path) -> GateReport:
    """Apply the gates; writes gate-report.json (the decision record)."""
    found = decide.judge(project, run_dir)
    evaluation = found.evaluation
    baseline = evaluation.baseline if evaluation else None
    record = GateReport.model_validate(
        {
            "verdict": found.verdict,
            "reasons": [r.reason for r in found.results if r.verdict != gates.PASS],
            "gates": gates.as_dicts(found.results),
            "candidate": {"digest": evaluation.candidate.digest if evaluation else None},
            "baseline": BaselineRef.model_validate(baseline.model_dump(include=_REF))
            if baseline
            else None,
            "data_version": found.data_report.data_version,
            "config": str(project.config_path.name),
            "comparison": project.config.comparison.model_dump(),
            "inputs": decide.inputs(project, run_dir),
            "created_at": now(),
        }
    )
    write_record(run_dir, rundir.GATE_REPORT, record)
    return record


_REF = set(BaselineRef.model_fields)


def export(
    project: Project,
    run_dir: Path,
    tolerance: float | None = None,
    numeric_dtype: str | None = None,
) -> ParityRecord:
    """Export the candidate to ONNX and check parity on the holdout (model.onnx, parity.json).

    ``tolerance`` and ``numeric_dtype`` default to the config's ``export`` section (else
    1e-4 and float64); ``ci-ml export`` works without one.
    """
    settings = project.config.export
    card = read_record(run_dir / rundir.MODEL_CARD, ModelCard)
    if card.model_file == rundir.ONNX:  # exporting would overwrite the model with itself
        raise BadInputError(
            f"the model of {run_dir} is model.onnx, your training command's own ONNX model, "
            "which ci-ml evaluates and serves as it is; there is nothing to export."
        )
    model, card = load_candidate(project, run_dir)
    dataset, _version = load_data(project, run_dir)
    if tolerance is None:
        tolerance = settings.tolerance if settings is not None else DEFAULT_TOLERANCE
    dtype = numeric_dtype or (settings.numeric_dtype if settings is not None else "float64")
    path = export_onnx(
        model,
        [feature.model_dump() for feature in card.feature_schema],
        dataset.task,
        run_dir / rundir.ONNX,
        dtype,  # type: ignore[arg-type]
    )
    found = parity(
        model,
        path,
        dataset.x("holdout"),
        dataset.task,
        card.positive_class,
        float(card.threshold or project.config.model.threshold),
        float(tolerance),
    )
    record = ParityRecord.model_validate(
        {
            **found,
            "numeric_dtype": dtype,
            "model_digest": card.digest,
            "onnx_digest": sha256_file(path),
            "onnx_size_bytes": path.stat().st_size,
            "created_at": now(),
        }
    )
    write_record(run_dir, rundir.PARITY, record)
    return record


def report(project: Project, run_dir: Path, links: dict[str, str] | None = None) -> str:
    """Render report.md from the run files; returns the Markdown."""
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    data_report = read_optional(run_dir, rundir.DATA_REPORT, DataReport)
    evaluation = read_optional(run_dir, rundir.EVALUATION, Evaluation)
    text = render.render(gate_report, data_report, evaluation, links)
    tried = read_optional(run_dir, rundir.EXPERIMENTS, ExperimentsRecord)
    if tried is not None:  # the table of every experiment, then the winner's report
        text = render.experiments_table(tried) + "\n" + text
    rundir.write_text(run_dir / rundir.REPORT, text)
    return text


def register(project: Project, run_dir: Path, registry: Any = None) -> Any:
    """Register a passing candidate (model, card, decision record, reference rows).

    Needs only the run files, so the deploy job can register an artifact made elsewhere.
    """
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    if gate_report.verdict == "fail":
        raise GateBlocked("the candidate's verdict is fail; not registering.")
    card = read_record(run_dir / rundir.MODEL_CARD, ModelCard)
    names = [
        card.model_file,
        rundir.MODEL_CARD,
        rundir.GATE_REPORT,
        rundir.REFERENCE,
        rundir.TRAINING_IDS,
    ]
    if project.config.export is not None:  # never with a model.onnx of your own (config.py)
        names += [rundir.ONNX, rundir.PARITY]  # required when configured: fail closed
    files = {name: rundir.require(run_dir, name) for name in names}
    if (run_dir / rundir.HOLDOUT_PREDICTIONS).is_file():  # absent in runs of an older ci-ml
        files[rundir.HOLDOUT_PREDICTIONS] = run_dir / rundir.HOLDOUT_PREDICTIONS
    described = card.model_dump(mode="json")
    metadata = {
        **{k: described[k] for k in REGISTERED_CARD_FIELDS},
        "metrics": rundir.read_json(run_dir, rundir.METRICS),
        "verdict": gate_report.verdict,
    }
    if registry is None:
        registry = project.registry()
    return registry.register(files, metadata, by=actor(), model_file=card.model_file)


# what the registry keeps of model.json beside the files
REGISTERED_CARD_FIELDS = (
    "estimator",
    "params",
    "data_version",
    "git_sha",
    "feature_schema",
    "task",
    "target",
    "positive_class",
    "row_identity",
)
STEPS: list[tuple[str, Callable[[Project, Path], Any]]] = [
    ("pull", write_pull),
    ("validate", validate),
    ("train", train),
    ("evaluate", evaluate),
    ("export", export),
    ("gate", gate),
    ("report", report),
]


def run(project: Project, run_dir: Path, on_step: StepHook | None = None) -> dict[str, Any]:
    """All steps in order; a data-gate failure skips training but still gates and reports."""
    hook = on_step or (lambda _name: None)
    results: dict[str, Any] = {}
    for name, step in STEPS:
        if name == "export" and project.config.export is None:
            continue
        if name in ("train", "evaluate", "export") and not results["validate"].success:
            continue
        hook(name)
        results[name] = step(project, run_dir)
    if results["gate"].verdict != "fail":
        hook("register")
        results["register"] = register(project, run_dir)
    return results
