"""Performance decay (ci_ml/monitor/decay.py, ci_ml/monitor/intervals.py): the intervals, the
two-sample judgement against the holdout at the gate, its false-alarm rate by simulation,
and the relative allowed drop of the metrics in the target's units.

The slower simulation on 200 refitted splits of the example data is
``benchmarks/bench_decay.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ci_ml.errors import BadInputError
from ci_ml.evaluation.metrics import evaluate_metrics, resolve_metrics
from ci_ml.evaluation.stats import delong_ci
from ci_ml.monitor.decay import (
    AS_EXACT,
    DecaySettings,
    Interval,
    Labelled,
    decay,
    judge,
    judged_confidence,
    judged_metrics,
    metric_interval,
)
from ci_ml.monitor.intervals import difference, estimate
from ci_ml.monitor.report import render
from ci_ml.monitor.sources import conform, predict_scores
from tests.monitor.conftest import Example, make_production
from tests.monitor.test_monitor import check

CLASSIFICATION = ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"]
# -- decay intervals ------------------------------------------------------------------------


def test_the_auc_interval_is_delongs_variance_for_one_model():
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(float)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    (spec,) = resolve_metrics("classification", ["roc_auc"])

    found = metric_interval(spec, y, p, DecaySettings())
    paired = delong_ci(y, p, np.full(500, 0.5))  # a constant model: AUC 0.5, no variance

    assert found.value == pytest.approx(paired.auc_a)
    assert (found.low, found.high) == pytest.approx((paired.ci_low + 0.5, paired.ci_high + 0.5))


@pytest.mark.parametrize(
    ("task", "names"),
    [
        ("classification", ["accuracy", "f1", "balanced_accuracy", "log_loss", "brier"]),
        ("regression", ["rmse", "mae", "r2"]),
    ],
)
def test_every_metric_gets_an_interval_around_its_value(task, names):
    rng = np.random.default_rng(5)
    if task == "classification":
        y = (rng.random(400) < 0.4).astype(float)
        pred = np.clip(0.4 * y + 0.6 * rng.random(400), 0, 1)
    else:
        y = rng.normal(size=400)
        pred = y + rng.normal(0, 0.5, 400)
    for spec in resolve_metrics(task, names):
        found = metric_interval(spec, y, pred, DecaySettings(resamples=500))
        assert found.low <= found.value <= found.high, spec.name
        assert found.high - found.low < 0.5, spec.name


@pytest.mark.parametrize(
    ("low", "high", "higher", "verdict"),
    [
        (0.70, 0.75, True, "decayed"),
        (0.79, 0.85, True, "inconclusive"),
        (0.80, 0.85, True, "fine"),
        (0.55, 0.60, False, "decayed"),
        (0.40, 0.55, False, "inconclusive"),
        (0.40, 0.52, False, "fine"),
    ],
)
def test_judging_an_interval_against_the_gate(low, high, higher, verdict):
    recorded = 0.82 if higher else 0.50
    limit, found = judge(Interval((low + high) / 2, low, high, "m"), recorded, 0.02, higher)

    assert found == verdict
    assert limit == pytest.approx(0.80 if higher else 0.52)


def test_only_recorded_statistical_metrics_are_judged():
    recorded = {"roc_auc": 0.8, "latency_p95_ms": 3.0, "rmse": 1.0, "churn": 0.1}
    assert judged_metrics("classification", recorded, []) == ["roc_auc"]
    with pytest.raises(BadInputError, match="were not recorded"):
        judged_metrics("classification", recorded, ["f1"])


# -- two samples: recent rows vs the holdout at the gate -------------------------------------


@pytest.mark.parametrize("name", ["roc_auc", "accuracy", "log_loss", "rmse"])
def test_the_difference_interval_holds_both_samples_noise(name):
    rng = np.random.default_rng(7)
    (spec,) = resolve_metrics("regression" if name == "rmse" else "classification", [name])
    y = (rng.random(3000) < 0.3).astype(float)
    p = np.clip(0.3 * y + rng.random(3000) * 0.7, 0, 1)
    if name == "rmse":
        y, p = rng.normal(size=3000), rng.normal(size=3000)
    recent = estimate(spec, y[:2000], p[:2000], 0.5, 1000, 0)
    gate = estimate(spec, y[2000:], p[2000:], 0.5, 1000, 1)

    one = metric_interval(spec, y[:2000], p[:2000], DecaySettings(resamples=1000))
    both = difference(spec, recent, gate, 0.95)

    assert both.value == pytest.approx(recent.value - gate.value)
    assert both.low < both.value < both.high
    # the gate's 1,000 rows are noisier than the recent 2,000: wider than recent alone by
    # about sqrt(1 + 2000 / 1000)
    ratio = (both.high - both.low) / (one.high - one.low)
    assert 1.5 < ratio < 2.0, ratio


def test_k_metrics_are_judged_so_that_together_they_err_at_most_the_nominal_rate():
    assert judged_confidence(0.95, 1) == 0.95
    assert judged_confidence(0.95, 2) == pytest.approx(0.95)
    assert judged_confidence(0.95, 6) == pytest.approx(1 - 0.1 / 6)


def population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one unchanging population: outcomes, and a fixed imperfect model's scores."""
    x = rng.normal(size=(n, 3))
    logit = -1.5 + 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] ** 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    score = 1 / (1 + np.exp(-(-1.1 + 1.0 * x[:, 0] - 0.9 * x[:, 1] + 0.2 * x[:, 2])))
    return y, score


def stale_share(
    runs: int, recent_rows: int, *, flip: float = 0.0, as_exact: bool = False, seed: int = 0
) -> float:
    """How often an unchanged model (its 891-row holdout and ``recent_rows`` new rows from
    the same population, ``flip`` of their outcomes flipped) is called stale."""
    settings = DecaySettings(resamples=1000)
    stale = 0
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        gate_y, gate_p = population(rng, 891)
        y, p = population(rng, recent_rows)
        y = np.where(rng.random(recent_rows) < flip, 1 - y, y)
        recorded = evaluate_metrics("classification", CLASSIFICATION, gate_y, gate_p)
        holdout = None if as_exact else Labelled(gate_y, gate_p)
        found = decay("classification", recorded, y, p, CLASSIFICATION, settings, holdout)
        stale += any(d.verdict == "decayed" for d in found)
    return stale / runs


@pytest.mark.parametrize("recent_rows", [1000, 10_000])
def test_an_unchanged_model_is_called_stale_at_most_at_the_nominal_rate(recent_rows):
    assert stale_share(200, recent_rows) <= 0.05


def test_taking_the_recorded_value_as_exact_calls_unchanged_models_stale():
    # as for a version without holdout predictions: the rate grows with the recent rows
    # (benchmarks/bench_decay.py measures about 3% at 1,000 rows, 20% at 10,000)
    assert stale_share(200, 10_000, as_exact=True) > 0.10


@pytest.mark.parametrize("recent_rows", [1000, 10_000])
def test_forty_percent_flipped_outcomes_are_still_stale(recent_rows):
    assert stale_share(50, recent_rows, flip=0.4, seed=1) == 1.0


def test_without_holdout_predictions_the_recorded_value_is_taken_as_exact():
    y, p = population(np.random.default_rng(0), 500)
    recorded = {"roc_auc": 0.8}

    (found,) = decay("classification", recorded, y, p, ["roc_auc"], DecaySettings())

    assert (found.recorded, found.gate_rows, found.change_method) == (0.8, None, AS_EXACT)
    assert (found.change_low, found.change_high) == pytest.approx(
        (found.ci_low - 0.8, found.ci_high - 0.8)
    )


# -- the allowed drop of the metrics in the target's units -----------------------------------


def test_rmse_and_mae_get_a_relative_default_drop_the_others_one_in_their_units():
    settings = DecaySettings(max_drop_by_metric={"rmse": 5.0})
    assert settings.drop_for("mae", 200.0) == (pytest.approx(4.0), 0.02)
    assert settings.drop_for("rmse", 200.0) == (5.0, None)
    assert settings.drop_for("roc_auc", 0.8) == (0.02, None)
    assert DecaySettings(max_relative_drop=0.1).drop_for("mae", -50.0)[0] == pytest.approx(5.0)


@pytest.fixture(scope="module")
def amount(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Example:
    """A regression of the loan Amount on the example data, in production."""
    model = {
        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
        "params": {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15},
    }
    data = {"target": "Amount", "task": "regression", "positive_class": None}
    return make_production(
        pulled_example, tmp_path_factory, model, data=data, metrics=["rmse", "mae", "r2"]
    )


def with_errors_scaled(example: Example, rows: pd.DataFrame, factor: float) -> pd.DataFrame:
    """``rows`` whose Amount lies ``factor`` times as far from the model's prediction."""
    production = example.production
    predicted = predict_scores(production, conform(rows, production.kinds, "rows"))
    return rows.assign(Amount=predicted + factor * (rows["Amount"] - predicted))


def decayed(record: Any) -> dict[str, str]:
    return {d.metric: d.verdict for d in record.decay}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_unchanged_samples_are_fine(amount, seed):
    recent = amount.holdout.sample(2000, replace=True, random_state=seed)

    record = check(amount, recent)

    assert record.status == "fine", record.reasons
    assert "decayed" not in decayed(record).values()


def test_regression_a_one_percent_rise_in_mae_on_many_rows_is_not_decay(amount):
    recent = with_errors_scaled(amount, pd.concat([amount.holdout] * 10), 1.01)

    record = check(amount, recent)

    assert record.status == "fine"
    mae = next(d for d in record.decay if d.metric == "mae")
    assert mae.change / mae.recorded == pytest.approx(0.01, abs=1e-9)


def test_regression_a_ten_percent_rise_in_mae_is_flagged(amount):
    recent = with_errors_scaled(amount, pd.concat([amount.holdout] * 10), 1.10)

    record = check(amount, recent)

    assert record.status == "stale"
    mae = next(d for d in record.decay if d.metric == "mae")
    assert mae.verdict == "decayed"
    assert mae.change / mae.recorded == pytest.approx(0.10, abs=1e-9)
    assert mae.gate_rows == len(amount.holdout)
    assert (mae.allowed_drop_relative, mae.allowed_drop) == (
        0.02,
        pytest.approx(0.02 * mae.recorded),
    )
    assert mae.limit == pytest.approx(1.02 * mae.recorded)
    assert f"(2.0% of {mae.recorded:.4g} above the gate)" in render(record)
