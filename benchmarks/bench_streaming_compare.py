"""Peak memory and time of the streamed comparison on a 20M-row Parquet holdout, beside the
in-memory path on a 1M-row sample of it.

Run from the repo root:  python benchmarks/bench_streaming_compare.py [--rows 20000000]

The holdout (4 numeric features, a 0/1 target, ~20% positives) is written in 1M-row chunks, so
the generator stays small; its first chunk is also written alone as the 1M-row sample. Two
logistic regressions (4 and 3 features) are fitted on 50,000 other rows. Each measurement runs
in a fresh child process (the models refitted there from the same seed) that reports its wall
time and peak RSS (VmHWM of /proc/self/status): ``compare_parquet`` on the 20M rows and on the
sample, and, on the sample, the in-memory path (read the frame, predict both models, ``compare``).
The metrics are roc_auc, accuracy, f1 and log_loss with intervals (B resamples). It prints the
numbers, their ratios and the largest difference between the two paths on the sample; it
asserts nothing. The generated files are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METRICS = ["roc_auc", "accuracy", "f1", "log_loss"]
FEATURES = ["x0", "x1", "x2", "x3"]
PRODUCTION_FEATURES = ["x0", "x1", "x2"]
CHUNK = 1_000_000
MiB = 1 << 20


def chunk(rows: int, seed: int) -> pd.DataFrame:
    """Features N(0, 1) and a 0/1 target from a logistic model (about 20% positives)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.6 * x[:, 2] + 0.4 * x[:, 3] - 2.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "y": y})


def write_holdout(path: Path, sample: Path, rows: int) -> None:
    """``rows`` rows in chunks of 1M (seeded by chunk), the first chunk also as ``sample``."""
    writer = None
    for index, start in enumerate(range(0, rows, CHUNK)):
        table = pa.Table.from_pandas(
            chunk(min(CHUNK, rows - start), 1000 + index), preserve_index=False
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
            pq.write_table(table, sample)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def models() -> tuple[Any, Any]:
    from sklearn.linear_model import LogisticRegression

    train = chunk(50_000, 0)
    cand = LogisticRegression().fit(train[FEATURES], train["y"])
    prod = LogisticRegression(C=0.01).fit(train[PRODUCTION_FEATURES], train["y"])
    return cand, prod


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode: str, path: Path, resamples: int) -> None:
    """Run one measurement and print it as JSON (time, peak RSS, the comparisons)."""
    from dataclasses import asdict

    from ci_ml.evaluation.outofcore import ParquetHoldout, Scorer, compare_parquet
    from ci_ml.evaluation.stats import compare

    cand, prod = models()
    idle = peak_rss_mib()
    start = time.perf_counter()
    if mode == "stream":
        holdout = ParquetHoldout(path, "y", 1)
        scorers = Scorer(cand, FEATURES), Scorer(prod, PRODUCTION_FEATURES)
        found = compare_parquet(holdout, *scorers, METRICS, n_resamples=resamples)
    else:
        frame = pd.read_parquet(path)
        a = cand.predict_proba(frame[FEATURES])[:, 1]
        b = prod.predict_proba(frame[PRODUCTION_FEATURES])[:, 1]
        y = frame["y"].to_numpy(np.float64)
        found = compare("classification", METRICS, y, a, b, n_resamples=resamples)
    seconds = time.perf_counter() - start
    result = {name: asdict(c) for name, c in found.items()}
    print(json.dumps({"seconds": seconds, "peak": peak_rss_mib(), "idle": idle, "found": result}))


def measure(mode: str, path: Path, resamples: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(path), "--resamples", str(resamples)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def largest_difference(a: dict[str, Any], b: dict[str, Any], metric: str) -> float:
    fields = ("candidate", "production", "delta", "ci_low", "ci_high")
    return max(abs(a[metric][f] - b[metric][f]) for f in fields)


def report(rows: int, big: dict[str, Any], small: dict[str, Any], memory: dict[str, Any]) -> None:
    print(f"metrics: {', '.join(METRICS)}; B={big['found']['accuracy']['method'].split('B=')[1]}")
    print(f"child after imports and model fits (before any comparison): {big['idle']:.0f} MiB")
    for label, run in ((f"streamed, {rows:,} rows", big), ("streamed, 1M-row sample", small),
                       ("in memory, 1M-row sample", memory)):  # fmt: skip
        print(f"{label}: {run['seconds']:.1f} s, peak RSS {run['peak']:.0f} MiB")
    time_ratio, rss_ratio = big["seconds"] / memory["seconds"], big["peak"] / memory["peak"]
    print(f"streamed {rows:,} / in memory 1M: time {time_ratio:.1f}x, peak RSS {rss_ratio:.2f}x")
    per_row = (memory["peak"] - memory["idle"]) * MiB / CHUNK
    print(f"in-memory peak above the idle child: {per_row:.0f} bytes per row")
    for metric in METRICS:
        diff = largest_difference(small["found"], memory["found"], metric)
        print(f"1M sample, {metric}: largest |streamed - in memory| = {diff:.2e}")
    print(f"roc_auc method (20M): {big['found']['roc_auc']['method']}")
    for metric in METRICS:
        c = big["found"][metric]
        print(f"  {metric}: cand {c['candidate']:.6f} prod {c['production']:.6f} "
              f"delta {c['delta']:+.6f} [{c['ci_low']:+.6f}, {c['ci_high']:+.6f}]")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.resamples)
        return
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        path, sample = Path(tmp) / "holdout.parquet", Path(tmp) / "sample.parquet"
        start = time.perf_counter()
        write_holdout(path, sample, args.rows)
        size = path.stat().st_size / MiB
        print(f"wrote {args.rows:,} rows ({size:,.0f} MiB) in {time.perf_counter() - start:.0f} s")
        big = measure("stream", path, args.resamples)
        small = measure("stream", sample, args.resamples)
        memory = measure("memory", sample, args.resamples)
    report(args.rows, big, small, memory)  # the files are deleted by now


if __name__ == "__main__":
    main()
