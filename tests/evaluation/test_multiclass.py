"""Tests for ci_ml.evaluation.multiclass and ci_ml.evaluation.ovr: every metric against
sklearn.metrics, the paired intervals (identical and clearly better models, the macro-AUC
variance against a row bootstrap with sklearn, the reduction to binary DeLong, chunked
draws), and the errors for bad input. Coverage by simulation: test_multiclass_coverage.py."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from sklearn import metrics as skm

from ci_ml.errors import ConfigError
from ci_ml.evaluation import compare, multiclass
from ci_ml.evaluation.multiclass import (
    MULTICLASS_HINT,
    MULTICLASS_METRICS,
    check_multiclass,
    compare_multiclass,
    confusion_matrix,
    evaluate_multiclass,
    is_multiclass_name,
    is_per_class,
    multiclass_spec,
)
from ci_ml.evaluation.predict import Predictions
from ci_ml.evaluation.stats import delong_ci

PER_CLASS = ("recall", "precision", "f1", "roc_auc")
Reference = Callable[[np.ndarray, np.ndarray, int], float]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def two_models(
    n: int, k: int, seed: int, strength: tuple[float, float] = (1.3, 1.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class indices (unequal shares) and two correlated probability models."""
    rng = np.random.default_rng(seed)
    share = np.arange(1, k + 1) / np.arange(1, k + 1).sum()
    y = rng.choice(k, size=n, p=share)
    shared = rng.normal(size=(n, k))
    onehot = np.eye(k)[y]
    a, b = (softmax(s * onehot + shared + 0.8 * rng.normal(size=(n, k))) for s in strength)
    return y, a, b


def awkward_model(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A model that never predicts the last class, with tied maxima and tied scores."""
    y, proba, _ = two_models(n, k, seed)
    proba[:, -1] *= 1e-4
    proba /= proba.sum(axis=1, keepdims=True)
    proba[:50] = 1 / k  # all classes tied: argmax is class 0, and 50 tied AUC scores
    proba[50:100, :] = 0.0
    proba[50:100, 1:3] = 0.5  # classes 1 and 2 tied: argmax is 1
    return y, proba


def _sklearn_averaged(fn: Callable[..., object], average: str | None, k: int) -> Reference:
    return lambda y, p, c: fn(
        y, p.argmax(axis=1), labels=range(c), average=average, zero_division=0
    )


def _balanced_accuracy(y: np.ndarray, p: np.ndarray, k: int) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y, p.argmax(axis=1)))


def sklearn_value(name: str, y: np.ndarray, proba: np.ndarray, k: int) -> float:
    """The same metric computed by sklearn.metrics."""
    label = proba.argmax(axis=1)
    labels = list(range(k))
    if "[" in name:
        metric, index = name[:-1].split("[")
        c = int(index[1:])  # classes are "c0", "c1", ...
        if metric == "roc_auc":
            return float(skm.roc_auc_score(y == c, proba[:, c]))
        fn = {"recall": skm.recall_score, "precision": skm.precision_score, "f1": skm.f1_score}
        per_class = fn[metric](y, label, labels=labels, average=None, zero_division=0)
        return float(per_class[c])
    fixed: dict[str, Callable[[], object]] = {
        "accuracy": lambda: skm.accuracy_score(y, label),
        "balanced_accuracy": lambda: _balanced_accuracy(y, proba, k),
        "log_loss": lambda: skm.log_loss(y, proba, labels=labels),
        "brier": lambda: skm.brier_score_loss(y, proba, labels=labels),
        "roc_auc": lambda: skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels),
        "roc_auc_ovr": lambda: skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels),
        "roc_auc_ovr_weighted": lambda: skm.roc_auc_score(
            y, proba, multi_class="ovr", average="weighted", labels=labels
        ),
    }
    if name in fixed:
        return float(fixed[name]())
    metric, average = name.split("_")
    fn = {"recall": skm.recall_score, "precision": skm.precision_score, "f1": skm.f1_score}
    return float(fn[metric](y, label, labels=labels, average=average, zero_division=0))


def all_names(k: int) -> list[str]:
    return [*MULTICLASS_METRICS, *(f"{m}[c{c}]" for m in PER_CLASS for c in range(k))]


def class_names(k: int) -> list[str]:
    return [f"c{c}" for c in range(k)]


# ------------------------------------------------------------------ point values


@pytest.mark.parametrize("k", [3, 5, 10])
def test_every_metric_equals_sklearn(k: int) -> None:
    y, proba = awkward_model(2000, k, seed=k)
    assert not np.any(proba.argmax(axis=1) == k - 1)  # one class is never predicted
    got = evaluate_multiclass(all_names(k), y, proba, class_names(k))
    for name, value in got.items():
        assert value == pytest.approx(sklearn_value(name, y, proba, k), abs=1e-12), name


def test_a_class_absent_from_y_leaves_the_label_metrics_as_sklearn() -> None:
    y, proba = awkward_model(1500, 5, seed=1)
    y[y == 2] = 3  # class 2 has no rows but is still predicted
    names = [n for n in all_names(5) if "roc_auc" not in n]
    got = evaluate_multiclass(names, y, proba, class_names(5))
    for name, value in got.items():
        assert value == pytest.approx(sklearn_value(name, y, proba, 5), abs=1e-12), name


def test_roc_auc_means_the_macro_one_vs_rest_auc() -> None:
    y, a, _ = two_models(500, 4, seed=2)
    got = evaluate_multiclass(["roc_auc", "roc_auc_ovr"], y, a, class_names(4))
    assert got["roc_auc"] == got["roc_auc_ovr"]
    assert multiclass_spec("roc_auc", class_names(4)).higher_is_better


def test_brier_is_the_unhalved_multiclass_score() -> None:
    y, a, _ = two_models(300, 3, seed=4)
    got = evaluate_multiclass(["brier"], y, a, class_names(3))["brier"]
    onehot = np.eye(3)[y]
    assert got == pytest.approx(np.mean(np.sum((a - onehot) ** 2, axis=1)), abs=1e-15)
    assert got == pytest.approx(skm.brier_score_loss(y, a, labels=[0, 1, 2]), abs=1e-12)


def test_confusion_matrices_and_churn() -> None:
    y, a, b = two_models(800, 4, seed=5)
    conf_a, conf_b = (confusion_matrix(y, p.argmax(1), 4) for p in (a, b))
    np.testing.assert_array_equal(conf_a, skm.confusion_matrix(y, a.argmax(1), labels=range(4)))
    np.testing.assert_array_equal(conf_b, skm.confusion_matrix(y, b.argmax(1), labels=range(4)))
    churn = compare.churn(Predictions(y, a), Predictions(y, b), "classification", 0.5)
    assert churn == pytest.approx(np.mean(a.argmax(1) != b.argmax(1)))
    assert 0 < churn < 1


# ------------------------------------------------------------------ intervals


@pytest.mark.parametrize("k", [3, 10])
def test_identical_models_have_delta_zero_inside_their_interval(k: int) -> None:
    y, a, _ = two_models(1000, k, seed=6)
    found = compare_multiclass(all_names(k), y, a, a.copy(), class_names(k), n_resamples=300)
    for name, c in found.items():
        assert c.delta == 0, name
        assert c.ci_low <= 0 <= c.ci_high, name
        assert c.n == 1000 and c.confidence == 0.95


@pytest.mark.parametrize("k", [3, 10])
def test_a_clearly_better_model_is_called_better(k: int) -> None:
    y, a, b = two_models(4000, k, seed=7, strength=(2.5, 1.0))
    names = ["accuracy", "balanced_accuracy", "f1_macro", "recall_weighted", "roc_auc_ovr"]
    names += ["roc_auc_ovr_weighted", f"f1[c{k - 1}]", f"roc_auc[c{k - 1}]", "log_loss", "brier"]
    found = compare_multiclass(names, y, a, b, class_names(k), n_resamples=500)
    for name, c in found.items():
        if multiclass_spec(name, class_names(k)).higher_is_better:
            assert c.ci_low > 0, name
        else:
            assert c.ci_high < 0, name
        assert c.delta == pytest.approx(c.candidate - c.production)


def test_method_strings() -> None:
    y, a, b = two_models(500, 3, seed=8)
    found = compare_multiclass(
        ["accuracy", "log_loss", "roc_auc_ovr", "roc_auc[c1]"], y, a, b, class_names(3)
    )
    assert found["accuracy"].method == (
        "paired bootstrap on joint 3×3×3 confusion counts, percentile, B=2000"
    )
    assert found["log_loss"].method == "paired t interval on per-row differences"
    assert found["roc_auc_ovr"].method == multiclass.OVR_METHOD
    assert found["roc_auc[c1]"].method == "DeLong 1988 on the class vs the rest, normal interval"


def test_one_class_auc_interval_is_binary_delong() -> None:
    y, a, b = two_models(1200, 5, seed=9)
    for c in range(5):
        found = compare_multiclass([f"roc_auc[c{c}]"], y, a, b, class_names(5))[f"roc_auc[c{c}]"]
        binary = delong_ci((y == c).astype(int), a[:, c], b[:, c])
        assert found.delta == pytest.approx(binary.delta, abs=1e-12)
        assert (found.ci_low, found.ci_high) == pytest.approx(
            (binary.ci_low, binary.ci_high), abs=1e-12
        )


def test_macro_and_weighted_auc_se_match_a_row_bootstrap_with_sklearn() -> None:
    """The influence-function se within 15% of the sd of 300 row resamples (sklearn AUCs)."""
    k, n = 4, 1200
    y, a, b = two_models(n, k, seed=10)
    found = compare_multiclass(["roc_auc_ovr", "roc_auc_ovr_weighted"], y, a, b, class_names(k))
    rng = np.random.default_rng(11)
    macro, weighted = [], []
    for _ in range(300):
        rows = rng.integers(0, n, size=n)
        yr = y[rows]
        per_class = np.array(
            [
                skm.roc_auc_score(yr == c, a[rows, c]) - skm.roc_auc_score(yr == c, b[rows, c])
                for c in range(k)
            ]
        )
        macro.append(per_class.mean())
        weighted.append(np.bincount(yr, minlength=k) / n @ per_class)
    z = 1.959963984540054
    for name, draws in (("roc_auc_ovr", macro), ("roc_auc_ovr_weighted", weighted)):
        se = (found[name].ci_high - found[name].ci_low) / (2 * z)
        assert se == pytest.approx(np.std(draws, ddof=1), rel=0.15), name


def test_the_cross_class_covariance_matters() -> None:
    """The macro se is not the independent-classes √(Σ Var Δ_k) / K."""
    k = 3
    y, a, b = two_models(2000, k, seed=12)
    z = 1.959963984540054
    names = ["roc_auc_ovr", *(f"roc_auc[c{c}]" for c in range(k))]
    found = compare_multiclass(names, y, a, b, class_names(k))
    se = {n: (c.ci_high - c.ci_low) / (2 * z) for n, c in found.items()}
    independent = np.sqrt(sum(se[f"roc_auc[c{c}]"] ** 2 for c in range(k))) / k
    assert abs(se["roc_auc_ovr"] / independent - 1) > 0.05


def test_label_bootstrap_width_matches_a_row_bootstrap_with_sklearn() -> None:
    k, n = 4, 800
    y, a, b = two_models(n, k, seed=13)
    found = compare_multiclass(["f1_macro"], y, a, b, class_names(k))["f1_macro"]
    rng = np.random.default_rng(14)
    deltas = []
    for _ in range(400):
        rows = rng.integers(0, n, size=n)
        f1 = [skm.f1_score(y[rows], p[rows].argmax(1), average="macro") for p in (a, b)]
        deltas.append(f1[0] - f1[1])
    low, high = np.quantile(deltas, [0.025, 0.975])
    assert found.ci_high - found.ci_low == pytest.approx(high - low, rel=0.1)


def test_chunked_draws_give_the_same_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    y, a, b = two_models(1500, 5, seed=15)
    names = ["accuracy", "f1_macro", "balanced_accuracy", "precision[c2]"]
    whole = compare_multiclass(names, y, a, b, class_names(5), n_resamples=700)
    monkeypatch.setattr(multiclass, "MAX_DRAWN_CELLS", 1000)  # a few draws per chunk
    chunked = compare_multiclass(names, y, a, b, class_names(5), n_resamples=700)
    for name in names:
        assert (chunked[name].ci_low, chunked[name].ci_high) == pytest.approx(
            (whole[name].ci_low, whole[name].ci_high), abs=1e-12
        )


def test_an_interval_does_not_depend_on_the_other_metrics_asked_for() -> None:
    y, a, b = two_models(600, 3, seed=16)
    alone = compare_multiclass(["f1_macro"], y, a, b, class_names(3), seed=3)["f1_macro"]
    together = compare_multiclass(
        ["accuracy", "recall[c1]", "f1_macro"], y, a, b, class_names(3), seed=3
    )["f1_macro"]
    assert alone == together


# ------------------------------------------------------------------ bad input


def _bad(case: str) -> tuple[object, object, object, object]:
    y, a, b = two_models(50, 3, seed=17)
    classes: object = class_names(3)
    y_bad: object = y
    if case == "nan":
        a[4, 1] = np.nan
    elif case == "inf":
        b[2, 0] = np.inf
    elif case == "rows":
        a = a[:-1]
    elif case == "columns":
        a = np.column_stack([a, np.zeros(50)])
    elif case == "sum":
        a[3] = [0.5, 0.5, 0.5]
    elif case == "negative":
        a[3] = [1.2, -0.2, 0.0]
    elif case == "index":
        y[7] = 3
    elif case == "negative index":
        y[7] = -1
    elif case == "fraction":
        y_bad = y.astype(float)
        y_bad[7] = 1.5
    elif case == "2-d":
        y_bad = y.reshape(5, 10)
    elif case == "text":
        y_bad = np.array(["a"] * 50)
    elif case == "two classes":
        classes = ["a", "b"]
    elif case == "twice":
        classes = ["a", "b", "a"]
    return y_bad, a, b, classes


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("nan", "cand_proba holds NaN"),
        ("inf", "prod_proba holds NaN or infinite"),
        ("rows", r"cand_proba must have shape \(n, K\) = \(50, 3\).*got \(49, 3\)"),
        ("columns", r"got \(50, 4\)"),
        ("sum", "cand_proba row 3 sums to 1.5"),
        ("negative", r"within \[0, 1\]; found -0.2"),
        ("index", "y holds 3, not a class index 0..2"),
        ("negative index", "y holds -1"),
        ("fraction", "y holds 1.5"),
        ("2-d", r"1-d array of class indices; got \(5, 10\)"),
        ("text", "got dtype <U1"),
        ("two classes", "at least 3 classes; got 2"),
        ("twice", "'a' appears more than once"),
    ],
)
def test_bad_arrays_are_a_value_error_naming_the_problem(case: str, match: str) -> None:
    y, a, b, classes = _bad(case)
    with pytest.raises(ValueError, match=match):
        compare_multiclass(["accuracy"], y, a, b, classes)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("f1", "use f1_macro, f1_micro, f1_weighted or f1\\[<class>\\]"),
        ("precision", "precision_macro"),
        ("recall", "recall\\[<class>\\]"),
        ("f1[dog]", "Unknown class 'dog' in metric 'f1\\[dog\\]'; classes: c0, c1, c2"),
        ("roc_auc[]", "Unknown class ''"),
        ("mae", "Unknown multiclass metric 'mae'; allowed: accuracy, balanced_accuracy"),
        ("accuracy[c1]", "Unknown multiclass metric 'accuracy\\[c1\\]'"),
    ],
)
def test_bad_metric_names_are_a_config_error(name: str, match: str) -> None:
    y, a, b = two_models(50, 3, seed=18)
    with pytest.raises(ConfigError, match=match):
        compare_multiclass([name], y, a, b, class_names(3))
    with pytest.raises(ConfigError, match=match):
        evaluate_multiclass([name], y, a, class_names(3))


def test_names_without_classes() -> None:
    """What config checks can tell before the classes are known."""
    assert all(is_multiclass_name(n) for n in [*MULTICLASS_METRICS, "f1[anything]"])
    assert not any(is_multiclass_name(n) for n in ["f1", "mae", "accuracy[a]", "roc_auc[a"])
    assert is_per_class("roc_auc[cat]") and not is_per_class("roc_auc_ovr")
    assert MULTICLASS_HINT.startswith("accuracy, balanced_accuracy, f1_macro")
    assert MULTICLASS_HINT.endswith("f1[<class>], roc_auc[<class>]")


def test_check_multiclass_returns_checked_arrays() -> None:
    y, a = check_multiclass([0.0, 2.0, 1.0], np.eye(3).tolist(), ["a", "b", "c"])
    assert y.dtype == np.intp and y.tolist() == [0, 2, 1]
    assert a.dtype == np.float64 and a.shape == (3, 3)
    with pytest.raises(ValueError, match="proba row 1 sums to 2"):
        check_multiclass([0, 1], [[1, 0, 0], [1, 1, 0]], ["a", "b", "c"])


def test_no_metric_is_a_config_error() -> None:
    y, a, _ = two_models(50, 3, seed=18)
    with pytest.raises(ConfigError, match="No metric given"):
        evaluate_multiclass([], y, a, class_names(3))


def test_auc_of_a_class_without_rows_names_the_class() -> None:
    y, a, b = two_models(300, 4, seed=19)
    y[y == 2] = 1
    classes = ["ant", "bee", "cat", "dog"]
    for name in ["roc_auc_ovr", "roc_auc_ovr_weighted", "roc_auc", "roc_auc[cat]"]:
        with pytest.raises(ValueError, match=r"class 'cat' vs rest .* y has 0 of 300 rows"):
            evaluate_multiclass([name], y, a, classes)
    assert evaluate_multiclass(["roc_auc[bee]", "accuracy"], y, a, classes)["accuracy"] > 0
    found = compare_multiclass(["accuracy", "f1_macro", "recall[cat]"], y, a, b, classes)
    assert found["recall[cat]"].candidate == 0


def test_auc_interval_needs_two_rows_of_the_class() -> None:
    y, a, b = two_models(300, 3, seed=20)
    y[y == 0] = 1
    y[0] = 0
    with pytest.raises(ValueError, match="at least 2 rows of it"):
        compare_multiclass(["roc_auc_ovr"], y, a, b, class_names(3))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"confidence": 1.0}, "confidence must be between 0 and 1"),
        ({"n_resamples": 0}, "n_resamples must be at least 1; got 0"),
    ],
)
def test_bad_options_are_a_value_error(options: dict[str, float], match: str) -> None:
    y, a, b = two_models(50, 3, seed=21)
    with pytest.raises(ValueError, match=match):
        compare_multiclass(["accuracy"], y, a, b, class_names(3), **options)
