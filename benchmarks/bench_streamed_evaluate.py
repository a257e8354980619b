"""Peak memory and time of a whole ``ci-ml evaluate`` on a 20M-row Parquet holdout, engine duckdb.

Run from the repo root:  python benchmarks/bench_streamed_evaluate.py [--rows 20000000]

A project in a temporary directory: a 200,000-row train file and a holdout of ``--rows`` rows
(the data of bench_streaming_compare.py: 4 numeric features, a 0/1 target), ``data.engine:
duckdb``, a logistic regression. A first ``ci-ml run`` registers the production model (then
promoted); a second run's pull, validate and train make a candidate (other params), and its
``ci-ml evaluate`` — the streamed comparison with production (the holdout is above
``data.streaming_rows``) — runs in a child process measured alone: wall time and peak RSS
(the child's ru_maxrss). It prints the numbers and the evaluation's streamed record; it asserts
nothing (the bar of issue 17: under 1 GB). The files are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_streaming_compare import chunk, write_holdout

TRAIN_ROWS = 200_000


def config(c: float) -> dict[str, Any]:
    return {
        "data": {
            "path": "data/train.parquet",
            "target": "y",
            "task": "classification",
            "positive_class": 1,
            "holdout": {"file": "data/holdout.parquet"},
            "engine": "duckdb",
        },
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": c}},
        "metrics": ["roc_auc", "accuracy", "f1", "log_loss"],
        "gates": [{"metric": "roc_auc", "min": 0.5, "change": {"margin": -0.5}}],
        "comparison": {"first_model": "pass"},
        "registry": {"url": ".ci-ml/registry"},
    }


def ci_ml(root: Path, *args: str) -> tuple[float, float]:
    """``ci-ml <args>`` in a child process: (seconds, the child's peak RSS in GB)."""
    code = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(done.returncode)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "ci_ml", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"ci-ml {' '.join(args)} failed:\n{done.stderr}")
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1e6  # KiB -> GB (approx.)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        chunk(TRAIN_ROWS, 1).to_parquet(root / "data/train.parquet", index=False)
        write_holdout(root / "data/holdout.parquet", root / "sample.parquet", args.rows)
        path = root / "ci-ml.yaml"
        path.write_text(yaml.safe_dump(config(1.0)))
        first, _ = ci_ml(root, "run")
        version = next((root / ".ci-ml/registry/versions").glob("*.json")).stem
        ci_ml(root, "registry", "promote", version)
        path.write_text(yaml.safe_dump(config(0.01)))
        run_dir = root / ".ci-ml/runs/bench"
        for step in ("pull", "validate", "train"):
            ci_ml(root, step, "--run-dir", str(run_dir))
        seconds, peak = ci_ml(root, "evaluate", "--run-dir", str(run_dir))
        evaluation = json.loads((run_dir / "evaluation.json").read_text())
    print(f"holdout rows: {args.rows:,}  (first whole run: {first:.1f} s)")
    print(f"ci-ml evaluate (engine duckdb, streamed): {seconds:.1f} s, peak RSS {peak:.2f} GB")
    print("streamed:", json.dumps(evaluation["streamed"]))
    roc = evaluation["comparisons"]["roc_auc"]
    print(f"roc_auc: {roc['candidate']:.6f} vs {roc['production']:.6f}, method: {roc['method']}")
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
