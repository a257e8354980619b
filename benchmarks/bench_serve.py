"""How fast `ci-ml serve` answers, against its own trivial endpoint in the same run.

Starts `ci-ml serve` in a subprocess on a loopback port and measures requests per second and
p50/p99 latency of POST /predict with 1-row and 100-row bodies at 4 and 16 connections, next to
GET /health/live (no model work: the HTTP stack alone) at the same concurrency. Uses `wrk`
(Debian package `wrk`) when it is installed, else a Python client with threads (slower, so its
numbers are a floor). wrk runs one thread by default (--wrk-threads): on a 2-CPU machine every
client thread takes CPU from the service it measures, and one wrk thread drives 16
connections. Before that it shows, in-process, why the service limits OpenMP/BLAS to one
thread per prediction: 1-row predict_proba latency from two threads at once, default threads
vs one.

The model: a 5,000-row pipeline like the example's (imputation, one-hot, gradient boosting with
the example's params) in a temporary registry, or the production model of --registry.

    python benchmarks/bench_serve.py [--duration 8] [--registry .ci-ml/registry] [--threads 2]
                                     [--client wrk|python] [--wrk-threads 1]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
CONNECTIONS = (4, 16)
WRK_THREADS = 1
HGB = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}


def synthetic(n: int = 5000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Credit-scoring-like rows: numeric and categorical columns with missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "Seniority": rng.integers(0, 40, n),
            "Home": rng.choice(["owner", "rent", "parents", "priv", "other", "ignore"], n),
            "Time": rng.choice([12, 24, 36, 48, 60], n),
            "Age": rng.integers(18, 70, n),
            "Marital": rng.choice(["married", "single", "separated", "widow", "divorced"], n),
            "Records": rng.choice(["no", "yes"], n, p=[0.8, 0.2]),
            "Job": rng.choice(["fixed", "freelance", "partime", "others"], n),
            "Expenses": rng.integers(35, 180, n),
            "Income": rng.normal(140, 60, n).round(),
            "Assets": rng.exponential(5000, n).round(),
            "Debt": rng.exponential(300, n).round(),
            "Amount": rng.integers(100, 5000, n),
            "Price": rng.integers(100, 9000, n),
        }
    )
    for column in ("Home", "Marital", "Records", "Job"):
        frame[column] = frame[column].astype(object)
    for column in ("Income", "Assets", "Debt"):
        frame.loc[rng.random(n) < 0.05, column] = np.nan
    risk = (frame["Records"] == "yes") * 1.5 - frame["Seniority"] / 10 + frame["Amount"] / 2000
    return frame, np.where(risk + rng.normal(size=n) > 0.5, "bad", "good")


def fitted_model(frame: pd.DataFrame, y: np.ndarray) -> Any:
    from ci_ml.config import ModelConfig
    from ci_ml.training import build_pipeline, feature_schema

    config = ModelConfig(estimator="sklearn.ensemble.HistGradientBoostingClassifier", params=HGB)
    return build_pipeline(config, feature_schema(frame, list(frame.columns))).fit(frame, y)


def make_registry(directory: Path, frame: pd.DataFrame, model: Any) -> str:
    """A registry with ``model`` in production; returns its path."""
    from ci_ml.models import save_model
    from ci_ml.registry.local import LocalRegistry
    from ci_ml.training import feature_schema

    digest = save_model(model, directory / "model.skops")
    card = {
        "task": "classification",
        "positive_class": "bad",
        "digest": digest,
        "feature_schema": feature_schema(frame, list(frame.columns)),
    }
    (directory / "model.json").write_text(json.dumps(card))
    frame.to_parquet(directory / "reference.parquet", index=False)
    registry = LocalRegistry(directory / "registry")
    names = ("model.skops", "model.json", "reference.parquet")
    version = registry.register({n: directory / n for n in names}, {}, by="bench")
    registry.promote(version.version, None, by="bench")
    return str(registry.path)


def stall_check(model: Any, rows: pd.DataFrame, calls: int = 60) -> None:
    """1-row predict_proba latency from 2 threads at once: default threads, then 1 thread."""
    from ci_ml.serve.model import limit_threads

    for label, limited in (
        ("default OpenMP/BLAS threads", False),
        ("1 thread (the service)", True),
    ):
        times: list[float] = []

        def work(limited: bool = limited, times: list[float] = times) -> None:
            if limited:
                limit_threads(1)
            for i in range(calls):
                start = time.perf_counter()
                model.predict_proba(rows.iloc[i % len(rows) : i % len(rows) + 1])
                times.append(time.perf_counter() - start)

        workers = [threading.Thread(target=work) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        p50, p99, worst = (np.percentile(times, q) * 1000 for q in (50, 99, 100))
        print(
            f"  predict_proba, 1 row, {label:<28} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"max {worst:7.1f} ms"
        )


def start_service(
    registry: str, extra: list[str], admin_token: str = ""
) -> tuple[subprocess.Popen[str], str]:
    """`ci-ml serve` on a free port, ready; returns the process and its URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI_ML_ADMIN_TOKEN": admin_token}
    command = [sys.executable, "-m", "ci_ml", "serve", "--registry", registry, "--port", "0"]
    command += extra
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            url = found.group(1)
            wait_ready(url)
            return process, url
    raise SystemExit("ci-ml serve exited before listening; run it by hand to see why")


def wait_ready(url: str, timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready")


# wrk's Lua end hook: its latency percentiles (microseconds) at every 0.05 %, one per line
QUANTILES_LUA = """
done = function(summary, latency, requests)
  local f = io.open(os.getenv("CI_ML_WRK_QUANTILES"), "w")
  for i = 1, 2000 do f:write(latency:percentile(i / 20), "\\n") end
  f:close()
end
"""


def run_wrk(
    url: str,
    body: bytes | None,
    connections: int,
    duration: float,
    threads: int = WRK_THREADS,
    quantiles: Path | None = None,
) -> dict[str, float]:
    """One wrk run; errors are non-2xx answers plus socket errors (connect, read, timeout).

    With ``quantiles``, wrk also writes there its latency at every 0.05 % (2,000 lines of
    microseconds, see :func:`read_quantiles`), so that runs can be pooled."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if body is not None:
            script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            script.write(f"wrk.body = {json.dumps(body.decode())}\n")
        if quantiles is not None:
            script.write(QUANTILES_LUA)
    threads = min(threads, connections)
    command = f"wrk -t {threads} -c {connections} -d {duration:g}s --latency -s {script.name}"
    env = {**os.environ, "CI_ML_WRK_QUANTILES": str(quantiles or "")}
    try:
        done = subprocess.run(
            [*command.split(), url], capture_output=True, text=True, check=True, env=env
        )
    finally:
        os.unlink(script.name)
    out = done.stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(map(int, re.findall(r"\d+", sockets.group(1)))) if sockets else 0
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out)[0])
    requests = float(_find(r"(\d+) requests in", out)[0])
    p50, p99 = _wrk_ms(out, "50%"), _wrk_ms(out, "99%")
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "requests": requests}


def read_quantiles(path: Path) -> np.ndarray:
    """The latencies (seconds) that :func:`run_wrk` wrote at every 0.05 %."""
    return np.loadtxt(path) / 1e6


def _wrk_ms(out: str, label: str) -> float:
    value, unit = _find(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out)
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _find(pattern: str, out: str) -> tuple[str, ...]:
    found = re.search(pattern, out, re.M)
    if found is None:
        raise SystemExit(f"cannot read wrk's output ({pattern!r} not found):\n{out}")
    return found.groups()


def run_python(url: str, body: bytes | None, connections: int, duration: float) -> dict[str, float]:
    """A closed-loop client: ``connections`` threads, each with one keep-alive connection."""
    times, errors = closed_loop(url, body, connections, duration)
    p50, p99 = (float(np.percentile(times, q) * 1000) for q in (50, 99))
    return {"rps": len(times) / duration, "p50": p50, "p99": p99, "errors": errors}


def closed_loop(
    url: str, body: bytes | None, connections: int, duration: float
) -> tuple[list[float], int]:
    """``connections`` threads sending ``body`` (POST; GET without one) to ``url`` without
    pause, each on one keep-alive connection: the latencies (s) and the failed requests (not
    200, or a broken connection, which is opened again)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    times: list[float] = []
    failed = [0]
    deadline = time.monotonic() + duration

    def work() -> None:
        conn = http.client.HTTPConnection(parts.netloc, timeout=60)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                conn.request("POST" if body is not None else "GET", parts.path, body, headers)
                response = conn.getresponse()
                response.read()
                failed[0] += response.status != 200
            except OSError:
                failed[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.netloc, timeout=60)
                continue
            times.append(time.perf_counter() - start)
        conn.close()

    workers = [threading.Thread(target=work) for _ in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return times, failed[0]


def request_rows(registry: str, count: int) -> list[dict[str, Any]]:
    """``count`` rows of the production version's reference.parquet, as JSON records."""
    from ci_ml.registry import open_registry

    reg = open_registry(registry)
    production = reg.get_production()
    if production is None:
        raise SystemExit(f"nothing is in production in {registry}")
    with tempfile.TemporaryDirectory() as tmp:
        files = reg.fetch(production.version, Path(tmp))
        if "reference.parquet" not in files:
            raise SystemExit(f"version {production.version} has no reference.parquet to send")
        names = [f["name"] for f in json.loads(files["model.json"].read_text())["feature_schema"]]
        frame = pd.read_parquet(files["reference.parquet"], columns=names).head(count)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def measure_all(
    url: str, bodies: dict[str, bytes | None], client: str, duration: float, wrk_threads: int
) -> None:
    """Print one row per request kind and concurrency, with ratios to /health/live."""
    measure = functools.partial(run_wrk, threads=wrk_threads) if client == "wrk" else run_python
    shown = f"wrk -t {wrk_threads}" if client == "wrk" else client
    print(f"\nci-ml serve at {url}, client {shown}, {duration:g} s each; ratios vs /health/live")
    print(f"{'request':<20}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'req/s ratio':>13}{'p99 ratio':>11}")  # fmt: skip
    for connections in CONNECTIONS:
        base: dict[str, float] = {}
        for name, body in bodies.items():
            got = measure(url + name.split()[0], body, connections, duration)
            base = base or got
            print(f"{name:<20}{connections:>6}{got['rps']:>10.1f}{got['p50']:>9.1f}"
                  f"{got['p99']:>9.1f}{got['errors']:>8.0f}{got['rps'] / base['rps']:>13.3f}"
                  f"{got['p99'] / base['p99']:>11.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--registry", help="serve this registry's production model instead")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--threads", type=int, help="--threads of ci-ml serve")
    parser.add_argument("--wrk-threads", type=int, default=WRK_THREADS, help="wrk's -t")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        registry = args.registry
        if registry is None:
            frame, y = synthetic()
            model = fitted_model(frame, y)
            print(f"model: 5,000-row HistGradientBoosting pipeline {HGB}")
            print("in-process, two threads predicting at once:")
            stall_check(model, frame.head(60))
            registry = make_registry(Path(tmp), frame, model)
        rows = request_rows(registry, 100)
        bodies = {
            "/health/live": None,
            "/predict 1 row": json.dumps({"records": rows[:1]}).encode(),
            "/predict 100 rows": json.dumps({"records": rows}).encode(),
        }
        extra = [] if args.threads is None else ["--threads", str(args.threads)]
        process, url = start_service(registry, extra)
        try:
            measure_all(url, bodies, client, args.duration, args.wrk_threads)
        finally:
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
