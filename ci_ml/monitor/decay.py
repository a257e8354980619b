"""Performance decay: the production model's metrics on recent labelled rows vs its gate.

The value recorded when the model passed its gate is a fixed number; the recent value gets
an interval from the same machinery the gates use (:mod:`ci_ml.evaluation.stats`), for one model
instead of a paired difference:

    roc_auc                                   DeLong variance of one AUC, normal interval
    accuracy precision recall f1              bootstrap on the 4 confusion counts
      balanced_accuracy                         (multinomial draws), percentile
    log_loss brier mae                        t interval on per-row losses
    rmse r2                                   row bootstrap (multinomial weights), percentile

With an allowed drop ``d`` a higher-is-better metric recorded at ``r`` has the floor
``r - d`` (lower-is-better: the ceiling ``r + d``). The verdict is *decayed* when the whole
interval is on the wrong side of it, *fine* when the whole interval is on the right side,
else *inconclusive* (too few labelled rows to tell).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from ci_ml.errors import BadInputError
from ci_ml.evaluation.metrics import (
    CONFUSION_FORMULAS,
    METRICS,
    ROW_LOSSES,
    FloatArray,
    MetricSpec,
    auc_components,
    check_inputs,
    labels,
    resolve_metrics,
)
from ci_ml.evaluation.stats import resampled_sums

Verdict = Literal["decayed", "fine", "inconclusive"]
DECAYED: Verdict = "decayed"
FINE: Verdict = "fine"
INCONCLUSIVE: Verdict = "inconclusive"


@dataclass(frozen=True)
class DecaySettings:
    """How decay is judged: allowed drops (metric units), confidence, resamples, threshold."""

    max_drop: float = 0.02
    max_drop_by_metric: Mapping[str, float] | None = None
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    threshold: float = 0.5

    def drop_for(self, metric: str) -> float:
        return (self.max_drop_by_metric or {}).get(metric, self.max_drop)


@dataclass(frozen=True)
class Interval:
    """One metric on the recent rows, with its interval and how it was made."""

    value: float
    low: float
    high: float
    method: str


@dataclass(frozen=True)
class Decay:
    """One metric: recorded at the gate, now, the interval, the allowed limit, the verdict."""

    metric: str
    recorded: float
    recent: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    rows: int
    allowed_drop: float
    limit: float
    higher_is_better: bool
    verdict: Verdict

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ------------------------------------------------------------------ one-model intervals


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2))


def _auc_interval(y: FloatArray, p: FloatArray, s: DecaySettings) -> Interval:
    is_pos = y == 1
    comps = auc_components(is_pos, p)
    auc = float(comps[is_pos].mean())
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    var = np.var(comps[is_pos], ddof=1) / n_pos if n_pos > 1 else 0.0
    var += np.var(comps[~is_pos], ddof=1) / n_neg if n_neg > 1 else 0.0
    half = _z(s.confidence) * float(np.sqrt(var))
    return Interval(auc, auc - half, auc + half, "DeLong variance of one AUC, normal interval")


def _percentile(values: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _confusion_interval(
    spec: MetricSpec, y: FloatArray, p: FloatArray, s: DecaySettings
) -> Interval:
    cells = np.bincount((2 * y + labels(p, s.threshold)).astype(np.intp), minlength=4)
    n = int(cells.sum())
    draws = np.random.default_rng(s.seed).multinomial(n, cells / n, size=s.resamples)
    formula = CONFUSION_FORMULAS[spec.name]

    def value(c: np.ndarray) -> FloatArray:  # cells: tn, fp, fn, tp
        c = c.astype(np.float64)
        return formula(c[..., 3], c[..., 1], c[..., 2], c[..., 0])

    low, high = _percentile(value(draws), s.confidence)
    method = f"bootstrap on confusion counts, percentile, B={s.resamples}"
    return Interval(float(value(cells)), low, high, method)


def _loss_interval(spec: MetricSpec, y: FloatArray, p: FloatArray, s: DecaySettings) -> Interval:
    loss = ROW_LOSSES[spec.name](y, p)
    mean, n = float(loss.mean()), loss.size
    half = float(sps.t.ppf(0.5 + s.confidence / 2, df=n - 1)) * float(loss.std(ddof=1)) / np.sqrt(n)
    return Interval(mean, mean - half, mean + half, "t interval on per-row losses")


def _row_bootstrap(spec: MetricSpec, y: FloatArray, v: FloatArray, s: DecaySettings) -> Interval:
    centred = y - y.mean()
    sums = resampled_sums(np.column_stack([(v - y) ** 2, centred, centred**2]), s.resamples, s.seed)
    n = y.size
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant resample has no r2
        if spec.name == "rmse":
            boot = np.sqrt(sums[:, 0] / n)
        else:
            boot = 1 - sums[:, 0] / (sums[:, 2] - sums[:, 1] ** 2 / n)
    low, high = _percentile(boot, s.confidence)
    method = f"row bootstrap (multinomial weights), percentile, B={s.resamples}"
    return Interval(spec.function(y, v), low, high, method)


def metric_interval(
    spec: MetricSpec, y: FloatArray, pred: FloatArray, s: DecaySettings
) -> Interval:
    """The metric of one model on ``y`` with its interval at ``s.confidence``."""
    if spec.name == "roc_auc":
        return _auc_interval(y, pred, s)
    if spec.name in CONFUSION_FORMULAS:
        return _confusion_interval(spec, y, pred, s)
    if spec.name in ROW_LOSSES:
        return _loss_interval(spec, y, pred, s)
    return _row_bootstrap(spec, y, pred, s)


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
) -> list[Decay]:
    """Each metric's decay since the gate; ValueError for unusable rows (e.g. one class)."""
    specs = resolve_metrics(task, metrics)
    y, p = check_inputs(task, y_true, pred)
    if y.size < 2:
        raise ValueError("a decay check needs at least 2 labelled rows")
    out = []
    for spec in specs:
        found = metric_interval(spec, y, p, settings)
        drop = settings.drop_for(spec.name)
        limit, verdict = judge(found, float(recorded[spec.name]), drop, spec.higher_is_better)
        out.append(
            Decay(
                spec.name,
                float(recorded[spec.name]),
                found.value,
                found.low,
                found.high,
                settings.confidence,
                found.method,
                int(y.size),
                drop,
                limit,
                spec.higher_is_better,
                verdict,
            )
        )
    return out


def judged_metrics(task: str, recorded: Mapping[str, object], wanted: Sequence[str]) -> list[str]:
    """The metrics to judge: ``wanted`` (each must be recorded), else every recorded metric."""
    usable = [
        name
        for name, value in recorded.items()
        if name in METRICS and METRICS[name].task == task and isinstance(value, int | float)
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
