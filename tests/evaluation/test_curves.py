"""Tests for ci_ml.evaluation.curves: the grid values against scikit-learn's curves on random
data (with ties), the curves of each task, and DVC reading the plot files."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from ci_ml import rundir
from ci_ml.api.files import write_plots
from ci_ml.evaluation import curves
from ci_ml.evaluation.predict import Predictions
from ci_ml.records import Evaluation
from tests.conftest import git


def binary(seed: int, n: int = 600, decimals: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """0/1 truth and a noisy probability, rounded so that many scores tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return y, np.round(score, decimals)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_is_sklearn_roc_curve_on_the_fpr_grid(seed: int) -> None:
    y, score = binary(seed)
    fpr, tpr, _ = roc_curve(y, score)
    found = curves.roc_at(y, score)
    assert list(curves.RATES) == pytest.approx([i / 20 for i in range(21)])
    assert found == pytest.approx(np.interp(curves.RATES, fpr, tpr), abs=1e-12)
    # on a vertical step (equal fpr), the top: the best tpr at that fpr
    for rate, value in zip(curves.RATES, found, strict=True):
        if np.isin(rate, fpr):
            assert value == pytest.approx(tpr[fpr == rate].max())
    assert found[0] == pytest.approx(tpr[fpr == 0].max()) and found[-1] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_is_sklearns_best_precision_at_that_recall_or_more(seed: int) -> None:
    y, score = binary(seed)
    precision, recall, _ = precision_recall_curve(y, score)
    precision, recall = precision[:-1], recall[:-1]  # not sklearn's added (recall 0, precision 1)
    expected = [precision[recall >= r].max() for r in curves.RATES]
    found = curves.precision_at(y, score)
    assert found == pytest.approx(expected, abs=1e-12)
    assert np.all(np.diff(found) <= 0)  # interpolated precision never rises with recall


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_is_sklearns_calibration_curve_with_counts(seed: int) -> None:
    y, score = binary(seed, decimals=3)
    score[(score > 0.8) & (score <= 0.9)] = 0.0  # an empty bin
    score[:5] = [0.0, 0.1, 0.5, 1.0, 0.95]  # on bin edges: sklearn's side
    observed, predicted, rows = curves.calibration_bins(y, score)
    prob_true, prob_pred = calibration_curve(y, score, n_bins=10, strategy="uniform")
    assert [v for v in observed if v is not None] == pytest.approx(prob_true)
    assert [v for v in predicted if v is not None] == pytest.approx(prob_pred)
    edges = np.linspace(0, 1, 11)
    expected = [int(np.sum((score > lo) & (score <= hi))) for lo, hi in pairwise(edges)]
    expected[0] += int(np.sum(score == 0))
    assert rows == expected and sum(rows) == y.size
    assert [o is None for o in observed] == [n == 0 for n in rows]
    assert rows[8] == 0 and observed[8] is None


def test_regression_bins_and_residual_quantiles() -> None:
    rng = np.random.default_rng(3)
    actual = np.round(rng.normal(50, 10, 503))  # ties across bin boundaries
    predicted = actual + rng.normal(0, 3, actual.size)
    groups = curves.actual_bins(actual)
    assert [g.size for g in groups] == [51, 51, 51, 50, 50, 50, 50, 50, 50, 50]
    assert sorted(np.concatenate(groups)) == list(range(actual.size))
    means = [actual[g].mean() for g in groups]
    assert means == sorted(means)
    assert curves.residual_quantiles(actual, predicted) == pytest.approx(
        np.quantile(actual - predicted, np.arange(1, 20) / 20)
    )
    assert len(curves.actual_bins(actual[:4])) == 4  # fewer rows than bins: a bin per row


def test_binary_curves_of_both_models_on_one_grid() -> None:
    y, ours = binary(0)
    _, theirs = binary(1)
    found = curves.curves("classification", Predictions(y, ours), Predictions(y, theirs))
    assert [c.name for c in found] == ["roc", "precision_recall", "calibration"]
    roc, pr, calibration = found
    assert (roc.x, roc.y, pr.x, pr.y) == ("fpr", "tpr", "recall", "precision")
    assert roc.candidate.y == pytest.approx(list(curves.roc_at(y, ours)))
    assert roc.production is not None
    assert roc.production.y == pytest.approx(list(curves.roc_at(y, theirs)))
    assert calibration.grid == pytest.approx([0.05 + i / 10 for i in range(10)])
    assert calibration.production is not None and calibration.production.rows is not None
    assert sum(calibration.production.rows) == y.size
    alone = curves.curves("classification", Predictions(y, ours), None)
    assert all(c.production is None for c in alone)
    assert curves.curves("classification", Predictions(np.ones(9), np.ones(9)), None) == []


def test_multiclass_macro_one_vs_rest_and_top_label_calibration() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    proba = rng.dirichlet([1, 1, 1], y.size)
    proba[np.arange(y.size), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    roc, pr, calibration = curves.curves("classification", Predictions(y, proba), None)
    per_class = []
    for k in range(3):
        fpr, tpr, _ = roc_curve(y == k, proba[:, k])
        per_class.append(np.interp(curves.RATES, fpr, tpr))
    assert roc.candidate.y == pytest.approx(list(np.mean(per_class, axis=0)))
    assert roc.average == pr.average == curves.MACRO
    correct = proba.argmax(axis=1) == y
    prob_true, prob_pred = calibration_curve(correct, proba.max(axis=1), n_bins=10)
    assert [v for v in calibration.candidate.y if v is not None] == pytest.approx(prob_true)
    assert calibration.candidate.mean_x is not None
    assert [v for v in calibration.candidate.mean_x if v is not None] == pytest.approx(prob_pred)


def test_regression_curves() -> None:
    rng = np.random.default_rng(5)
    actual = rng.normal(0, 1, 200)
    ours, theirs = actual + rng.normal(0, 0.3, 200), actual + rng.normal(0.2, 0.5, 200)
    pva, residuals = curves.curves(
        "regression", Predictions(actual, ours), Predictions(actual, theirs)
    )
    groups = curves.actual_bins(actual)
    assert pva.grid == pytest.approx([actual[g].mean() for g in groups])
    assert pva.candidate.y == pytest.approx([ours[g].mean() for g in groups])
    assert pva.production is not None and pva.production.rows == [20] * 10
    assert residuals.grid == pytest.approx(list(curves.LEVELS))
    assert residuals.production is not None
    assert np.median(residuals.production.y) < np.median(residuals.candidate.y)  # biased up


def test_curves_keep_evaluation_json_small_and_older_files_readable() -> None:
    y, ours = binary(0, n=50_000)
    found = curves.curves("classification", Predictions(y, ours), Predictions(y, ours[::-1]))
    text = json.dumps([c.model_dump(mode="json") for c in found])
    assert len(text) < 6_000  # the grid, not the rows
    record = _evaluation(curves=None)
    assert "curves" not in record.model_dump(mode="json")  # absent, not null
    again = _evaluation(curves=[c.model_dump(mode="json") for c in found])
    assert again.curves == found


def _evaluation(**fields: Any) -> Evaluation:
    return Evaluation.model_validate(
        {
            "task": "classification",
            "data_version": "md5:0.dir",
            "rows": {"train": 1, "holdout": 1},
            "positive_class": "bad",
            "candidate": {
                "digest": "ab" * 32,
                "metrics": {},
                "operational": {"latency_p50_ms": 0, "latency_p95_ms": 0, "size_mb": 0},
            },
            "baseline": None,
            "comparisons": {},
            "slices": [],
            "model": {"estimator": "x", "params": {}, "size_bytes": 1},
            "created_at": "2026-12-01T00:00:00+00:00",
            **fields,
        }
    )


# --- DVC reads the plot files -------------------------------------------------------------


def dvc(repo: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", *args, "--show-vega"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["data"]["values"]


def test_dvc_plots_show_and_diff_read_the_plot_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    y, ours = binary(0)
    _, theirs = binary(1)
    found = curves.curves("classification", Predictions(y, ours), Predictions(y, theirs))
    run_dir = repo / "run"
    written = write_plots(found, run_dir)
    assert [p.relative_to(run_dir).as_posix() for p in written] == [
        f"{rundir.PLOTS}/roc.json",
        f"{rundir.PLOTS}/precision_recall.json",
        f"{rundir.PLOTS}/calibration.json",
    ]
    roc, calibration = found[0], found[2]

    # one model's line, as a user types it
    shown = dvc(repo, "show", "run/plots/roc.json", "-x", "fpr", "-y", "candidate")
    assert [row["fpr"] for row in shown] == roc.grid
    assert [row["candidate"] for row in shown] == roc.candidate.y
    rows = dvc(repo, "show", "run/plots/calibration.json", "-x", "predicted", "-y", "production")
    assert calibration.production is not None
    assert [row["production_rows"] for row in rows] == calibration.production.rows

    # both lines in one chart: a dvc.yaml plot with both columns (docs/report.md#curves)
    (repo / "dvc.yaml").write_text(
        "plots:\n  - roc:\n      template: simple\n      x: fpr\n"
        "      y:\n        run/plots/roc.json: [candidate, production]\n"
    )
    both = dvc(repo, "show", "roc")
    assert {row["field"] for row in both} == {"candidate", "production"}
    assert len(both) == 2 * len(roc.grid)

    # across commits: the committed curve against the workspace's
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q", "-m", "one")
    write_plots(curves.curves("classification", Predictions(y, theirs), None), run_dir)
    diff = dvc(
        repo, "diff", "HEAD", "--targets", "run/plots/roc.json", "-x", "fpr", "-y", "candidate"
    )
    by_rev = {
        rev: [r["candidate"] for r in diff if r["rev"] == rev] for rev in ("HEAD", "workspace")
    }
    assert by_rev["HEAD"] == roc.candidate.y
    assert roc.production is not None and by_rev["workspace"] == roc.production.y


def test_an_evaluate_of_another_task_leaves_no_stale_plot(tmp_path: Path) -> None:
    y, ours = binary(0)
    write_plots(curves.curves("classification", Predictions(y, ours), None), tmp_path)
    write_plots(curves.curves("regression", Predictions(y, ours), None), tmp_path)
    names = sorted(p.name for p in (tmp_path / rundir.PLOTS).iterdir())
    assert names == ["predicted_vs_actual.json", "residuals.json"]
