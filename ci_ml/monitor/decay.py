"""Performance decay: the production model's metrics on recent labelled rows vs its gate.

The value recorded when the model passed its gate came from a holdout of a few hundred
rows, with sampling noise of its own. So when the version was registered with its holdout
predictions (``holdout-predictions.parquet``: truth and score per holdout row), each
metric is judged on the difference ``recent - gate`` of two independent samples, with both
samples' noise (:func:`ci_ml.monitor.intervals.difference`). A version registered without
them (by an older ci-ml) falls back to the recorded value taken as exact, and the record
says so: that interval is too narrow and calls unchanged models stale too often.

Allowed drops: ``max_drop`` (default 0.02) in the metric's own units for metrics without a
unit (AUC, accuracy, log loss, r2, ...); ``max_relative_drop`` (default 2% of the value at
the gate) for the metrics in the target's units (rmse, mae); ``max_drop_by_metric`` sets
one metric's drop in its units. With the drop ``d`` a higher-is-better metric at ``g``
has the floor ``g - d`` (lower-is-better: the ceiling ``g + d``). The verdict is
*decayed* when the whole interval of the recent value (``g`` + the interval of the
difference) is beyond it, *fine* when the whole interval is within it, else
*inconclusive* (too few labelled rows to tell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from numpy.typing import NDArray

from ci_ml.errors import BadInputError, ConfigError
from ci_ml.evaluation.metrics import (
    METRICS,
    FloatArray,
    MetricSpec,
    check_inputs,
    resolve_metrics,
)
from ci_ml.evaluation.multiclass import MulticlassSpec, check_multiclass, multiclass_spec
from ci_ml.monitor.intervals import (
    Estimate,
    Interval,
    difference,
    estimate,
    estimate_multiclass,
    interval,
)

Verdict = Literal["decayed", "fine", "inconclusive"]
DECAYED: Verdict = "decayed"
FINE: Verdict = "fine"
INCONCLUSIVE: Verdict = "inconclusive"
SCALED = ("rmse", "mae")  # in the target's units: their default drop is relative
AS_EXACT = "the value at the gate taken as exact (the version has no holdout predictions)"

__all__ = ["Decay", "DecaySettings", "Interval", "decay", "judge", "metric_interval"]


@dataclass(frozen=True)
class DecaySettings:
    """How decay is judged: allowed drops, confidence, resamples, seed, label threshold."""

    max_drop: float = 0.02
    max_drop_by_metric: Mapping[str, float] | None = None
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    threshold: float = 0.5
    max_relative_drop: float = 0.02

    def drop_for(self, metric: str, at_gate: float) -> tuple[float, float | None]:
        """The allowed drop in the metric's units, and the share of ``at_gate`` it is
        (None when it is set in the metric's units)."""
        given = (self.max_drop_by_metric or {}).get(metric)
        if given is not None:
            return given, None
        if metric in SCALED:
            return self.max_relative_drop * abs(at_gate), self.max_relative_drop
        return self.max_drop, None


@dataclass(frozen=True)
class Decay:
    """One metric: at the gate, now, the intervals, the allowed limit, the verdict."""

    metric: str
    recorded: float
    recent: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    rows: int
    gate_rows: int | None
    change: float
    change_low: float
    change_high: float
    change_method: str
    allowed_drop: float
    allowed_drop_relative: float | None
    limit: float
    higher_is_better: bool
    verdict: Verdict

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Labelled:
    """Labelled predictions of one sample: 0/1 truth and probabilities, class places and
    (n, K) class probabilities (multiclass), or values."""

    truth: FloatArray
    score: FloatArray


def metric_interval(
    spec: MetricSpec, y: FloatArray, pred: FloatArray, s: DecaySettings
) -> Interval:
    """The metric of one model on ``y`` with its interval at ``s.confidence``."""
    found = estimate(spec, y, pred, s.threshold, s.resamples, s.seed)
    return interval(spec, found, s.confidence)


# ------------------------------------------------------------------ judging


def judge(interval: Interval, recorded: float, drop: float, higher: bool) -> tuple[float, Verdict]:
    """The limit (floor or ceiling) and the verdict of the interval against it."""
    if higher:
        limit = recorded - drop
        worse, better = interval.high < limit, interval.low >= limit
    else:
        limit = recorded + drop
        worse, better = interval.low > limit, interval.high <= limit
    verdict: Verdict = DECAYED if worse else FINE if better else INCONCLUSIVE
    return limit, verdict


def decay(
    task: str,
    recorded: Mapping[str, float],
    y_true: FloatArray,
    pred: FloatArray,
    metrics: Sequence[str],
    settings: DecaySettings,
    gate: Labelled | None = None,
    classes: Sequence[str] = (),
) -> list[Decay]:
    """Each metric's decay since the gate: against the holdout predictions ``gate`` when
    given, else against the ``recorded`` value; ValueError for unusable rows (one class).
    ``classes`` (three or more): a multiclass model, ``pred`` its (n, K) probabilities."""
    many = list(classes) if len(classes) > 2 else None
    specs: Sequence[MetricSpec | MulticlassSpec]
    if many is not None:
        specs = [multiclass_spec(name, many) for name in dict.fromkeys(metrics)]
    else:
        specs = resolve_metrics(task, metrics)

    def checked(truth: FloatArray, scores: FloatArray) -> tuple[NDArray[Any], FloatArray]:
        if many is not None:
            return check_multiclass(truth, scores, many)
        found = check_inputs(task, truth, scores)
        return found[0], found[1]

    y, p = checked(y_true, pred)
    if y.size < 2:
        raise ValueError("a decay check needs at least 2 labelled rows")
    holdout = None
    if gate is not None:
        try:
            holdout = checked(gate.truth, gate.score)
        except ValueError as exc:
            raise ValueError(f"the registered holdout predictions are unusable: {exc}") from None
    confidence = judged_confidence(settings.confidence, len(specs))
    return [_one(spec, recorded, y, p, holdout, settings, confidence, many) for spec in specs]


def _estimate(
    spec: MetricSpec | MulticlassSpec,
    y: NDArray[Any],
    p: FloatArray,
    s: DecaySettings,
    seed: int,
    classes: list[str] | None,
) -> Estimate:
    if isinstance(spec, MulticlassSpec):
        assert classes is not None
        return estimate_multiclass(spec, y, p, classes, s.resamples, seed)
    return estimate(spec, y, p, s.threshold, s.resamples, seed)


def judged_confidence(confidence: float, metrics: int) -> float:
    """The confidence of each of ``metrics`` intervals, so that an unchanged model is called
    decayed on any of them at most ``1 - confidence`` of the time.

    A verdict looks at one side of its interval only, so a metric errs with chance at most
    ``(1 - c) / 2``; ``k`` metrics at ``1 - 2 (1 - c) / k`` err together at most ``1 - c``
    (Bonferroni on the one-sided errors). One metric keeps ``c``.
    """
    return max(confidence, 1 - 2 * (1 - confidence) / max(metrics, 1))


def _one(
    spec: MetricSpec | MulticlassSpec,
    recorded: Mapping[str, float],
    y: FloatArray,
    p: FloatArray,
    holdout: tuple[NDArray[Any], FloatArray] | None,
    s: DecaySettings,
    confidence: float,
    classes: list[str] | None,
) -> Decay:
    recent = _estimate(spec, y, p, s, s.seed, classes)
    own = interval(spec, recent, confidence)
    if holdout is not None:
        gate_y, gate_p = holdout
        at_gate = _estimate(spec, gate_y, gate_p, s, s.seed + 1, classes)
        value, gate_rows = at_gate.value, at_gate.rows
        change = difference(spec, recent, at_gate, confidence)
    else:
        value, gate_rows = float(recorded[spec.name]), None
        change = Interval(recent.value - value, own.low - value, own.high - value, AS_EXACT)
    drop, relative = s.drop_for(spec.name, value)
    seen = Interval(recent.value, value + change.low, value + change.high, change.method)
    limit, verdict = judge(seen, value, drop, spec.higher_is_better)
    return Decay(
        spec.name,
        value,
        recent.value,
        own.low,
        own.high,
        confidence,
        own.method,
        recent.rows,
        gate_rows,
        change.value,
        change.low,
        change.high,
        change.method,
        drop,
        relative,
        limit,
        spec.higher_is_better,
        verdict,
    )


def judged_metrics(
    task: str, recorded: Mapping[str, object], wanted: Sequence[str], classes: Sequence[str] = ()
) -> list[str]:
    """The metrics to judge: ``wanted`` (each must be recorded), else every recorded metric
    (of a multiclass model when there are three ``classes`` or more)."""
    usable = [
        name
        for name, value in recorded.items()
        if isinstance(value, int | float) and _of_task(name, task, classes)
    ]
    if not wanted:
        return usable
    missing = [name for name in wanted if name not in usable]
    if missing:
        raise BadInputError(
            f"metric(s) {', '.join(missing)} were not recorded at the production model's gate "
            f"(recorded: {', '.join(usable) or 'none'}); choose among those."
        )
    return list(dict.fromkeys(wanted))


def _of_task(name: str, task: str, classes: Sequence[str]) -> bool:
    if task == "classification" and len(classes) > 2:
        try:
            multiclass_spec(name, list(classes))
        except ConfigError:
            return False
        return True
    return name in METRICS and METRICS[name].task == task
