"""How often ci-ml monitor calls an unchanged model stale, and how often it catches a real change.

Run from the repo root (after ``dvc pull``):  python benchmarks/bench_decay.py [--splits 200]

1. **The example data, refitted.** On each of ``--splits`` random splits of
   ``data/credit_data.csv`` (1,000 recent rows; of the rest 20% holdout, 80% training), the
   example's HistGradientBoosting model is fitted with ci-ml's trainer and its decay judged
   on the recent rows, nothing changed: against the holdout at the gate (two samples, what
   ci-ml does) and as ci-ml did before: each metric's recent interval at 95% against the
   recorded value taken as exact.
2. **A population that never changes**, for any number of recent rows: outcomes from a fixed
   logistic law, scores from a fixed imperfect model; an 891-row holdout and 1,000 or 10,000
   recent rows, ``--runs`` times, with the default allowed drops and with none (``--max-drop
   0``, the hardest case: every metric then judges "no worse at all").
3. **Power**: the same, with 10%, 20% or 40% of the recent outcomes flipped.

The six default classification metrics are judged, as ``ci-ml monitor`` does by default.
It prints the share called stale with a 95% Wilson upper bound; it asserts nothing (the
tests assert the bar on smaller runs: tests/monitor/test_decay.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ci_ml.evaluation.metrics import evaluate_metrics
from ci_ml.monitor.decay import DecaySettings, Labelled, decay

METRICS = ["roc_auc", "accuracy", "f1", "precision", "recall", "log_loss"]
HOLDOUT_ROWS = 891


def wilson_upper(hits: int, runs: int, z: float = 1.96) -> float:
    """The upper end of the 95% Wilson interval of a share."""
    share = hits / runs
    centre = share + z * z / (2 * runs)
    half = z * np.sqrt(share * (1 - share) / runs + z * z / (4 * runs * runs))
    return float((centre + half) / (1 + z * z / runs))


def stale(
    y: np.ndarray, p: np.ndarray, gate: Labelled, settings: DecaySettings, *, as_exact: bool
) -> bool:
    recorded = evaluate_metrics("classification", METRICS, gate.truth, gate.score)
    if as_exact:  # as before: each metric alone at the confidence, the gate's value exact
        found = [d for m in METRICS for d in decay("classification", recorded, y, p, [m], settings)]
    else:
        found = decay("classification", recorded, y, p, METRICS, settings, gate)
    return any(d.verdict == "decayed" for d in found)


def report(label: str, hits: int, runs: int) -> None:
    upper = wilson_upper(hits, runs)
    print(f"  {label:<44} {hits:>4} of {runs} = {hits / runs:6.1%}  (95% ≤ {upper:.1%})")


# --- 1. the example data, refitted -------------------------------------------------------


def example_splits(path: Path, splits: int, recent_rows: int) -> None:
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ci_ml.config import ModelConfig
    from ci_ml.training import build_pipeline, feature_schema

    frame = pd.read_csv(path)
    features = [c for c in frame.columns if c != "Status"]
    x, y = frame[features], (frame["Status"] == "bad").to_numpy(dtype=np.float64)
    config = ModelConfig(
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15},
    )
    settings = DecaySettings()
    counts = {"two samples (ci-ml)": 0, "recorded value as exact (before)": 0}
    start = time.perf_counter()
    for split in range(splits):
        order = np.random.default_rng(split).permutation(len(frame))
        recent, rest = order[:recent_rows], order[recent_rows:]
        holdout, train = rest[: len(rest) // 5], rest[len(rest) // 5 :]
        pipeline = build_pipeline(config, feature_schema(x, features))
        with threadpool_limits(1):
            model = pipeline.fit(x.iloc[train], frame["Status"].iloc[train])
            column = list(model.classes_).index("bad")
            gate = Labelled(y[holdout], model.predict_proba(x.iloc[holdout])[:, column])
            scores = model.predict_proba(x.iloc[recent])[:, column]
        counts["two samples (ci-ml)"] += stale(y[recent], scores, gate, settings, as_exact=False)
        counts["recorded value as exact (before)"] += stale(
            y[recent], scores, gate, settings, as_exact=True
        )
    took = time.perf_counter() - start
    print(
        f"\n1. {path}: {splits} refitted splits, holdout {len(holdout)}, "
        f"recent {recent_rows} rows, nothing changed ({took:.0f} s)"
    )
    for label, hits in counts.items():
        report(label, hits, splits)


# --- 2. and 3. a population that never changes -------------------------------------------


def population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes from a fixed logistic law and a fixed, imperfect model's scores."""
    x = rng.normal(size=(n, 3))
    logit = -1.5 + 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] ** 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    score = 1 / (1 + np.exp(-(-1.1 + 1.0 * x[:, 0] - 0.9 * x[:, 1] + 0.2 * x[:, 2])))
    return y, score


def simulated(
    runs: int, recent_rows: int, settings: DecaySettings, flip: float, seed: int
) -> dict[str, int]:
    counts = {"two samples (ci-ml)": 0, "recorded value as exact (before)": 0}
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        gate = Labelled(*population(rng, HOLDOUT_ROWS))
        y, p = population(rng, recent_rows)
        y = np.where(rng.random(recent_rows) < flip, 1 - y, y)
        counts["two samples (ci-ml)"] += stale(y, p, gate, settings, as_exact=False)
        counts["recorded value as exact (before)"] += stale(y, p, gate, settings, as_exact=True)
    return counts


def population_runs(runs: int) -> None:
    print(f"\n2. a population that never changes: holdout {HOLDOUT_ROWS} rows, {runs} runs each")
    for name, settings in [
        ("default drops", DecaySettings()),
        ("--max-drop 0", DecaySettings(max_drop=0.0)),
    ]:
        for rows in (1000, 10_000):
            start = time.perf_counter()
            counts = simulated(runs, rows, settings, 0.0, seed=0)
            print(f" {name}, {rows} recent rows ({time.perf_counter() - start:.0f} s)")
            for label, hits in counts.items():
                report(label, hits, runs)
    print(f"\n3. power: a share of the recent outcomes flipped, {runs // 5} runs each")
    for flip in (0.1, 0.2, 0.4):
        for rows in (1000, 10_000):
            hits = simulated(runs // 5, rows, DecaySettings(), flip, seed=1)["two samples (ci-ml)"]
            report(f"{flip:.0%} flipped, {rows} recent rows: stale", hits, runs // 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/credit_data.csv"))
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    if args.data.is_file():
        example_splits(args.data, args.splits, 1000)
    else:
        print(f"{args.data} is missing (dvc pull first); skipping the refitted splits")
    population_runs(args.runs)


if __name__ == "__main__":
    main()
