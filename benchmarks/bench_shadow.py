"""What shadow scoring costs the answers: p99 of POST /predict with and without a shadow.

Starts two `ci-ml serve` processes on loopback over the same registry, both logging requests
(--log-requests, the default sample 0.1): one serves production alone, the other also
shadow-scores 20% of the requests (--shadow VERSION --shadow-sample 0.2) with a second
version of the same pipeline (another seed). Then it drives each in turn, interleaved over
--rounds rounds (in the order ABBA: each goes first in every other round) so that both see
the same noise of a shared machine, with --clients clients without pause and 16 connections
in all, 1-row and 100-row bodies. The clients are wrk's threads (`wrk -t CLIENTS -c 16`;
Debian package `wrk`) when it is installed, else client processes with 16/--clients
keep-alive connections each (Python's http.client: they take more of the machine's CPU than
the service, so their numbers are noisier). Each round starts once the shadow has worked off
its backlog, which would otherwise run during the next round, whichever service that
measures.

Prints p50/p99 pooled over the rounds (wrk: from its latency at every 0.05 % in each round,
weighted by the round's requests), requests per second, failed requests, the p99 ratio
(shadow / none) with a 95% bootstrap interval (the rounds resampled), each round's p99 ratio
and their median (less moved by one noisy round), the CPU time per request of the service
process and of its child processes (the shadow's, where it has one), and the shadow's own
counts from /metrics (scored, dropped), with the load average before and after. No timed
asserts: the numbers are for reading.

    python benchmarks/bench_shadow.py [--duration 6] [--rounds 12] [--clients 4] [--sample 0.2]
                                      [--client wrk|python] [--budget 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
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
    closed_loop,
    fitted_model,
    make_registry,
    read_quantiles,
    request_rows,
    run_wrk,
    start_service,
    synthetic,
)

CONNECTIONS = 16
BOOTSTRAP = 400


class Load:
    """Drives one service for a round: wrk's threads, or client processes, each running
    bench_serve's :func:`closed_loop`.

    A round gives its latencies as (values in seconds, weights): wrk's 2,000 quantiles each
    weighing a 2,000th of the round's requests, or every request's own time, weighing 1."""

    def __init__(self, kind: str, clients: int, directory: Path) -> None:
        self.kind = kind
        self.clients = clients
        self.quantiles = directory / "quantiles.txt"
        self.pool = ProcessPoolExecutor(clients) if kind == "python" else None

    def run(self, url: str, body: bytes, duration: float) -> tuple[Any, Any, int]:
        """Latency values (s), their weights, and the failed requests."""
        if self.pool is None:
            got = run_wrk(
                f"{url}/predict", body, CONNECTIONS, duration, self.clients, self.quantiles
            )
            values = read_quantiles(self.quantiles)
            return values, np.full(len(values), got["requests"] / len(values)), got["errors"]
        per_client = CONNECTIONS // self.clients
        jobs = [
            self.pool.submit(closed_loop, f"{url}/predict", body, per_client, duration)
            for _ in range(self.clients)
        ]
        found = [job.result() for job in jobs]
        times = np.array([t for times, _ in found for t in times])
        return times, np.ones(len(times)), sum(f for _, f in found)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def ratio_interval(got: dict[str, list[Any]], rng: Any) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the pooled p99 ratio (shadow / none): the
    rounds are drawn again with replacement, each with both services' latencies."""
    n = len(got["none"])
    found = []
    for _ in range(BOOTSTRAP):
        picked = rng.integers(0, n, n)
        none = pooled([got["none"][i] for i in picked], 0.99)
        found.append(pooled([got["shadow"][i] for i in picked], 0.99) / none)
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)


def pooled(rounds: list[tuple[Any, Any]], q: float) -> float:
    """The ``q`` quantile (0..1) of the rounds' latencies pooled by weight."""
    values = np.concatenate([v for v, _ in rounds])
    weights = np.concatenate([w for _, w in rounds])
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(at, len(values) - 1)])


def shadow_counts(url: str) -> dict[str, float]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    found = re.findall(r'^ci_ml_shadow_rows_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {k: float(v) for k, v in found}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process ``pid`` and of its live child processes (Linux);
    zeros elsewhere."""
    try:
        own = _cpu(pid)
        children = [
            int(c)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0, 0.0
    found = 0.0
    for child in children:
        with contextlib.suppress(OSError):
            found += _cpu(child)
    return own, found


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(url: str, quiet: float = 0.5, timeout: float = 120.0) -> None:
    """Until the shadow has worked off what it queued (its counts stood still for ``quiet``
    seconds): its backlog must not run during the next round, whichever service it measures."""
    deadline = time.monotonic() + timeout
    before = shadow_counts(url)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = shadow_counts(url)
        if now == before:
            return
        before = now


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
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--clients", type=int, default=4, help="wrk threads or processes")
    parser.add_argument("--sample", type=float, default=0.2, help="--shadow-sample")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--budget", type=float, help="--shadow-budget (default: the service's)")
    args = parser.parse_args()
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
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
                    *([] if args.budget is None else ["--shadow-budget", str(args.budget)]),
                ],
            ),
        }
        load = Load(args.client, args.clients, Path(tmp))
        try:
            measure(services, bodies, load, args)
        finally:
            load.close()
            for process, _url in services.values():
                process.terminate()
                process.wait(timeout=60)


def measure(services: dict[str, Any], bodies: dict[str, bytes], load: Load, args: Any) -> None:
    print(f"load average before: {_load()}, {os.cpu_count()} CPUs")
    clients = f"wrk -t {args.clients}" if load.kind == "wrk" else f"{args.clients} processes"
    print(
        f"two ci-ml serve processes, request log on; shadow at {args.sample:g} sampling; "
        f"clients: {clients}, {CONNECTIONS} connections, no pause; "
        f"{args.rounds} interleaved rounds of {args.duration:g} s"
    )
    print(f"{'body':<10}{'shadow':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
          f"{'p99 ratio':>11}")  # fmt: skip
    for name, body in bodies.items():
        got: dict[str, list[Any]] = {"none": [], "shadow": []}  # each round's latencies
        failed = {"none": 0, "shadow": 0}
        ratios = []  # each round's p99 ratio
        load.run(services["none"][1], body, 1.0)  # warm both up
        load.run(services["shadow"][1], body, 1.0)
        cpu = {"none": [0.0, 0.0], "shadow": [0.0, 0.0]}  # the service's, its children's
        for i in range(args.rounds):
            p99s = {}
            # ABBA: each service goes first in every other round, so a drift of the machine's
            # speed (other tenants, the hypervisor's steal) weighs on both alike
            for kind in ("none", "shadow") if i % 2 == 0 else ("shadow", "none"):
                wait_idle(services["shadow"][1])
                pid = services[kind][0].pid
                before = cpu_seconds(pid)
                values, weights, bad = load.run(services[kind][1], body, args.duration)
                after = cpu_seconds(pid)
                cpu[kind] = [cpu[kind][i] + after[i] - before[i] for i in (0, 1)]
                got[kind].append((values, weights))
                failed[kind] += bad
                p99s[kind] = pooled([(values, weights)], 0.99)
            ratios.append(p99s["shadow"] / p99s["none"])
        p99 = {k: pooled(v, 0.99) * 1000 for k, v in got.items()}
        requests = {k: sum(float(w.sum()) for _, w in v) for k, v in got.items()}
        for kind in ("none", "shadow"):
            rps = requests[kind] / (args.rounds * args.duration)
            p50 = pooled(got[kind], 0.5) * 1000
            ratio = p99[kind] / p99["none"]
            print(f"{name:<10}{kind:<8}{rps:>9.1f}{p50:>9.2f}{p99[kind]:>9.2f}"
                  f"{failed[kind]:>8}{ratio:>11.3f}")  # fmt: skip
        for kind in ("none", "shadow"):
            own, children = (1000 * c / requests[kind] for c in cpu[kind])
            print(f"{'':<10}{kind:<8}CPU ms per request: service {own:.2f}, "
                  f"its child processes {children:.2f}")  # fmt: skip
        low, high = ratio_interval(got, np.random.default_rng(0))
        print(f"{'':<18}pooled p99 ratio {p99['shadow'] / p99['none']:.3f}, 95% interval "
              f"{low:.3f} to {high:.3f} (rounds resampled {BOOTSTRAP} times)")  # fmt: skip
        shown = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{'':<18}p99 ratio of each round: {shown} (median {np.median(ratios):.3f})")
    print(f"shadow rows (from its /metrics): {shadow_counts(services['shadow'][1])}")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
