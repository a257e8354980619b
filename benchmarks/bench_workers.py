"""How `ci-ml serve --workers 2` compares with one worker, in the same run.

Fits the 5,000-row pipeline of bench_serve.py, registers it twice in temporary registries — once
as the skops pipeline alone (the scikit-learn path) and once with its ONNX export beside it (the
ONNX Runtime path) — and for each starts `ci-ml serve --workers 1` and `--workers 2` in turn.
wrk (Debian package `wrk`; one thread, see bench_serve.py) measures requests per second and
p50/p99 latency of POST /predict with 1-row and 100-row bodies at 4 and 16 connections. The
ratios are 2 workers against 1, same path, size and connections. The load average before and
after is printed: the numbers mean little on a machine that is busy with something else.

    python benchmarks/bench_workers.py [--duration 5] [--workers 1 2] [--wrk-threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from bench_serve import (
    HGB,
    WRK_THREADS,
    fitted_model,
    request_rows,
    run_wrk,
    start_service,
    synthetic,
)

CONNECTIONS = (4, 16)
SIZES = (1, 100)


def make_registry(directory: Path, frame: Any, model: Any, onnx: bool) -> str:
    """A registry with ``model`` in production (and its ONNX export when ``onnx``)."""
    from ci_ml.models import save_model
    from ci_ml.registry.local import LocalRegistry
    from ci_ml.training import feature_schema

    directory.mkdir(parents=True)
    schema = feature_schema(frame, list(frame.columns))
    digest = save_model(model, directory / "model.skops")
    card = {"task": "classification", "positive_class": "bad", "digest": digest}
    (directory / "model.json").write_text(json.dumps({**card, "feature_schema": schema}))
    frame.to_parquet(directory / "reference.parquet", index=False)
    names = ["model.skops", "model.json", "reference.parquet"]
    if onnx:
        from ci_ml.export.convert import export_onnx

        export_onnx(model, schema, "classification", directory / "model.onnx")
        names.append("model.onnx")
    registry = LocalRegistry(directory / "registry")
    version = registry.register({n: directory / n for n in names}, {}, by="bench")
    registry.promote(version.version, None, by="bench")
    return str(registry.path)


def wait_for_workers(url: str, workers: int, timeout: float = 120) -> None:
    """Until every worker serves the model (one worker: /health answered already)."""
    deadline = time.monotonic() + timeout
    while workers > 1 and time.monotonic() < deadline:
        listed = requests.get(f"{url}/version", timeout=5).json().get("workers") or []
        if len(listed) == workers and all(w["model_digest"] for w in listed):
            return
        time.sleep(0.2)


def measure(registry: str, workers: int, bodies: dict[int, bytes], args: Any) -> dict[Any, Any]:
    """wrk numbers for every size and concurrency, from one service with ``workers``."""
    process, url = start_service(registry, ["--workers", str(workers)])
    try:
        wait_for_workers(url, workers)
        found = {}
        for connections in CONNECTIONS:
            for size, body in bodies.items():
                found[(size, connections)] = run_wrk(
                    f"{url}/predict", body, connections, args.duration, args.wrk_threads
                )
        return found
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--wrk-threads", type=int, default=WRK_THREADS, help="wrk's -t")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk (Debian package wrk)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    frame, y = synthetic()
    model = fitted_model(frame, y)
    print(f"model: 5,000-row HistGradientBoosting pipeline {HGB}; wrk -t {args.wrk_threads}, "
          f"{args.duration:g} s each; ratios: N workers vs {args.workers[0]}")  # fmt: skip
    print(f"{'path':<14}{'workers':>8}{'rows':>6}{'conns':>6}{'req/s':>10}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'errors':>8}{'req/s ratio':>13}{'p99 ratio':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for path, onnx in (("onnx", True), ("scikit-learn", False)):
            registry = make_registry(Path(tmp) / path, frame, model, onnx)
            rows = request_rows(registry, max(SIZES))
            bodies = {n: json.dumps({"records": rows[:n]}).encode() for n in SIZES}
            base: dict[Any, Any] = {}
            for workers in args.workers:
                got = measure(registry, workers, bodies, args)
                base = base or got
                for (size, conns), one in got.items():
                    ratio, p99 = one["rps"] / base[(size, conns)]["rps"], base[(size, conns)]["p99"]
                    print(f"{path:<14}{workers:>8}{size:>6}{conns:>6}{one['rps']:>10.1f}"
                          f"{one['p50']:>9.1f}{one['p99']:>9.1f}{one['errors']:>8.0f}"
                          f"{ratio:>13.3f}{one['p99'] / p99:>11.2f}")  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
