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


def parity_gate_for(run_dir: Path, evaluation: dict[str, Any]) -> Any:
    """The parity gate from the run's parity.json, which must have judged this candidate."""
    record = rundir.read_json(run_dir, rundir.PARITY)
    if record.get("model_digest") != evaluation["candidate"]["digest"]:
        raise RunDirError(
            f"{run_dir / rundir.PARITY} judged another model file; run 'ci-ml export' again."
        )
    return parity_gate(record)


def model_gates(project: Any, evaluation: dict[str, Any]) -> list[Any]:
    """Threshold and change gates (overall and per slice) from evaluation.json."""
    config = project.config
    values = {**evaluation["candidate"]["metrics"], **evaluation["candidate"]["operational"]}
    baseline = evaluation.get("baseline")
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
        if baseline.get("problem"):
            policy = config.comparison.unusable_baseline
            if baseline.get("unread"):
                policy = config.comparison.fork_pull_request
            results.append(gates.policy_gate(gate_cfg, policy, baseline["problem"], line))
            continue
        higher = METRICS[gate_cfg.metric].higher_is_better
        comparisons = evaluation["comparisons"]
        results.append(gates.change_gate(gate_cfg, comparisons.get(gate_cfg.metric), higher, line))
        if gate_cfg.slices:
            results += _slice_gates(project, evaluation, gate_cfg, higher, line)
    return results


def _slice_gates(
    project: Any, evaluation: dict[str, Any], gate_cfg: Any, higher: bool, line: int | None
) -> list[Any]:
    if project.config.slices is None:
        raise ConfigError(
            f"gate on '{gate_cfg.metric}' has 'slices: true' but ci-ml.yaml has no "
            "'slices' section naming the columns."
        )
    slices = evaluation.get("slices") or []
    if not slices:
        raise ConfigError(f"gate on '{gate_cfg.metric}': no slice was computed; run evaluate.")
    out = []
    for entry in slices:
        if not entry["judged"]:
            continue
        label = f" [{entry['column']}={entry['value']}]"
        found = entry["comparisons"].get(gate_cfg.metric)
        out.append(gates.change_gate(gate_cfg, found, higher, line, label=label))
    return out
