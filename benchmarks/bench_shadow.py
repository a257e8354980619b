"""What shadow scoring costs the answers: p99 of POST /predict with and without shadowing.

Starts one `ci-ml serve` process on loopback, logging requests (--log-requests, the default
sample 0.1), with a shadow (--shadow VERSION: a second version of the same pipeline, another
seed) whose sample it switches between rounds with POST /admin/shadow: 0 for the rounds
"none", --sample (0.2) for the rounds "shadow". One process measures both, so what differs
between two processes (where their threads and memory land) does not pass for the shadow's
cost; --control sets the sample to 0 in both kinds of round, which measures the noise of the
method itself (an A/A run). The rounds are interleaved, --rounds of each kind, in the order
ABBA (each kind goes first in every other pair) so that a drift of a shared machine's speed
weighs on both alike; each round starts once the shadow has worked off its backlog, which
would otherwise run during the next round, whatever its kind; before the rounds of each body,
--warmup seconds of load are not measured (in the first seconds the service answers slower,
which would weigh on the first round alone). The load is --clients clients
without pause and 16 connections in all, 1-row and 100-row bodies: wrk's threads (`wrk -t
CLIENTS -c 16`; Debian package `wrk`) when it is installed, else client processes with
16/--clients keep-alive connections each (Python's http.client: they take more of the
machine's CPU than the service, so their numbers are noisier).

Prints p50/p99 pooled over the rounds (wrk: from its latency at every 0.05 % in each round,
weighted by the round's requests), requests per second, failed requests, the p99 ratio
(shadow / none) with a 95% bootstrap interval (the pairs of rounds resampled), each pair's p99
ratio and their median (less moved by one noisy round), the CPU time per request of the
service process and of its child processes (the shadow's), and the shadow's own counts from
/metrics (scored, dropped), with the load average before and after. No timed asserts: the
numbers are for reading.

    python benchmarks/bench_shadow.py [--duration 4] [--rounds 24] [--warmup 8] [--clients 4]
                                      [--sample 0.2] [--client wrk|python] [--budget 0.05]
                                      [--control]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
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


def set_sample(url: str, token: str, sample: float) -> None:
    """The service's shadow sample, through POST /admin/shadow."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    body = json.dumps({"sample": sample})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", "/admin/shadow", body, headers)
    answer = conn.getresponse()
    text = answer.read().decode()
    conn.close()
    if answer.status != 200:
        raise SystemExit(f"POST /admin/shadow answered {answer.status}: {text}")


def shadow_counts(url: str) -> dict[str, float]:
    """The shadow's rows by result, and its pending requests, from /metrics."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    found = re.findall(r'^ci_ml_shadow_rows_total\{result="(\w+)"\} (\S+)$', text, re.M)
    pending = re.search(r"^ci_ml_shadow_pending_requests (\S+)$", text, re.M)
    return {**{k: float(v) for k, v in found}, "pending": float(pending.group(1) if pending else 0)}


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


def wait_idle(url: str, timeout: float = 300.0) -> None:
    """Until the shadow has worked off what it queued (none of the sampled requests is
    pending): its backlog must not run during the next round, whatever its kind."""
    deadline = time.monotonic() + timeout
    while shadow_counts(url)["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)


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
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=24, help="rounds of each kind")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before the rounds")
    parser.add_argument("--clients", type=int, default=4, help="wrk threads or processes")
    parser.add_argument("--sample", type=float, default=0.2, help="the shadow rounds' sample")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--budget", type=float, help="--shadow-budget (default: the service's)")
    parser.add_argument(
        "--control", action="store_true", help="sample 0 in both kinds of round (A/A)"
    )
    args = parser.parse_args()
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        frame, y = synthetic()
        registry = make_registry(Path(tmp), frame, fitted_model(frame, y))
        shadow = add_shadow(registry, frame, y, Path(tmp) / "shadow")
        rows = request_rows(registry, 100)
        bodies = {
            "1 row": json.dumps({"records": rows[:1]}).encode(),
            "100 rows": json.dumps({"records": rows}).encode(),
        }
        extra = ["--log-requests", f"{tmp}/logs", "--shadow", shadow, "--shadow-sample", "1"]
        if args.budget is not None:
            extra += ["--shadow-budget", str(args.budget)]
        service = start_service(registry, extra, admin_token=token)
        load = Load(args.client, args.clients, Path(tmp))
        try:
            measure(service, token, bodies, load, args)
        finally:
            load.close()
            service[0].terminate()
            service[0].wait(timeout=60)


def measure(
    service: tuple[Any, str], token: str, bodies: dict[str, bytes], load: Load, args: Any
) -> None:
    process, url = service
    samples = {"none": 0.0, "shadow": 0.0 if args.control else args.sample}
    print(f"load average before: {_load()}, {os.cpu_count()} CPUs")
    clients = f"wrk -t {args.clients}" if load.kind == "wrk" else f"{args.clients} processes"
    print(
        f"one ci-ml serve process, request log on; shadow sample {samples['shadow']:g} in the "
        f"rounds 'shadow', 0 in the rounds 'none'{' (control: A/A)' if args.control else ''}; "
        f"clients: {clients}, {CONNECTIONS} connections, no pause; "
        f"{args.rounds} interleaved rounds of each kind, {args.duration:g} s each"
    )
    print(f"{'body':<10}{'rounds':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
          f"{'p99 ratio':>11}")  # fmt: skip
    for name, body in bodies.items():
        got: dict[str, list[Any]] = {"none": [], "shadow": []}  # each round's latencies
        failed = {"none": 0, "shadow": 0}
        ratios = []  # each pair's p99 ratio
        set_sample(url, token, 0.0)
        load.run(url, body, args.warmup)  # the first seconds of a body are slower
        cpu = {"none": [0.0, 0.0], "shadow": [0.0, 0.0]}  # the service's, its children's
        for i in range(args.rounds):
            p99s = {}
            # ABBA: each kind goes first in every other pair, so a drift of the machine's
            # speed (other tenants, the hypervisor's steal) weighs on both alike
            for kind in ("none", "shadow") if i % 2 == 0 else ("shadow", "none"):
                wait_idle(url)
                set_sample(url, token, samples[kind])
                before = cpu_seconds(process.pid)
                values, weights, bad = load.run(url, body, args.duration)
                after = cpu_seconds(process.pid)
                set_sample(url, token, 0.0)
                wait_idle(url)  # the backlog is this round's work, counted in its CPU
                done = cpu_seconds(process.pid)
                cpu[kind][0] += after[0] - before[0]
                cpu[kind][1] += done[1] - before[1]
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
                  f"its shadow process {children:.2f}")  # fmt: skip
        low, high = ratio_interval(got, np.random.default_rng(0))
        print(f"{'':<18}pooled p99 ratio {p99['shadow'] / p99['none']:.3f}, 95% interval "
              f"{low:.3f} to {high:.3f} (pairs of rounds resampled {BOOTSTRAP} times)")  # fmt: skip
        shown = " ".join(f"{r:.2f}" for r in ratios)
        print(f"{'':<18}p99 ratio of each pair: {shown} (median {np.median(ratios):.3f})")
    counts = {k: v for k, v in shadow_counts(url).items() if k != "pending"}
    print(f"shadow rows (from /metrics): {counts}")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
