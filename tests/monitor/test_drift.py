"""Per-feature drift: the measures against reference implementations, and the judging."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

from ci_ml.monitor.drift import (
    DriftThresholds,
    Measure,
    categorical_drift,
    category_counts,
    column_drift,
    compare_frames,
    jensen_shannon,
    numeric_drift,
    psi,
    psi_noise,
    wasserstein_sorted,
)

RNG = np.random.default_rng(7)
TH = DriftThresholds()


def normal(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).normal(shift, 1.0, size=n))


# -- the measures ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 7), (100, 33), (1000, 2500), (400, 400)])
def test_wasserstein_is_exact(n, m):
    a = np.sort(RNG.lognormal(size=n))
    b = np.sort(np.round(RNG.normal(1, 2, size=m), 1))  # ties too
    assert wasserstein_sorted(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_psi_by_hand():
    ref, cur = np.array([50.0, 30.0, 20.0]), np.array([20.0, 30.0, 50.0])
    p, q = (ref + 0.5) / 101.5, (cur + 0.5) / 101.5
    assert psi(ref, cur) == pytest.approx(np.sum((q - p) * np.log(q / p)))
    assert psi(ref, ref) == 0.0
    assert psi(np.array([10.0, 0.0]), np.array([5.0, 5.0])) > 0  # empty bins are fine


def test_jensen_shannon_matches_scipy():
    ref, cur = np.array([5.0, 3.0, 0.0, 2.0]), np.array([1.0, 3.0, 4.0, 2.0])
    assert jensen_shannon(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2))
    assert jensen_shannon(ref, ref) == 0.0


# -- judging numeric features ---------------------------------------------------------------


def measures(found):
    return {m.name: m for m in found.measures}


def test_a_shift_of_half_a_std_drifts_on_both_measures():
    found = numeric_drift("x", normal(5000), normal(5000, 0.5, seed=1), TH)

    assert found.drifted
    assert measures(found)["wasserstein"].value == pytest.approx(0.5, abs=0.05)
    assert measures(found)["psi"].drifted
    assert found.summary.startswith("mean ")


def test_the_same_distribution_does_not_drift():
    found = numeric_drift("x", normal(5000), normal(3000, seed=1), TH)

    assert not found.drifted
    assert all(m.value < m.threshold / 2 for m in found.measures if m.threshold)


def test_large_samples_judge_effect_size_not_significance():
    ref, cur = normal(200_000), normal(200_000, 0.03, seed=1)

    assert ks_2samp(ref, cur).pvalue < 1e-9  # a test calls this tiny change significant
    assert not numeric_drift("x", ref, cur, TH).drifted


def test_small_samples_raise_the_limit_to_the_noise_floor():
    found = numeric_drift("x", normal(2000), normal(20, seed=3), TH)

    for measure in found.measures:
        assert measure.limit > measure.threshold
        assert not measure.drifted
    assert psi_noise(10, 1e6) < 1e-4  # on large samples the threshold alone decides


def test_a_scale_change_drifts():
    ref = normal(5000)
    assert numeric_drift("x", ref, ref * 1.5, TH).drifted


def test_a_constant_reference_still_measures():
    ref, cur = np.zeros(500), np.sort(np.r_[np.zeros(250), np.ones(250)])
    found = numeric_drift("x", ref, cur, TH)

    assert found.drifted and np.isfinite(found.severity)


def test_an_empty_side_has_nothing_to_compare():
    found = numeric_drift("x", normal(10), np.array([]), TH)

    assert (found.drifted, found.summary) == (False, "no values to compare")


# -- categorical features -------------------------------------------------------------------


def counts(values: list[str]) -> pd.Series:
    return category_counts(pd.Series(values, dtype=object))[0]


def test_a_changed_mix_drifts_and_says_which_category_moved():
    ref = counts(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    cur = counts(["a"] * 300 + ["b"] * 300 + ["c"] * 400)

    found = categorical_drift("Home", ref, cur, TH)

    assert found.drifted
    assert found.summary == "c 10.0% → 40.0%"
    assert measures(found)["jensen_shannon"].threshold is None  # information only


def test_unseen_categories_are_pooled_and_counted():
    ref = counts(["a"] * 500 + ["b"] * 500)
    cur = counts(["a"] * 400 + ["b"] * 300 + ["new"] * 300)

    found = categorical_drift("x", ref, cur, TH)

    assert found.drifted
    assert found.details["unseen_share"] == pytest.approx(0.3)
    assert found.details["shares"]["(other)"]["recent"] == pytest.approx(0.3)


def test_the_same_mix_does_not_drift():
    letters = np.array(list("abcde"), dtype=object)
    ref = counts(list(RNG.choice(letters, 3000)))
    cur = counts(list(RNG.choice(letters, 800)))
    assert not categorical_drift("x", ref, cur, TH).drifted


def test_numbers_and_their_text_are_one_category():
    found, _ = category_counts(pd.Series([1, "1", 2, None], dtype=object))
    assert found.to_dict() == {"1": 2, "2": 1}


# -- missingness ----------------------------------------------------------------------------


def test_missingness_is_a_feature_of_its_own():
    values = pd.Series(RNG.normal(size=4000))
    ref = values.copy()
    ref[:40] = np.nan  # 1% missing
    cur = values.copy()
    cur[:800] = np.nan  # 20% missing; the values present are the same distribution

    value_row, missing_row = column_drift("Income", "numeric", ref, cur, TH)

    assert not value_row.drifted
    assert (missing_row.feature, missing_row.kind, missing_row.drifted) == (
        "Income (missing)",
        "missing",
        True,
    )
    assert missing_row.summary == "missing 1.0% → 20.0%"


def test_no_missing_values_no_missing_row():
    assert len(column_drift("x", "numeric", pd.Series([1.0, 2.0]), pd.Series([2.0, 3.0]), TH)) == 1


def test_text_that_is_no_number_counts_as_missing():
    ref = pd.Series(np.arange(100.0))
    cur = pd.Series([str(v) for v in range(90)] + ["n/a"] * 10, dtype=object)

    value_row, missing_row = column_drift("x", "numeric", ref, cur, TH)

    assert missing_row.details["recent_share"] == pytest.approx(0.1)
    assert value_row.recent_rows == 90


# -- frames ---------------------------------------------------------------------------------


def test_compare_frames_flags_exactly_the_changed_features_worst_first():
    n = 4000
    ref = pd.DataFrame(
        {
            "income": RNG.lognormal(5, 0.5, n),
            "age": RNG.integers(18, 70, n).astype(float),
            "home": RNG.choice(np.array(["own", "rent", "other"], dtype=object), n),
        }
    )
    cur = ref.sample(frac=0.5, random_state=1).reset_index(drop=True)
    cur["income"] *= 1.5
    cur.loc[: len(cur) // 3, "home"] = "rent"
    kinds = {"income": "numeric", "age": "numeric", "home": "categorical"}

    found = compare_frames(ref, cur, kinds)

    assert [f.feature for f in found if f.drifted] == ["income", "home"]
    assert found[-1].feature == "age"
    record = json.dumps([f.as_dict() for f in found], allow_nan=False)
    assert '"drifted": true' in record


def test_the_record_holds_only_json_numbers():
    found = numeric_drift("x", np.zeros(5), np.array([0.0, 1e308, 1e308, 1e308, 1e308]), TH)
    json.dumps(found.as_dict(), allow_nan=False)


def test_a_measure_without_threshold_never_drifts():
    measure = Measure("jensen_shannon", 0.9)
    assert (measure.limit, measure.drifted, measure.severity) == (None, False, 0.0)
