"""Gates: the verdict on a candidate, with every rule written out in words.

A threshold gate bounds one metric (``min`` and/or ``max``). The data gates
(critical checks in ``data-report.json``) are folded in. Fail closed: an
unknown metric or a metric that was not computed is an error, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ci_ml.config import CONFIG_FILE, Config, GateConfig
from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import METRICS, OPERATIONAL
from ci_ml.evaluation.multiclass import MULTICLASS_HINT, is_multiclass_name, multiclass_spec
from ci_ml.records import Comparison, DataReport

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
    short: str = ""


def check_gate_metrics(
    config: Config, task: str | None, classes: Sequence[str] = (), source: str = CONFIG_FILE
) -> None:
    """Refuse metrics and gates that cannot be computed for this task (fail closed).

    ``classes``: the target's classes once the data is known; with three or more the names
    are the multiclass metrics (per-class ones naming one of them). ``task`` None (no
    ``data.task`` and no data yet): every name must be a known metric, and all of them of
    one task; before the data, a classification name may be a binary or a multiclass one.
    Messages name ``source`` (the config file) and the field.
    """
    named = _named(config, source)
    if len(classes) > 2:
        for field, name in named:
            try:
                multiclass_spec(name, list(classes))
            except ConfigError as exc:
                raise ConfigError(f"{source}: field '{field}': {exc}") from None
        return
    binary_only = task is not None and len(classes) == 2
    kind = f"{task} metric" if task else "metric"
    for field, name in named:
        if name not in METRICS and (binary_only or not is_multiclass_name(name)):
            raise ConfigError(
                f"{source}: field '{field}': unknown {kind} {name!r}; "
                f"allowed: {_allowed(task, field)}"
                + ("" if binary_only else f"; for three classes or more: {MULTICLASS_HINT}")
                + "."
            )
    known = [(field, name) for field, name in named if name in METRICS]
    if not known:
        return
    # without a task, the first name decides it: the others must be of the same task
    first_field, first = known[0]
    wanted = task or METRICS[first].task
    why = "the task is" if task else f"{first_field} ({first!r}) makes the task"
    for field, name in named:
        found = METRICS[name].task if name in METRICS else "classification"
        if found != wanted:
            raise ConfigError(
                f"{source}: field '{field}': {name!r} is a {found} metric, but "
                f"{why} {wanted}; allowed: {_allowed(wanted, field)}."
            )


def _named(config: Config, source: str) -> list[tuple[str, str]]:
    """(field, metric) of every statistical metric the config names; operational ones
    may only be bounded."""
    named = [(f"metrics.{i}", name) for i, name in enumerate(config.metrics)]
    for i, gate in enumerate(config.gates):
        field = f"gates.{i}.metric"
        if gate.metric in OPERATIONAL:
            if gate.change is not None:
                raise ConfigError(
                    f"{source}: field '{field}': '{gate.metric}' is an operational metric; it "
                    "takes min/max, not 'change' (it has no confidence interval)."
                )
            continue
        named.append((field, gate.metric))
    return named


def _allowed(task: str | None, field: str) -> str:
    names = [n for n, spec in METRICS.items() if task is None or spec.task == task]
    if field.startswith("gates."):
        names += list(OPERATIONAL)
    return ", ".join(names)


def higher_is_better(metric: str, classes: Sequence[str] | None = None) -> bool:
    """The direction of ``metric``: of a multiclass metric when there are 3+ classes."""
    if classes is not None and len(classes) > 2:
        return multiclass_spec(metric, list(classes)).higher_is_better
    return METRICS[metric].higher_is_better


def threshold_gate(gate: GateConfig, metrics: dict[str, Any], line: int | None) -> GateResult:
    """Judge one ``min``/``max`` gate against the candidate's metric value."""
    if gate.metric == "churn" and metrics.get("churn") is None:
        return GateResult(
            name="churn threshold",
            kind="threshold",
            metric="churn",
            rule=_bounds_rule(gate),
            value=None,
            verdict=PASS,
            reason="no production model to churn against (first model)",
            location=_location(line),
        )
    if gate.metric not in metrics:
        raise ConfigError(
            f"gate on '{gate.metric}': the metric was not computed; "
            "run 'ci-ml evaluate' again with this config."
        )
    value = metrics[gate.metric]
    ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
    reason = f"{gate.metric} = {value:.4f}" + (" is within bounds" if ok else " is out of bounds")
    return GateResult(
        name=f"{gate.metric} threshold",
        kind="threshold",
        metric=gate.metric,
        rule=_bounds_rule(gate),
        value=value,
        verdict=PASS if ok else FAIL,
        reason=reason,
        location=_location(line),
        short=_bounds_short(gate),
    )


def _bounds_rule(gate: GateConfig) -> str:
    bounds = []
    if gate.min is not None:
        bounds.append(f"{gate.metric} ≥ {gate.min:g}")
    if gate.max is not None:
        bounds.append(f"{gate.metric} ≤ {gate.max:g}")
    return "pass if " + " and ".join(bounds)


def _bounds_short(gate: GateConfig) -> str:
    parts = []
    if gate.min is not None:
        parts.append(f"≥ {gate.min:g}")
    if gate.max is not None:
        parts.append(f"≤ {gate.max:g}")
    return " and ".join(parts)


def _location(line: int | None) -> dict[str, Any] | None:
    return {"file": "ci-ml.yaml", "line": line} if line else None


def data_gate(data_report: DataReport) -> GateResult:
    """The data checks as one gate: fail when any critical check failed."""
    blocking = data_report.blocking
    failed = [c for c in data_report.checks if not c.success]
    if blocking:
        first = next(c for c in failed if c.severity == "critical")
        where = f" on column '{first.column}'" if first.column else ""
        count = (
            "1 critical data check"
            if len(blocking) == 1
            else f"{len(blocking)} critical data checks"
        )
        reason = f"{count} failed, first: {first.name}{where}"
    else:
        plural = "s" if len(failed) != 1 else ""
        reason = "all critical data checks passed" + (
            f" ({len(failed)} non-blocking failure{plural})" if failed else ""
        )
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


def change_rule(metric: str, higher: bool, margin: float, comparison: Comparison | None) -> str:
    """The change rule in words, e.g. 'pass if the lower bound of Δ roc_auc ... is ≥ −0.005'."""
    how = ""
    if comparison:
        how = f" ({comparison.method.split(',')[0]}, {comparison.confidence:.0%})"
    if higher:
        return (
            f"pass if the lower bound of Δ {metric}{how} is ≥ {margin:+g}; "
            f"fail if the upper bound is < {margin:+g}"
        )
    return (
        f"pass if the upper bound of Δ {metric}{how} is ≤ {-margin:+g}; "
        f"fail if the lower bound is > {-margin:+g}"
    )


def change_gate(
    gate: GateConfig,
    comparison: Comparison | None,
    higher: bool,
    line: int | None,
    *,
    label: str = "",
) -> GateResult:
    """Judge Δ = candidate − production by its interval against the signed margin."""
    assert gate.change is not None
    margin = gate.change.margin
    name = f"{gate.metric} change{label}"
    rule = change_rule(gate.metric, higher, margin, comparison)
    if comparison is None:
        raise ConfigError(f"gate on '{gate.metric}': no comparison was computed for it.")
    low, high = comparison.ci_low, comparison.ci_high
    if higher:
        passed, failed = low >= margin, high < margin
    else:
        passed, failed = high <= -margin, low > -margin
    interval = f"Δ = {comparison.delta:+.4f}, CI [{low:+.4f}, {high:+.4f}]"
    if passed:
        verdict, why = PASS, "clears the margin"
    elif failed:
        verdict, why = FAIL, "is wholly on the wrong side of the margin"
    elif gate.change.inconclusive == "approve":
        verdict, why = INCONCLUSIVE, "straddles the margin; needs a maintainer's approval"
    else:
        verdict, why = FAIL, "straddles the margin (inconclusive; policy: fail)"
    return GateResult(
        name=name,
        kind="change",
        metric=gate.metric,
        rule=rule,
        value=comparison.model_dump(exclude={"metric"}),
        verdict=verdict,
        reason=f"{gate.metric}{label}: {interval} {why}",
        location=_location(line),
        short=f"Δ ≥ {margin:+g}" if higher else f"Δ ≤ {-margin:+g}",
    )


def policy_gate(gate: GateConfig, policy: str, why: str, line: int | None) -> GateResult:
    """A change gate that cannot be judged: the first model, or an unusable production model."""
    verdict = {"pass": PASS, "fail": FAIL, "approve": INCONCLUSIVE}[policy]
    return GateResult(
        name=f"{gate.metric} change",
        kind="change",
        metric=gate.metric,
        rule=f"not judged: {why}; policy '{policy}' applies",
        value=None,
        verdict=verdict,
        reason=f"{gate.metric}: {why} (policy: {policy})",
        location=_location(line),
        short=f"Δ: {policy}",
    )
