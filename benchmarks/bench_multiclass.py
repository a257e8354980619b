"""Time ci_ml.evaluation.multiclass.compare_multiclass on a large synthetic holdout against a
naive row bootstrap with sklearn.metrics, and its memory with many classes.

Run from the repo root:  python benchmarks/bench_multiclass.py [--rows 1000000 --classes 10]

The "whole comparison" is accuracy, f1_macro, log_loss, roc_auc_ovr and recall[<class>] of
every class with intervals (B resamples). The naive baseline resamples rows and calls
sklearn.metrics for both models on every resample; it runs a few resamples and is scaled
linearly to B. Then the same comparison with many classes (30 by default), where the joint
counts have K³ cells and the bootstrap draws them in chunks; its peak memory is measured with
tracemalloc. It prints times, ratios and memory; it asserts nothing.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from ci_ml.evaluation import multiclass
from ci_ml.evaluation.multiclass import compare_multiclass, joint_cells

Data = tuple[np.ndarray, np.ndarray, np.ndarray]
MiB = 1 << 20


def synthetic_holdout(rows: int, k: int, seed: int) -> Data:
    """Class indices with unequal shares and two correlated probability models."""
    rng = np.random.default_rng(seed)
    share = np.arange(1, k + 1) / np.arange(1, k + 1).sum()
    y = rng.choice(k, size=rows, p=share)
    shared = rng.normal(size=(rows, k))
    probas = []
    for strength in (1.5, 1.4):
        logits = shared + 0.7 * rng.normal(size=(rows, k))
        logits[np.arange(rows), y] += strength
        logits = np.exp(logits - logits.max(axis=1, keepdims=True))
        probas.append(logits / logits.sum(axis=1, keepdims=True))
    return y, probas[0], probas[1]


def metric_names(k: int) -> list[str]:
    return ["accuracy", "f1_macro", "log_loss", "roc_auc_ovr", *(f"recall[{c}]" for c in range(k))]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(data: Data, names: list[str], resamples: int) -> None:
    k = data[1].shape[1]
    compare_multiclass(names, *data, [str(c) for c in range(k)], n_resamples=resamples)


def naive_bootstrap(data: Data, resamples: int, seed: int) -> None:
    """Resample rows; sklearn.metrics for both models on every resample."""
    y, cand, prod = data
    labels = list(range(cand.shape[1]))
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        rows = rng.integers(0, y.size, size=y.size)
        truth = y[rows]
        for proba in (cand[rows], prod[rows]):
            label = proba.argmax(axis=1)
            skm.accuracy_score(truth, label)
            skm.f1_score(truth, label, labels=labels, average="macro", zero_division=0)
            skm.log_loss(truth, proba, labels=labels)
            skm.roc_auc_score(truth, proba, multi_class="ovr", labels=labels)
            skm.recall_score(truth, label, labels=labels, average=None, zero_division=0)


def by_family(names: list[str]) -> dict[str, list[str]]:
    """The metrics of each interval family."""
    return {
        "label bootstrap": [n for n in names if n not in ("log_loss", "roc_auc_ovr")],
        "paired t": ["log_loss"],
        "one-vs-rest DeLong": ["roc_auc_ovr"],
    }


def traced(fn: Callable[[], object]) -> tuple[float, float]:
    """Seconds and peak MiB allocated (tracemalloc) while ``fn`` runs."""
    tracemalloc.start()
    seconds = timed(fn)
    peak = tracemalloc.get_traced_memory()[1] / MiB
    tracemalloc.stop()
    return seconds, peak


def many_classes(rows: int, k: int, resamples: int, seed: int) -> None:
    data = synthetic_holdout(rows, k, seed)
    names = metric_names(k)
    cells = joint_cells(data[0], data[1].argmax(axis=1), data[2].argmax(axis=1), k)
    filled = int(np.count_nonzero(cells))
    chunk = max(1, min(resamples, multiclass.MAX_DRAWN_CELLS // max(filled, k * k)))
    seconds, peak = traced(lambda: ours(data, names, resamples))
    each, whole = chunk * filled * 8 / MiB, resamples * filled * 8 / MiB
    print(f"K={k}, {rows:,} rows, {len(names)} metrics, B={resamples}: {seconds:.2f} s")
    print(
        f"  {filled:,} of {k**3:,} joint cells filled, drawn in chunks of {chunk} resamples "
        f"({each:.0f} MiB each; all at once: {whole:,.0f} MiB)"
    )
    inputs = sum(a.nbytes for a in data) / MiB
    print(f"  peak allocated (tracemalloc): {peak:,.0f} MiB, besides {inputs:,.0f} MiB of inputs")
    for family, subset in by_family(names).items():
        seconds, peak = traced(lambda subset=subset: ours(data, subset, resamples))
        print(f"  {family} alone: {seconds:.2f} s, peak {peak:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--naive-resamples", type=int, default=2)
    parser.add_argument("--many-classes", type=int, default=30, help="0 skips it")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = synthetic_holdout(args.rows, args.classes, args.seed)
    names = metric_names(args.classes)
    ours(data, names, 10)  # warm up imports and caches
    best = min(timed(lambda: ours(data, names, args.resamples)) for _ in range(3))
    naive_few = timed(lambda: naive_bootstrap(data, args.naive_resamples, args.seed))
    naive = naive_few * args.resamples / args.naive_resamples

    print(
        f"rows: {args.rows:,}; K={args.classes}; metrics: accuracy, f1_macro, log_loss, "
        f"roc_auc_ovr, recall[<class>] x {args.classes}"
    )
    print(f"ci-ml compare_multiclass, B={args.resamples}: {best:.2f} s (best of 3)")
    for family, subset in by_family(names).items():
        seconds = timed(lambda subset=subset: ours(data, subset, args.resamples))
        print(f"  {family} alone: {seconds:.2f} s")
    print(
        f"naive row bootstrap with sklearn.metrics: {naive_few:.1f} s for "
        f"{args.naive_resamples} resamples -> {naive:,.0f} s scaled to B={args.resamples}"
    )
    print(f"ratio naive / ci-ml: {naive / best:,.0f}x")
    if args.many_classes:
        del data
        many_classes(args.rows, args.many_classes, args.resamples, args.seed)


if __name__ == "__main__":
    main()
