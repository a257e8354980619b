"""`ci-ml serve` (scikit-learn path and ONNX path) against `mlflow models serve`, one run.

Fits a 5,000-row pipeline like the example's (imputation, one-hot, HistGradientBoosting with
the example's params; see bench_serve.py), registers it in two temporary LocalRegistries — one
with only model.skops, one with model.skops and its ONNX export (model.onnx, which `ci-ml serve`
prefers) — and saves the same fitted pipeline with ``mlflow.sklearn.save_model`` (with
``pyfunc_predict_fn="predict_proba"``, so both sides compute probabilities). Starts the three
services on loopback (free ports) and measures requests/s and p50/p99 latency for 1-row and
100-row requests at 4 and 16 connections with `wrk` (one thread, the same for all three; see
bench_serve.py; else a Python thread client), then prints
one table with ratios vs MLflow and whether the goals of issues 6 and 8 hold, next to GET
/health/live of ci-ml serve (the HTTP stack's ceiling on this machine). Asserts nothing.
With ``--workers 1 2`` each ci-ml path is also served with ``--workers 2`` (one service per
path and worker count, all measured in the same run, the goals judged on the first count);
the load average before and after is printed.

MLflow lives in its own virtualenv, so ci-ml's stays untouched:

    python3 -m venv /tmp/venv-mlflow
    /tmp/venv-mlflow/bin/pip install mlflow pandas \\
        scikit-learn==$(python -c 'import sklearn; print(sklearn.__version__)')
    python benchmarks/bench_serving_vs_mlflow.py --mlflow-python /tmp/venv-mlflow/bin/python \\
        [--duration 5] [--client wrk|python] [--wrk-threads 1] [--workers 1 2]

The fitted pipeline goes to MLflow's interpreter as a pickle (same scikit-learn version; the
pipeline holds scikit-learn classes only).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import (
    HGB,
    WRK_THREADS,
    fitted_model,
    request_rows,
    run_python,
    run_wrk,
    start_service,
    synthetic,
)
from bench_workers import make_registry, wait_for_workers

CONNECTIONS = (4, 16)
SIZES = (1, 100)

MLFLOW_SAVE = r"""
import pickle, sys
import pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature

model_pickle, sample_csv, out = sys.argv[1:4]
with open(model_pickle, "rb") as f:
    model = pickle.load(f)
frame = pd.read_csv(sample_csv)
signature = infer_signature(frame, model.predict_proba(frame))
mlflow.sklearn.save_model(
    model, out, signature=signature, pyfunc_predict_fn="predict_proba",
    serialization_format="cloudpickle",
)
print(mlflow.__version__)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def save_for_mlflow(
    mlflow_python: str, directory: Path, frame: Any, model: Any
) -> tuple[Path, str]:
    """Save the fitted pipeline as an MLflow model with MLflow's interpreter; (dir, version)."""
    directory.mkdir(parents=True)
    with open(directory / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    frame.head(200).to_csv(directory / "sample.csv", index=False)
    out = directory / "mlflow-model"
    done = subprocess.run(
        [mlflow_python, "-c", MLFLOW_SAVE, str(directory / "model.pkl"),
         str(directory / "sample.csv"), str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"saving the MLflow model failed:\n{done.stderr[-3000:]}")
    return out, done.stdout.strip().splitlines()[-1]


def start_mlflow(
    mlflow_python: str, model_dir: Path, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`mlflow models serve` on a free loopback port, ready; (process, url)."""
    import requests

    port = free_port()
    mlflow = str(Path(mlflow_python).parent / "mlflow")
    command = [mlflow, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
               "-p", str(port), "-h", "127.0.0.1"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(mlflow_python).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=5).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"mlflow models serve did not become ready:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[Any], group: bool = False) -> None:
    if process.poll() is not None:
        return
    try:
        if group:
            os.killpg(process.pid, signal.SIGTERM)  # mlflow runs uvicorn/gunicorn children
        else:
            process.terminate()
        process.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(timeout=10)


def check(url: str, body: bytes) -> str:
    """One request before measuring: the status and the start of the answer."""
    import requests

    got = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    return f"{got.status_code} {got.text[:110]}"


def client_options(parser: argparse.ArgumentParser) -> None:
    """The load-generator options every serving benchmark takes."""
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--wrk-threads", type=int, default=WRK_THREADS, help="wrk's -t")


def chosen_client(args: argparse.Namespace) -> tuple[Any, str]:
    """The measuring function of ``--client`` (wrk when installed, for ``auto``) and its name."""
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk":
        return functools.partial(run_wrk, threads=args.wrk_threads), f"wrk -t {args.wrk_threads}"
    return run_python, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-python", required=True, help="python of a venv with mlflow")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="ci-ml serve --workers, each measured"
    )
    client_options(parser)
    args = parser.parse_args()
    measure, shown = chosen_client(args)
    before = _load()

    with tempfile.TemporaryDirectory(prefix="bench-vs-mlflow-") as tmp_name:
        tmp = Path(tmp_name)
        frame, y = synthetic()
        model = fitted_model(frame, y)
        print(f"model: 5,000-row imputation + one-hot + HistGradientBoostingClassifier {HGB}")
        sk_registry = make_registry(tmp / "sk", frame, model, onnx=False)
        onnx_registry = make_registry(tmp / "onnx", frame, model, onnx=True)
        mlflow_dir, mlflow_version = save_for_mlflow(args.mlflow_python, tmp / "mlf", frame, model)
        rows = request_rows(sk_registry, 100)
        bodies = {
            "ci-ml": {n: json.dumps({"records": rows[:n]}).encode() for n in SIZES},
            "mlflow": {n: json.dumps({"dataframe_records": rows[:n]}).encode() for n in SIZES},
        }

        processes: list[tuple[subprocess.Popen[Any], bool]] = []
        try:
            ml_proc, ml_url = start_mlflow(args.mlflow_python, mlflow_dir, tmp / "mlflow.log")
            processes.append((ml_proc, True))
            services = {"mlflow": (f"{ml_url}/invocations", bodies["mlflow"])}
            ours = {}  # name -> base URL
            for workers in args.workers:
                for path, registry in (("sklearn", sk_registry), ("onnx", onnx_registry)):
                    name = _name(path, workers, args.workers)
                    process, ours[name] = start_service(registry, ["--workers", str(workers)])
                    processes.append((process, False))
                    wait_for_workers(ours[name], workers)
                    services[name] = (f"{ours[name]}/predict", bodies["ci-ml"])
            for name, (url, body) in services.items():
                print(f"check {name:<17} 1 row -> {check(url, body[1])}")
            import requests

            for name, url in ours.items():
                runtime = requests.get(url + "/version", timeout=30).json().get("runtime", "?")
                print(f"{name} serves runtime: {runtime} (/version)")
            onnx_url = ours[_name("onnx", args.workers[0], args.workers)]

            results: dict[tuple[str, int, int], dict[str, float]] = {}
            for rows_n in SIZES:
                for conns in CONNECTIONS:
                    for name, (url, body) in services.items():
                        results[(name, rows_n, conns)] = measure(
                            url, body[rows_n], conns, args.duration
                        )
            ceiling = {c: measure(f"{onnx_url}/health/live", None, c, args.duration)
                       for c in CONNECTIONS}  # fmt: skip
        finally:
            for process, group in processes:
                stop(process, group)

    print(f"\nload average before: {before}, after: {_load()}")
    print(f"loopback, client {shown}, {args.duration:g} s per cell, MLflow {mlflow_version} "
          f"(`mlflow models serve --env-manager local`, defaults), ci-ml serve defaults; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    header = (f"{'service':<18}{'rows':>5}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'errors':>8}{'req/s vs mlflow':>17}{'p99 vs mlflow':>15}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for rows_n in SIZES:
        for conns in CONNECTIONS:
            base = results[("mlflow", rows_n, conns)]
            for name in services:
                got = results[(name, rows_n, conns)]
                print(f"{name:<18}{rows_n:>5}{conns:>6}{got['rps']:>10.1f}{got['p50']:>9.1f}"
                      f"{got['p99']:>9.1f}{got['errors']:>8.0f}{got['rps'] / base['rps']:>16.1f}x"
                      f"{got['p99'] / base['p99']:>14.2f}x")  # fmt: skip
            print()

    for conns, got in ceiling.items():
        label = "(ci-ml GET /health/live: no model work, the HTTP stack alone)"
        print(f"{label:<63}{conns:>3} conns {got['rps']:>8.1f} req/s  "
              f"p50 {got['p50']:.1f} ms  p99 {got['p99']:.1f} ms")  # fmt: skip
    print()
    print("goals (reported, not asserted):")
    sk_name, onnx_name = (_name(p, args.workers[0], args.workers) for p in ("sklearn", "onnx"))
    for rows_n in SIZES:
        for conns in CONNECTIONS:
            sk, ml = results[(sk_name, rows_n, conns)], results[("mlflow", rows_n, conns)]
            ok = sk["rps"] >= 1.5 * ml["rps"] and sk["p99"] < ml["p99"] and sk["errors"] == 0
            print(f"  issue 6, sklearn path, {rows_n:>3} rows, {conns:>2} conns: "
                  f"{sk['rps'] / ml['rps']:.1f}x throughput (>= 1.5x), p99 {sk['p99']:.1f} vs "
                  f"{ml['p99']:.1f} ms (lower): {'holds' if ok else 'MISSED'}")  # fmt: skip
    for conns in CONNECTIONS:
        ox, ml = results[(onnx_name, 1, conns)], results[("mlflow", 1, conns)]
        ok = ox["rps"] >= 20 * ml["rps"] and ox["p99"] < 10 and ox["errors"] == 0
        print(f"  issue 8, onnx path, 1 row, {conns:>2} conns: {ox['rps'] / ml['rps']:.1f}x "
              f"throughput (>= 20x), p99 {ox['p99']:.1f} ms (< 10): "
              f"{'holds' if ok else 'MISSED'}")  # fmt: skip


def _name(path: str, workers: int, every: list[int]) -> str:
    """The service's name: "ci-ml onnx", or "ci-ml onnx 2w" when several --workers are."""
    return f"ci-ml {path}" if every == [1] else f"ci-ml {path} {workers}w"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
