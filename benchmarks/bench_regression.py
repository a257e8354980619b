"""Time the regression comparison (rmse, r2, mae with intervals) on a large synthetic holdout:
the delta method that compare() takes above EXACT_BOOTSTRAP_MAX_ROWS rows against the exact
paired row bootstrap it replaces there.

Run from the repo root:  python benchmarks/bench_regression.py [--rows 1000000]

The exact bootstrap is O(B·n): it is timed on a few resamples (100 by default) and scaled
linearly to B = 2000 (its time is linear in B). It prints times, ratios and both intervals (the
exact one from those few resamples, so its bounds carry their Monte Carlo error); it asserts
nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from scipy import stats as sps

from ci_ml.evaluation.regression import (
    EXACT_BOOTSTRAP_MAX_ROWS,
    PairedInterval,
    bootstrap_deltas,
    paired_intervals,
    sum_columns,
)
from ci_ml.evaluation.stats import Comparison, compare

METRICS = ["rmse", "r2", "mae"]
SUMS = ["rmse", "r2"]
T = TypeVar("T")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
Found = dict[str, PairedInterval]


def synthetic_regression(rows: int, seed: int) -> Arrays:
    """Truth N(0, 1) and two predictions with correlated errors (as bench_compare.py)."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=rows)
    shared = rng.normal(size=rows)
    cand = target + 0.3 * shared + 0.4 * rng.normal(size=rows)
    prod = target + 0.3 * shared + 0.42 * rng.normal(size=rows)
    return target, cand, prod


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of_3(fn: Callable[[], object]) -> float:
    return min(timed(fn)[0] for _ in range(3))


def exact_bootstrap(data: Arrays, resamples: int, seed: int) -> Found:
    y, cand, prod = data
    return paired_intervals(
        SUMS, y, cand, prod, confidence=0.95, n_resamples=resamples, seed=seed, method="bootstrap"
    )[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--exact-resamples", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=2000, help="B the exact time is scaled to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic_regression(args.rows, args.seed)
    b, few = args.resamples, args.exact_resamples
    compare("regression", METRICS, *(a[:1000] for a in data))  # warm up
    fast = best_of_3(lambda: compare("regression", METRICS, *data, n_resamples=b))
    found = compare("regression", METRICS, *data, n_resamples=b)
    exact_few, exact_found = timed(lambda: exact_bootstrap(data, few, args.seed))
    exact = exact_few * b / few
    mae_only = best_of_3(lambda: compare("regression", ["mae"], *data))

    print(
        f"rows: {args.rows:,}; metrics: {', '.join(METRICS)}; "
        f"EXACT_BOOTSTRAP_MAX_ROWS = {EXACT_BOOTSTRAP_MAX_ROWS:,}"
    )
    print(f"rmse, r2: {found['rmse'].method}; mae: {found['mae'].method}")
    print(f"ci-ml compare, rmse + r2 + mae with intervals: {fast:.3f} s (best of 3)")
    print(
        f"exact row bootstrap, rmse + r2: {exact_few:.2f} s for {few} resamples -> "
        f"{exact:.1f} s scaled to B={b}; with mae ({mae_only:.3f} s): {exact + mae_only:.1f} s"
    )
    print(f"ratio exact / ci-ml, whole comparison: {(exact + mae_only) / fast:,.0f}x")
    _print_agreement(data, found, exact_found, few, args.seed)


def _print_agreement(
    data: Arrays, found: dict[str, Comparison], exact: Found, few: int, seed: int
) -> None:
    """Delta-method se vs the sd of the bootstrap deltas (steadier than few-draw quantiles)."""
    boot = bootstrap_deltas(SUMS, sum_columns(*data), few, seed)
    for name in SUMS:
        e, f = exact[name], found[name]
        se = (f.ci_high - f.ci_low) / 2 / float(sps.norm.ppf(0.975))
        print(
            f"{name}: delta {f.delta:+.6f} (exact path {e.candidate - e.production:+.6f}); "
            f"se: delta method {se:.6f}, sd of {few} bootstrap deltas "
            f"{np.std(boot[name], ddof=1):.6f}; 95% interval: delta method "
            f"[{f.ci_low:+.6f}, {f.ci_high:+.6f}], exact bootstrap ({few} resamples) "
            f"[{e.ci_low:+.6f}, {e.ci_high:+.6f}]"
        )


if __name__ == "__main__":
    main()
