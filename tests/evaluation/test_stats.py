"""Tests for ci_ml.evaluation.metrics and ci_ml.evaluation.stats: values against sklearn, DeLong
against a direct O(n²) implementation of the 1988 formulas, and interval coverage by simulation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import METRICS, midranks
from ci_ml.evaluation.stats import Comparison, compare, delong_ci, evaluate_metrics

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]

SKLEARN: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": skm.roc_auc_score,
    "accuracy": skm.accuracy_score,
    "precision": lambda y, p: skm.precision_score(y, p, zero_division=0),
    "recall": lambda y, p: skm.recall_score(y, p, zero_division=0),
    "f1": lambda y, p: skm.f1_score(y, p, zero_division=0),
    "balanced_accuracy": skm.balanced_accuracy_score,
    "log_loss": skm.log_loss,
    "brier": skm.brier_score_loss,
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
}
CLASSIFICATION = [n for n, s in METRICS.items() if s.task == "classification"]
REGRESSION = [n for n, s in METRICS.items() if s.task == "regression"]
CONFUSION = ["accuracy", "precision", "recall", "f1", "balanced_accuracy"]


def classification_data(n: int, seed: int, decimals: int | None = None) -> Arrays:
    """0/1 truth and two correlated probability models; rounding makes ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    shared = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(1.3 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + shared + 0.7 * rng.normal(size=n))))
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    return y, a, b


def regression_data(n: int, seed: int, sd_a: float = 0.5, sd_b: float = 0.6) -> Arrays:
    """Truth N(0, 1) and two predictions with correlated errors of sd ``sd_a``, ``sd_b``."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    shared, own_a, own_b = rng.normal(size=(3, n))
    err_a = sd_a * (0.6 * shared + 0.8 * own_a)
    err_b = sd_b * (0.6 * shared + 0.8 * own_b)
    return y, y + err_a, y + err_b


def covers(c: Comparison, truth: float) -> bool:
    return c.ci_low <= truth <= c.ci_high


# ------------------------------------------------------------------ metrics


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_metric_equals_sklearn(name: str) -> None:
    y, a, _ = classification_data(3000, seed=1, decimals=2)  # ties, and rows at exactly 0.5
    pred = (a >= 0.5).astype(int) if METRICS[name].needs == "label" else a
    got = evaluate_metrics("classification", [name], y, a)[name]
    assert got == pytest.approx(SKLEARN[name](y, pred), abs=1e-12)


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_metric_equals_sklearn(name: str) -> None:
    y, a, _ = regression_data(3000, seed=2)
    assert evaluate_metrics("regression", [name], y, a)[name] == pytest.approx(
        SKLEARN[name](y, a), abs=1e-12
    )


@pytest.mark.parametrize("name", ["precision", "f1", "recall"])
def test_no_predicted_positives_is_zero_like_sklearn_zero_division_0(name: str) -> None:
    y = np.array([0, 1, 1, 0, 1])
    proba = np.full(5, 0.2)
    got = evaluate_metrics("classification", [name], y, proba)[name]
    assert got == 0.0 == SKLEARN[name](y, (proba >= 0.5).astype(int))


def test_threshold_decides_the_label() -> None:
    y, proba = np.array([0, 1, 1, 0]), np.array([0.2, 0.4, 0.8, 0.6])
    assert evaluate_metrics("classification", ["accuracy"], y, proba)["accuracy"] == 0.5
    assert evaluate_metrics("classification", ["accuracy"], y, proba, threshold=0.3) == {
        "accuracy": 0.75
    }


def test_registry_entries() -> None:
    for name, spec in METRICS.items():
        assert spec.name == name
        assert spec.task in ("classification", "regression")
        assert spec.needs in (("value",) if spec.task == "regression" else ("proba", "label"))
    assert not METRICS["rmse"].higher_is_better and METRICS["roc_auc"].higher_is_better
    with pytest.raises(dataclasses.FrozenInstanceError):
        METRICS["f1"].name = "g1"  # type: ignore[misc]


def test_unknown_metric_is_a_config_error_naming_allowed_ones() -> None:
    y, a, b = classification_data(50, seed=3)
    with pytest.raises(ConfigError) as info:
        compare("classification", ["accuracy", "auroc"], y, a, b)
    message = str(info.value)
    assert "'auroc'" in message
    assert all(name in message for name in CLASSIFICATION)
    with pytest.raises(ConfigError, match="classification metric 'rmse'"):
        evaluate_metrics("classification", ["rmse"], y, a)
    with pytest.raises(ConfigError, match="Unknown task 'ranking'"):
        evaluate_metrics("ranking", ["rmse"], y, a)
    with pytest.raises(ConfigError, match="No metric"):
        evaluate_metrics("regression", [], y, a)


def test_midranks_equal_scipy_rankdata() -> None:
    x = np.round(np.random.default_rng(4).normal(size=500), 1)
    np.testing.assert_array_equal(midranks(x), sps.rankdata(x))


# ------------------------------------------------------------------ DeLong


def delong_direct(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """AUC a, AUC b and Var(AUC a - AUC b) from DeLong et al. (1988), pair by pair."""
    components = []
    for score in (a, b):
        pos, neg = score[y == 1][:, None], score[y == 0][None, :]
        psi = (pos > neg) + 0.5 * (pos == neg)  # m x n kernel
        components.append((psi.mean(axis=1), psi.mean(axis=0)))  # V10 (m,), V01 (n,)
    v10 = np.array([c[0] for c in components])
    v01 = np.array([c[1] for c in components])
    m, n = v10.shape[1], v01.shape[1]
    s = np.cov(v10) / m + np.cov(v01) / n  # 2 x 2, denominators m-1 and n-1
    contrast = np.array([1.0, -1.0])
    return float(v10[0].mean()), float(v10[1].mean()), float(contrast @ s @ contrast)


@pytest.mark.parametrize(
    ("n", "seed", "decimals"), [(400, 5, None), (400, 6, 1), (12, 7, None), (300, 8, 2)]
)
def test_delong_equals_direct_pairwise_formulas(n: int, seed: int, decimals: int | None) -> None:
    y, a, b = classification_data(n, seed, decimals)
    auc_a, auc_b, var = delong_direct(y, a, b)
    res = delong_ci(y, a, b, confidence=0.9)
    se = np.sqrt(var)
    z = sps.norm.ppf(0.95)
    assert res.auc_a == pytest.approx(auc_a, abs=1e-9)
    assert res.auc_b == pytest.approx(auc_b, abs=1e-9)
    assert res.delta == pytest.approx(auc_a - auc_b, abs=1e-9)
    assert res.se == pytest.approx(se, abs=1e-9)
    assert res.ci_low == pytest.approx(auc_a - auc_b - z * se, abs=1e-9)
    assert res.ci_high == pytest.approx(auc_a - auc_b + z * se, abs=1e-9)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(auc_a - auc_b) / se), abs=1e-9)
    assert res.auc_a == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)


def test_delong_se_matches_a_row_bootstrap_with_sklearn() -> None:
    y, a, b = classification_data(600, seed=9)
    rng = np.random.default_rng(10)
    deltas: list[float] = []
    while len(deltas) < 1000:
        rows = rng.integers(0, y.size, y.size)
        deltas.append(skm.roc_auc_score(y[rows], a[rows]) - skm.roc_auc_score(y[rows], b[rows]))
    assert delong_ci(y, a, b).se == pytest.approx(np.std(deltas, ddof=1), rel=0.1)


def binormal(n: int, seed: int, mu_a: float, mu_b: float) -> Arrays:
    """Scores N(mu, 1) for positives and N(0, 1) for negatives, errors correlated 0.6."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    noise = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=n)
    return y, mu_a * y + noise[:, 0], mu_b * y + noise[:, 1]


def test_delong_interval_covers_true_auc_difference_about_95_percent() -> None:
    mu_a, mu_b = 1.2, 0.9
    truth = sps.norm.cdf(mu_a / np.sqrt(2)) - sps.norm.cdf(mu_b / np.sqrt(2))
    results = [delong_ci(*binormal(300, seed, mu_a, mu_b)) for seed in range(200)]
    hits = [r.ci_low <= truth <= r.ci_high for r in results]
    assert abs(np.mean(hits) - 0.95) <= 0.04


def test_delong_identical_scores_have_zero_se() -> None:
    y, a, _ = classification_data(100, seed=11)
    res = delong_ci(y, a, a)
    assert (res.delta, res.se, res.ci_low, res.ci_high, res.p_value) == (0, 0, 0, 0, 1.0)


def test_delong_needs_two_rows_of_each_class() -> None:
    with pytest.raises(ValueError, match="at least 2 positive and 2 negative"):
        delong_ci([0, 0, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


# ------------------------------------------------ bootstrap on confusion counts

# P(truth, label a, label b), index 4*y + 2*a + b: a known population of paired predictions.
CELL_P = np.array([0.50, 0.05, 0.04, 0.06, 0.04, 0.03, 0.05, 0.23])


def population_value(name: str, model: int) -> float:
    p = CELL_P.reshape(2, 2, 2).sum(axis=2 - model)  # P(truth, label of this model)
    tp, fp, fn, tn = p[1, 1], p[0, 1], p[1, 0], p[0, 0]
    return {
        "accuracy": tp + tn,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "balanced_accuracy": (tp / (tp + fn) + tn / (tn + fp)) / 2,
    }[name]


def sample_cells(n: int, seed: int) -> Arrays:
    """Rows drawn from CELL_P, models given as probabilities 0.25 / 0.75."""
    cell = np.random.default_rng(seed).choice(8, size=n, p=CELL_P)
    y, a, b = cell // 4, (cell // 2) % 2, cell % 2
    return y, 0.25 + 0.5 * a, 0.25 + 0.5 * b


def test_confusion_bootstrap_covers_true_differences_about_95_percent() -> None:
    truth = {m: population_value(m, 0) - population_value(m, 1) for m in CONFUSION}
    hits: dict[str, list[bool]] = {m: [] for m in CONFUSION}
    for seed in range(200):
        result = compare("classification", CONFUSION, *sample_cells(1000, seed), seed=seed)
        for m in CONFUSION:
            hits[m].append(covers(result[m], truth[m]))
    for m in CONFUSION:
        assert abs(np.mean(hits[m]) - 0.95) <= 0.04, m


def test_confusion_bootstrap_spread_matches_row_resampling() -> None:
    y, a, b = classification_data(800, seed=12)
    pos, la, lb = y == 1, a >= 0.5, b >= 0.5

    def f1(rows: np.ndarray, label: np.ndarray) -> float:
        tp = np.sum(pos[rows] & label[rows])
        return 2 * tp / (np.sum(pos[rows]) + np.sum(label[rows]))  # 2tp / (2tp + fp + fn)

    rng = np.random.default_rng(13)
    deltas: list[float] = []
    for _ in range(2000):
        rows = rng.integers(0, y.size, y.size)
        deltas.append(f1(rows, la) - f1(rows, lb))
    ours = compare("classification", ["f1"], y, a, b)["f1"]
    naive_low, naive_high = np.quantile(deltas, [0.025, 0.975])
    assert ours.ci_high - ours.ci_low == pytest.approx(naive_high - naive_low, rel=0.1)


def test_zero_denominators_in_resamples_count_as_zero() -> None:
    y = np.array([0] * 50 + [1] * 2)  # resamples often have no positive row
    cand, prod = np.where(y == 1, 0.9, 0.1), np.full(52, 0.1)
    result = compare("classification", CONFUSION, y, cand, prod, n_resamples=500)
    assert result["precision"].candidate == 1.0 and result["precision"].production == 0.0
    assert all(np.isfinite([c.ci_low, c.ci_high]).all() for c in result.values())


# ------------------------------------------------ per-row losses and row bootstrap


@pytest.mark.parametrize(("task", "name"), [("regression", "mae"), ("classification", "brier")])
def test_paired_t_interval_equals_scipy_ttest_rel(task: str, name: str) -> None:
    y, a, b = regression_data(500, 14) if task == "regression" else classification_data(500, 14)
    loss = (lambda p: np.abs(p - y)) if name == "mae" else (lambda p: (p - y) ** 2)
    ci = sps.ttest_rel(loss(a), loss(b)).confidence_interval(0.9)
    got = compare(task, [name], y, a, b, confidence=0.9)[name]
    assert got.method == "paired t interval on per-row differences"
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_row_bootstrap_spread_matches_naive_index_bootstrap() -> None:
    y, a, b = regression_data(500, seed=15)
    rng = np.random.default_rng(16)
    deltas: list[float] = []
    for _ in range(1000):
        rows = rng.integers(0, y.size, y.size)
        deltas.append(SKLEARN["rmse"](y[rows], a[rows]) - SKLEARN["rmse"](y[rows], b[rows]))
    ours = compare("regression", ["rmse"], y, a, b)["rmse"]
    naive_low, naive_high = np.quantile(deltas, [0.025, 0.975])
    assert ours.ci_high - ours.ci_low == pytest.approx(naive_high - naive_low, rel=0.1)


def test_row_bootstrap_covers_true_rmse_and_r2_differences() -> None:
    sd_a, sd_b = 0.5, 0.6  # population rmse = sd; r2 = 1 - sd² (var y = 1)
    truth = {"rmse": sd_a - sd_b, "r2": sd_b**2 - sd_a**2}
    hits: dict[str, list[bool]] = {"rmse": [], "r2": []}
    for seed in range(200):
        data = regression_data(400, seed, sd_a, sd_b)
        result = compare("regression", ["rmse", "r2"], *data, n_resamples=1000, seed=seed)
        for m in hits:
            hits[m].append(covers(result[m], truth[m]))
    for m in hits:
        assert abs(np.mean(hits[m]) - 0.95) <= 0.04, m


# ------------------------------------------------------------------ compare


def test_compare_fields_methods_and_order() -> None:
    y, a, b = classification_data(400, seed=18)
    names = ["f1", "roc_auc", "log_loss", "accuracy"]
    result = compare("classification", names, y, a, b, n_resamples=300, confidence=0.9)
    assert list(result) == names
    values = evaluate_metrics("classification", names, y, a)
    for name, c in result.items():
        assert (c.metric, c.n, c.confidence) == (name, 400, 0.9)
        assert c.candidate == values[name]
        assert c.delta == pytest.approx(c.candidate - c.production, abs=1e-15)
        assert c.ci_low <= c.delta <= c.ci_high
        assert all(type(v) is float for v in (c.candidate, c.delta, c.ci_low, c.ci_high))
    assert result["roc_auc"].method.startswith("DeLong 1988")
    assert result["f1"].method == ("paired bootstrap on joint confusion counts, percentile, B=300")
    assert result["log_loss"].method == "paired t interval on per-row differences"
    rmse = compare("regression", ["rmse"], *regression_data(50, 1), n_resamples=10)["rmse"]
    assert rmse.method == "paired row bootstrap (multinomial weights), percentile, B=10"


@pytest.mark.parametrize(
    ("task", "names"), [("classification", CONFUSION), ("regression", ["rmse", "r2"])]
)
def test_seeded_and_independent_of_other_metrics(task: str, names: list[str]) -> None:
    data = classification_data(300, 19) if task == "classification" else regression_data(300, 19)
    first = compare(task, names, *data, seed=5)
    assert compare(task, names, *data, seed=5) == first
    assert compare(task, names[-1:], *data, seed=5)[names[-1]] == first[names[-1]]
    other = compare(task, names, *data, seed=6)
    assert [(c.ci_low, c.ci_high) for c in other.values()] != [
        (c.ci_low, c.ci_high) for c in first.values()
    ]


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        ([1, 1, 1], [0.2, 0.5, 0.9], "only class 1"),
        ([0, 1, 2], [0.2, 0.5, 0.9], "only 0 and 1"),
        ([0, 1, 1], [0.2, 1.5, 0.9], r"within \[0, 1\]"),
        ([0, 1, 1], [0.2, np.nan, 0.9], "NaN"),
        ([0, 1, 1], [0.2, 0.9], "same length"),
        ([], [], "non-empty"),
    ],
)
def test_bad_classification_input_is_a_value_error(
    y: list[int], proba: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compare("classification", ["accuracy"], y, proba, proba)


def test_bad_settings_are_value_errors() -> None:
    y, a, b = classification_data(50, seed=20)
    with pytest.raises(ValueError, match="confidence"):
        compare("classification", ["f1"], y, a, b, confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        compare("classification", ["f1"], y, a, b, n_resamples=0)
    with pytest.raises(ValueError, match="y_true is constant"):
        compare("regression", ["r2"], np.ones(10), np.arange(10.0), np.zeros(10))
