"""What the gate step judges: the model gates from evaluation.json (thresholds, changes
against production with their policies, per-slice changes) and the ONNX parity gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ci_ml import gates, rundir
from ci_ml.config import gate_lines
from ci_ml.errors import ConfigError, RunDirError
from ci_ml.evaluation.metrics import METRICS
from ci_ml.export.parity import parity_gate
from ci_ml.gates import GateResult
from ci_ml.records import Evaluation, ParityRecord, read_record


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
        higher = METRICS[gate_cfg.metric].higher_is_better
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
