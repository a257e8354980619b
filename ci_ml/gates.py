"""Gates: the verdict on a candidate, with every rule written out in words.

A threshold gate bounds one metric (``min`` and/or ``max``). The data gates
(critical checks in ``data-report.json``) are folded in. Fail closed: an
unknown metric or a metric that was not computed is an error, never a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ci_ml.config import Config, GateConfig
from ci_ml.errors import ConfigError

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass(frozen=True)
class GateResult:
    """One gate as written to ``gate-report.json``."""

    name: str
    kind: str
    metric: str | None
    rule: str
    value: Any
    verdict: str
    reason: str
    location: dict[str, Any] | None = None


def check_gate_metrics(config: Config, task: str) -> None:
    """Refuse gates on metrics that do not exist for this task (fail closed)."""
    from ci_ml.metrics import resolve_metrics

    resolve_metrics(task, [g.metric for g in config.gates])
    if config.metrics:
        resolve_metrics(task, config.metrics)


def threshold_gate(gate: GateConfig, metrics: dict[str, float], line: int | None) -> GateResult:
    """Judge one ``min``/``max`` gate against the candidate's metric value."""
    if gate.metric not in metrics:
        raise ConfigError(
            f"gate on '{gate.metric}': the metric was not computed; "
            "run 'ci-ml evaluate' again with this config."
        )
    value = metrics[gate.metric]
    bounds = []
    if gate.min is not None:
        bounds.append(f"{gate.metric} ≥ {gate.min:g}")
    if gate.max is not None:
        bounds.append(f"{gate.metric} ≤ {gate.max:g}")
    ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
    reason = f"{gate.metric} = {value:.4f}" + (" is within bounds" if ok else " is out of bounds")
    return GateResult(
        name=f"{gate.metric} threshold",
        kind="threshold",
        metric=gate.metric,
        rule="pass if " + " and ".join(bounds),
        value=value,
        verdict=PASS if ok else FAIL,
        reason=reason,
        location={"file": "ci-ml.yaml", "line": line} if line else None,
    )


def data_gate(data_report: dict[str, Any]) -> GateResult:
    """The data checks as one gate: fail when any critical check failed."""
    blocking = data_report.get("blocking", [])
    failed = [c for c in data_report.get("checks", []) if not c["success"]]
    if blocking:
        first = next(c for c in failed if c["severity"] == "critical")
        where = f" on column '{first['column']}'" if first.get("column") else ""
        reason = f"{len(blocking)} critical data check(s) failed, first: {first['name']}{where}"
    else:
        reason = f"all critical data checks passed ({len(failed)} non-blocking failure(s))"
    return GateResult(
        name="data checks",
        kind="data",
        metric=None,
        rule="pass if no critical data check fails",
        value=len(blocking),
        verdict=FAIL if blocking else PASS,
        reason=reason,
    )


def verdict(results: list[GateResult]) -> str:
    """Fail if any gate failed, inconclusive if any was, else pass (never empty)."""
    if not results:
        raise ConfigError("no gate was evaluated; an empty gate list would always pass.")
    verdicts = {r.verdict for r in results}
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return PASS


def as_dicts(results: list[GateResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
