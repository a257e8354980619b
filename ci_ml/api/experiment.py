"""``ci-ml experiments``: every DVC experiment of the workspace's commit judged against
production on the same holdout rows, by the same gates as ``ci-ml run``.

:mod:`ci_ml.training.experiments` finds the experiments and takes each one's model from its
experiment ref; this module runs the steps of :mod:`ci_ml.api.steps` on each, in its own
``experiments/<name>/`` folder, ranks them and makes the best one the run's files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from ci_ml import gates, rundir, training
from ci_ml.api.steps import evaluate, gate, register, report, validate, write_pull
from ci_ml.errors import ConfigError
from ci_ml.models import load_model, sha256_file
from ci_ml.project import Project, load_data, now
from ci_ml.records import ExperimentsRecord, ModelCard, write_record
from ci_ml.training import experiments as exps
from ci_ml.training import stage


def experiments(
    project: Project, run_dir: Path, run_all: bool = False, register_best: bool = True
) -> ExperimentsRecord:
    """Judge every DVC experiment of the workspace's commit against production on the same
    holdout rows, each interval Bonferroni-corrected over the experiments; the best becomes
    this run's files (registered unless it fails, as ``run`` does, when ``register_best``).
    Writes experiments.json and report.md."""
    config = project.config
    if config.model.dvc_stage is None:
        raise ConfigError(
            "ci-ml experiments judges the DVC experiments of model.dvc_stage, but "
            f"{project.config_path.name} trains with model.{config.model.way}; set "
            "model.dvc_stage (docs/data.md#dvc-pipelines) or use 'ci-ml run'."
        )
    if run_all:
        exps.run_queued(project.root)
    found = exps.list_experiments(project.root)
    if not found:
        raise exps.unknown_experiment([])
    write_pull(project, run_dir)
    data_report = validate(project, run_dir)
    corrected = 1 - (1 - config.comparison.confidence) / len(found)
    comparison = config.comparison.model_copy(update={"confidence": corrected})
    judged = replace(project, config=config.model_copy(update={"comparison": comparison}))
    here = stage.load_stage(project.root, config.model.dvc_stage)
    workspace = stage.record(
        project.root, here, stage.model_output(here, project.root, config.model)
    )
    rows = [
        _judge_experiment(project, judged, run_dir, experiment, workspace, data_report.success)
        for experiment in found
    ]
    ranked_by = _ranking_metric(config)
    classes = load_data(project, run_dir)[0].classes if data_report.success else ()
    higher = gates.higher_is_better(ranked_by, classes) if data_report.success else True
    rows.sort(key=lambda row: _rank(row, ranked_by, higher))
    best = rows[0]
    if data_report.success:
        _take_files(run_dir / best["run_dir"], run_dir)
    else:  # nothing was trained: the decision record says the data gates blocked
        gate(project, run_dir)
    record = ExperimentsRecord.model_validate(
        {
            "stage": config.model.dvc_stage,
            "confidence": config.comparison.confidence,
            "corrected_confidence": corrected,
            "ranked_by": ranked_by,
            "higher_is_better": higher,
            "experiments": rows,
            "winner": best["name"],
            "created_at": now(),
        }
    )
    write_record(run_dir, rundir.EXPERIMENTS, record)
    report(project, run_dir)
    if register_best and best["verdict"] != "fail":
        register(project, run_dir)
    return record


def _judge_experiment(
    project: Project,
    judged: Project,
    run_dir: Path,
    experiment: exps.Experiment,
    workspace: dict[str, Any],
    data_passed: bool,
) -> dict[str, Any]:
    """One experiment in ``experiments/<name>/``: its model, evaluation and decision record
    (intervals at the corrected level, gates as configured); its row of the table."""
    sub = run_dir / rundir.EXPERIMENT_RUNS / experiment.name
    sub.mkdir(parents=True, exist_ok=True)
    for name in (rundir.PULL, rundir.DATA_REPORT):
        shutil.copy2(run_dir / name, sub / name)
    row: dict[str, Any] = {
        "name": experiment.name,
        "rev": experiment.rev,
        "params": {},
        "metrics": {},
        "changes": {},
        "digest": None,
        "run_dir": f"{rundir.EXPERIMENT_RUNS}/{experiment.name}",
    }
    if not data_passed:
        return {**row, "verdict": "fail", "reasons": ["the data gates failed; none is judged"]}
    model_path, dvc = exps.take_model(project.root, project.config.model, experiment, sub)
    row["params"] = exps.params_changed(workspace["params"], dvc)
    why_not = exps.other_data(project.root, project.config.data, dvc)
    if why_not is not None:
        return {**row, "verdict": "fail", "reasons": [why_not]}
    dataset, version = load_data(project, sub)
    model = load_model(model_path, project.config.model.trusted_types)
    extra = {
        "data_version": version,
        "git_sha": experiment.rev,
        "size_bytes": model_path.stat().st_size,
        "row_identity": list(dataset.identity),
        "model_file": model_path.name,
        "dvc": dvc,
    }
    digest = sha256_file(model_path)
    card = training.model_card(project.config.model, dataset, model, digest, extra)
    write_record(sub, rundir.MODEL_CARD, ModelCard.model_validate(card))
    evaluation = evaluate(judged, sub)
    decision = gate(project, sub)
    report(project, sub)
    changes = {
        name: {"delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high}
        for name, c in evaluation.comparisons.items()
    }
    return {
        **row,
        "verdict": decision.verdict,
        "reasons": decision.reasons,
        "metrics": dict(evaluation.candidate.metrics),
        "changes": changes,
        "digest": digest,
    }


def _take_files(source: Path, run_dir: Path) -> None:
    """The best experiment's run files become the run's own."""
    for name in os.listdir(source):
        if (source / name).is_dir():
            shutil.copytree(source / name, run_dir / name, dirs_exist_ok=True)
        else:
            shutil.copy2(source / name, run_dir / name)


VERDICT_ORDER = {"pass": 0, "inconclusive": 1, "fail": 2}


def _ranking_metric(config: Any) -> str:
    """The first gated metric with a change rule (else the first gated one): the table's
    order within each verdict."""
    changed = [g.metric for g in config.gates if g.change is not None]
    return (changed or [g.metric for g in config.gates])[0]


def _rank(row: dict[str, Any], metric: str, higher: bool) -> tuple[int, float, str]:
    value = row["metrics"].get(metric)
    if value is None:
        return VERDICT_ORDER[row["verdict"]], float("inf"), row["name"]
    sign = -1.0 if higher else 1.0
    return VERDICT_ORDER[row["verdict"]], sign * float(value), row["name"]
