"""What shadow scoring costs the answers: p99 of POST /predict with and without a shadow.

Starts two `ci-ml serve` processes on loopback over the same registry, both logging requests
(--log-requests, the default sample 0.1): one serves production alone, the other also
shadow-scores 20% of the requests (--shadow VERSION --shadow-sample 0.2) with a second
version of the same pipeline (another seed). Then it drives each in turn, interleaved over
--rounds rounds so that both see the same noise of a shared machine, with --clients client
processes (each with 16/--clients keep-alive connections, no pause between requests: 16
connections in all), 1-row and 100-row bodies. Prints p50/p99 pooled over the rounds,
requests per second, failed requests, the p99 ratio (shadow / none), and the shadow's own
counts from /metrics (scored, dropped). No timed asserts: the numbers are for reading.

    python benchmarks/bench_shadow.py [--duration 8] [--rounds 3] [--clients 4] [--sample 0.2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

# the sibling benchmark's model, registry and service (its folder is on sys.path when run)
from bench_serve import (
    HGB,
    fitted_model,
    make_registry,
    request_rows,
    start_service,
    synthetic,
)

CONNECTIONS = 16


def client(url: str, body: bytes, connections: int, duration: float) -> tuple[list[float], int]:
    """One client process: ``connections`` threads without pause; latencies (s) and failures."""
    import threading

    parts = urlsplit(url)
    times: list[float] = []
    failed = [0]
    deadline = time.monotonic() + duration

    def work() -> None:
        conn = http.client.HTTPConnection(parts.netloc, timeout=60)
        headers = {"Content-Type": "application/json"}
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, headers)
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


def load(pool: ProcessPoolExecutor, url: str, body: bytes, clients: int, duration: float) -> Any:
    per_client = CONNECTIONS // clients
    jobs = [pool.submit(client, url, body, per_client, duration) for _ in range(clients)]
    found = [job.result() for job in jobs]
    return [t for times, _ in found for t in times], sum(f for _, f in found)


def shadow_counts(url: str) -> dict[str, float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    found = re.findall(r'^ci_ml_shadow_rows_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {k: float(v) for k, v in found}


def add_shadow(registry: str, frame: Any, y: Any, directory: Path) -> str:
    """A second version of the same pipeline (another seed), registered, not promoted."""
    from ci_ml.config import ModelConfig
    from ci_ml.models import save_model
    from ci_ml.registry.local import LocalRegistry
    from ci_ml.training import build_pipeline, feature_schema

    config = ModelConfig(
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        params={**HGB, "random_state": 1},
    )
    model = build_pipeline(config, feature_schema(frame, list(frame.columns))).fit(frame, y)
    directory.mkdir()
    digest = save_model(model, directory / "model.skops")
    card = json.loads((directory.parent / "model.json").read_text())
    (directory / "model.json").write_text(json.dumps({**card, "digest": digest}))
    names = ("model.skops", "model.json")
    version = LocalRegistry(Path(registry)).register(
        {n: directory / n for n in names}, {}, by="bench"
    )
    return version.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--sample", type=float, default=0.2, help="--shadow-sample")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        frame, y = synthetic()
        registry = make_registry(Path(tmp), frame, fitted_model(frame, y))
        shadow = add_shadow(registry, frame, y, Path(tmp) / "shadow")
        rows = request_rows(registry, 100)
        bodies = {
            "1 row": json.dumps({"records": rows[:1]}).encode(),
            "100 rows": json.dumps({"records": rows}).encode(),
        }
        logged = ["--log-requests"]
        services = {
            "none": start_service(registry, [*logged, f"{tmp}/logs-none"]),
            "shadow": start_service(
                registry,
                [
                    *logged,
                    f"{tmp}/logs-shadow",
                    "--shadow",
                    shadow,
                    "--shadow-sample",
                    str(args.sample),
                ],
            ),
        }
        try:
            measure(services, bodies, args)
        finally:
            for process, _url in services.values():
                process.terminate()
                process.wait(timeout=60)


def measure(services: dict[str, Any], bodies: dict[str, bytes], args: Any) -> None:
    print(
        f"two ci-ml serve processes, request log on; shadow at {args.sample:g} sampling; "
        f"{args.clients} client processes, {CONNECTIONS} connections, no pause; "
        f"{args.rounds} interleaved rounds of {args.duration:g} s"
    )
    print(f"{'body':<10}{'shadow':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
          f"{'p99 ratio':>11}")  # fmt: skip
    with ProcessPoolExecutor(args.clients) as pool:
        for name, body in bodies.items():
            got: dict[str, list[float]] = {"none": [], "shadow": []}
            failed = {"none": 0, "shadow": 0}
            load(pool, services["none"][1], body, args.clients, 1.0)  # warm both up
            load(pool, services["shadow"][1], body, args.clients, 1.0)
            for _ in range(args.rounds):
                for kind in ("none", "shadow"):
                    times, bad = load(pool, services[kind][1], body, args.clients, args.duration)
                    got[kind] += times
                    failed[kind] += bad
            p99 = {k: float(np.percentile(v, 99) * 1000) for k, v in got.items()}
            for kind in ("none", "shadow"):
                times = got[kind]
                rps = len(times) / (args.rounds * args.duration)
                p50 = float(np.percentile(times, 50) * 1000)
                ratio = p99[kind] / p99["none"]
                print(f"{name:<10}{kind:<8}{rps:>9.1f}{p50:>9.2f}{p99[kind]:>9.2f}"
                      f"{failed[kind]:>8}{ratio:>11.3f}")  # fmt: skip
    print(f"shadow rows (from its /metrics): {shadow_counts(services['shadow'][1])}")


if __name__ == "__main__":
    main()
