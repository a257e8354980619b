"""Time ci_ml.evaluation.stats.compare on a large synthetic holdout against a naive row bootstrap.

Run from the repo root:  python benchmarks/bench_compare.py [--rows 1000000]

The "whole comparison" is roc_auc, f1 and accuracy with intervals (B resamples) on all rows
plus the same comparison on each of 5 slices. The naive baseline resamples rows and calls
sklearn.metrics for every resample; it runs a few resamples and is scaled linearly to B.
It prints times and ratios; it asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from ci_ml.evaluation.stats import compare

CLASSIFICATION = ["roc_auc", "f1", "accuracy"]
REGRESSION = ["rmse", "r2", "mae"]
N_SLICES = 5


def synthetic_holdout(rows: int, seed: int) -> dict[str, np.ndarray]:
    """0/1 truth, two correlated probability models, a 5-valued slice column, a regression."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(np.int64)
    shared = rng.normal(size=rows)
    sign = 2 * y - 1
    cand = 1 / (1 + np.exp(-(1.2 * sign + shared + 0.5 * rng.normal(size=rows))))
    prod = 1 / (1 + np.exp(-(1.1 * sign + shared + 0.5 * rng.normal(size=rows))))
    target = rng.normal(size=rows)
    return {
        "y": y,
        "cand": cand,
        "prod": prod,
        "slice": rng.integers(0, N_SLICES, size=rows),
        "target": target,
        "reg_cand": target + 0.5 * rng.normal(size=rows),
        "reg_prod": target + 0.52 * rng.normal(size=rows),
    }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def whole_comparison(data: dict[str, np.ndarray], resamples: int) -> None:
    """compare() on all rows, then on each slice."""
    y, cand, prod = data["y"], data["cand"], data["prod"]
    compare("classification", CLASSIFICATION, y, cand, prod, n_resamples=resamples)
    for value in range(N_SLICES):
        rows = data["slice"] == value
        compare(
            "classification", CLASSIFICATION, y[rows], cand[rows], prod[rows], n_resamples=resamples
        )


def naive_bootstrap(data: dict[str, np.ndarray], resamples: int, seed: int) -> None:
    """Resample the rows of all rows and of each slice; sklearn metrics for both models."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(data["y"].size)]
    groups += [np.flatnonzero(data["slice"] == v) for v in range(N_SLICES)]
    for _ in range(resamples):
        for group in groups:
            rows = group[rng.integers(0, group.size, size=group.size)]
            y = data["y"][rows]
            for model in ("cand", "prod"):
                proba = data[model][rows]
                label = proba >= 0.5
                skm.roc_auc_score(y, proba)
                skm.f1_score(y, label)
                skm.accuracy_score(y, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--naive-resamples", type=int, default=3)
    parser.add_argument("--regression-resamples", type=int, default=2000, help="0 skips it")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic_holdout(args.rows, args.seed)
    whole_comparison(data, 10)  # warm up imports and caches
    ours = min(timed(lambda: whole_comparison(data, args.resamples)) for _ in range(3))
    naive_few = timed(lambda: naive_bootstrap(data, args.naive_resamples, args.seed))
    naive = naive_few * args.resamples / args.naive_resamples

    print(f"rows: {args.rows:,}; metrics: {', '.join(CLASSIFICATION)}; {N_SLICES} slices")
    print(
        f"ci-ml compare, all rows + {N_SLICES} slices, B={args.resamples}: {ours:.3f} s (best of 3)"
    )
    print(
        f"naive row bootstrap with sklearn.metrics: {naive_few:.2f} s for "
        f"{args.naive_resamples} resamples -> {naive:,.0f} s scaled to B={args.resamples}"
    )
    print(f"ratio naive / ci-ml: {naive / ours:,.0f}x")
    if args.regression_resamples:
        reg = (data["target"], data["reg_cand"], data["reg_prod"])
        b = args.regression_resamples
        seconds = timed(lambda: compare("regression", REGRESSION, *reg, n_resamples=b))
        print(
            f"regression compare ({', '.join(REGRESSION)}), all rows, "
            f"B={args.regression_resamples}: {seconds:.2f} s"
        )


if __name__ == "__main__":
    main()
