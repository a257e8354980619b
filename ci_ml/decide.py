"""What the gate step judges: the data gate from data-report.json, the model gates from
evaluation.json (thresholds, changes against production with their policies, per-slice
changes) and the ONNX parity gate — and the digests of what it judged.

:func:`judge` is the judgement itself, with no I/O but reading the run files; the gate step
writes it as gate-report.json, and deploy judges again from the same files to refuse a
record that says otherwise (:func:`inputs` binds the record to those files and the config).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ci_ml import gates, rundir
from ci_ml.config import Config, gate_lines
from ci_ml.errors import ConfigError, RunDirError
from ci_ml.export.parity import parity_gate
from ci_ml.gates import GateResult
from ci_ml.models import sha256_file
from ci_ml.records import DataReport, Evaluation, ParityRecord, read_record


@dataclass(frozen=True)
class Judgement:
    """Every gate's result, and the records they were judged from."""

    results: list[GateResult]
    data_report: DataReport
    evaluation: Evaluation | None

    @property
    def verdict(self) -> str:
        return gates.verdict(self.results)


def judge(project: Any, run_dir: Path) -> Judgement:
    """Judge the run's files with the project's config: the data gate, then (when the model
    was evaluated) the model gates and the parity gate."""
    data_report = read_record(run_dir / rundir.DATA_REPORT, DataReport)
    results = [gates.data_gate(data_report)]
    evaluation = None
    if data_report.success or (run_dir / rundir.EVALUATION).is_file():
        evaluation = read_record(run_dir / rundir.EVALUATION, Evaluation)
        project.check_metrics(evaluation.task, evaluation.classes or ())
        results += model_gates(project, evaluation)
        if project.config.export is not None:
            results.append(parity_gate_for(run_dir, evaluation))
    return Judgement(results, data_report, evaluation)


# the sections of ci-ml.yaml a judgement reads (the rest shaped evaluation.json, which the
# record binds by its own digest, or say where models are kept and served)
JUDGED = {"gates", "comparison", "slices", "export"}


def config_digest(config: Config) -> str:
    """sha256 of the config's judged settings (the sections in JUDGED)."""
    judged = config.model_dump(mode="json", include=JUDGED)
    text = json.dumps(judged, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inputs(project: Any, run_dir: Path) -> dict[str, str | None]:
    """The sha256 of what a judgement reads: the judged config settings and the records."""

    def digest(path: Path) -> str | None:
        return sha256_file(path) if path.is_file() else None

    return {
        "config": config_digest(project.config),
        "data_report": digest(run_dir / rundir.DATA_REPORT),
        "evaluation": digest(run_dir / rundir.EVALUATION),
        "parity": digest(run_dir / rundir.PARITY) if project.config.export else None,
    }


def parity_gate_for(run_dir: Path, evaluation: Evaluation) -> GateResult:
    """The parity gate from the run's parity.json, which must have judged this candidate."""
    record = read_record(run_dir / rundir.PARITY, ParityRecord)
    if record.model_digest != evaluation.candidate.digest:
        raise RunDirError(
            f"{run_dir / rundir.PARITY} judged another model file; run 'ci-ml export' again."
        )
    return parity_gate(record.model_dump())


def model_gates(project: Any, evaluation: Evaluation) -> list[GateResult]:
    """Threshold and change gates (overall and per slice) from evaluation.json."""
    config = project.config
    candidate = evaluation.candidate
    values = {**candidate.metrics, **candidate.operational.model_dump()}
    baseline = evaluation.baseline
    lines = gate_lines(project.config_path)
    results = []
    for i, gate_cfg in enumerate(config.gates):
        line = lines[i] if i < len(lines) else None
        if gate_cfg.min is not None or gate_cfg.max is not None:
            results.append(gates.threshold_gate(gate_cfg, values, line))
        if gate_cfg.change is None:
            continue
        if baseline is None:
            why = "no model in production yet"
            results.append(gates.policy_gate(gate_cfg, config.comparison.first_model, why, line))
            continue
        if baseline.problem:
            policy = config.comparison.unusable_baseline
            if baseline.unread:
                policy = config.comparison.fork_pull_request
            results.append(gates.policy_gate(gate_cfg, policy, baseline.problem, line))
            continue
        higher = gates.higher_is_better(gate_cfg.metric, evaluation.classes)
        found = evaluation.comparisons.get(gate_cfg.metric)
        results.append(gates.change_gate(gate_cfg, found, higher, line))
        if gate_cfg.slices:
            results += _slice_gates(project, evaluation, gate_cfg, higher, line)
    return results


def _slice_gates(
    project: Any, evaluation: Evaluation, gate_cfg: Any, higher: bool, line: int | None
) -> list[GateResult]:
    if project.config.slices is None:
        raise ConfigError(
            f"gate on '{gate_cfg.metric}' has 'slices: true' but ci-ml.yaml has no "
            "'slices' section naming the columns."
        )
    streamed = evaluation.streamed
    if streamed is not None and (streamed.slice_problems is None or streamed.slice_problems):
        # a column not sliced (or no slice made): the gate fails, it cannot pass unjudged
        why = (
            "; ".join(streamed.slice_problems)
            if streamed.slice_problems
            else "slices are not computed on a holdout streamed by data.engine (docs/data.md)"
        )
        failed = gates.policy_gate(gate_cfg, "fail", why, line)
        return [replace(failed, name=f"{gate_cfg.metric} change per slice")]
    slices = evaluation.slices
    if not slices:
        raise ConfigError(f"gate on '{gate_cfg.metric}': no slice was computed; run evaluate.")
    out = []
    for entry in slices:
        if not entry.judged:
            continue
        label = f" [{entry.column}={entry.value}]"
        found = entry.comparisons.get(gate_cfg.metric)
        out.append(gates.change_gate(gate_cfg, found, higher, line, label=label))
    return out
