"""`ci-ml serve` on the ONNX export of each booster against HistGradientBoosting's, one run.

Trains, on the 5,000 synthetic credit rows of bench_serve.py, the example's
HistGradientBoostingClassifier (200 iterations, 15 leaves, learning rate 0.05) and an XGBoost,
a LightGBM and a CatBoost classifier of the same budget (200 trees of at most 16 leaves, learning
rate 0.05), each with the built-in trainer (``train_builtin``: a model.skops, or a model.bundle
for the boosters), exports each to ONNX, and registers each with its export in its own temporary
LocalRegistry, so `ci-ml serve` answers with ONNX Runtime. Starts the four services on loopback
and measures 1-row POST /predict at 4 and 16 connections (`wrk` when installed, else a Python
thread client; see bench_serve.py), interleaving the services cell by cell. Prints requests/s
and p50/p99 per service with the ratios to HistGradientBoosting's ONNX in the same run, and,
in-process, the 1-row ``OnnxPredictor.predict`` time (the model's share of a request). The bar
(reported, not asserted): each booster's 1-row p99 within 2x of HistGradientBoosting's.

    python benchmarks/bench_boosters.py [--duration 5] [--client wrk|python] [--wrk-threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_onnx import timings
from bench_serve import (
    HGB,
    start_service,
    synthetic,
)
from bench_serving_vs_mlflow import check, chosen_client, client_options, stop

CONNECTIONS = (4, 16)
BASELINE = "HistGradientBoosting"
# the same budget as the example's HistGradientBoosting: 200 trees, <= 16 leaves, rate 0.05
ESTIMATORS = {
    BASELINE: ("sklearn.ensemble.HistGradientBoostingClassifier", HGB),
    "XGBoost": (
        "xgboost.XGBClassifier",
        {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05},
    ),
    "LightGBM": (
        "lightgbm.LGBMClassifier",
        {"n_estimators": 200, "num_leaves": 15, "learning_rate": 0.05},
    ),
    "CatBoost": (
        "catboost.CatBoostClassifier",
        {"iterations": 200, "depth": 4, "learning_rate": 0.05},
    ),
}


def dataset(directory: Path) -> Any:
    """The synthetic credit rows as a Dataset (80/20 split), through a CSV like a project's."""
    from ci_ml.config import DataConfig
    from ci_ml.data import load_dataset

    frame, y = synthetic()
    frame["Status"] = y
    frame.to_csv(directory / "credit.csv", index=False)
    config = DataConfig(path="credit.csv", target="Status", positive_class="bad")
    return load_dataset(directory, config)


def make_registry(directory: Path, data: Any, estimator: str, params: dict[str, Any]) -> str:
    """Train with the built-in trainer, export, register model file + model.onnx; promote."""
    from ci_ml.config import ModelConfig
    from ci_ml.export.convert import export_onnx
    from ci_ml.registry.local import LocalRegistry
    from ci_ml.training import feature_schema, model_file_name, train_builtin

    directory.mkdir(parents=True)
    config = ModelConfig(estimator=estimator, params=params)
    model_file = model_file_name(config)
    model, digest = train_builtin(config, data, directory / model_file)
    schema = feature_schema(data.train, data.features)
    export_onnx(model, schema, "classification", directory / "model.onnx")
    card = {
        "task": "classification",
        "positive_class": "bad",
        "digest": digest,
        "feature_schema": schema,
    }
    (directory / "model.json").write_text(json.dumps(card))
    data.train[data.features].head(200).to_parquet(directory / "reference.parquet", index=False)
    names = [model_file, "model.json", "reference.parquet", "model.onnx"]
    registry = LocalRegistry(directory / "registry")
    files = {n: directory / n for n in names}
    version = registry.register(files, {}, by="bench", model_file=model_file)
    registry.promote(version.version, None, by="bench")
    return str(registry.path)


def in_process(
    directory: Path, data: Any, record: dict[str, Any], repeat: int
) -> tuple[float, float]:
    """Median and p99 ms of 1-row ``OnnxPredictor.predict`` on the checked columns."""
    from ci_ml.models.runtime import OnnxPredictor
    from ci_ml.serve.input import FeatureSchema, to_columns
    from ci_ml.training import feature_schema

    schema = feature_schema(data.train, data.features)
    predictor = OnnxPredictor(directory / "model.onnx", schema, "classification", "bad")
    columns = to_columns([record], FeatureSchema.from_card(schema))
    return timings(lambda: predictor.predict(columns), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    client_options(parser)
    parser.add_argument("--repeat", type=int, default=2000, help="in-process calls per model")
    args = parser.parse_args()
    measure, shown = chosen_client(args)

    with tempfile.TemporaryDirectory(prefix="bench-boosters-") as tmp_name:
        tmp = Path(tmp_name)
        data = dataset(tmp)
        head = data.holdout[data.features].head(1).astype(object)
        record = {k: (None if v != v else v) for k, v in head.to_dict("records")[0].items()}
        body = json.dumps({"records": [record]}).encode()
        registries, sizes, local = {}, {}, {}
        for name, (estimator, params) in ESTIMATORS.items():
            registries[name] = make_registry(tmp / name, data, estimator, params)
            sizes[name] = (tmp / name / "model.onnx").stat().st_size
            local[name] = in_process(tmp / name, data, record, args.repeat)
            print(f"{name:<21} {estimator} {params}: model.onnx {sizes[name] / 1e3:.0f} kB")

        processes: list[Any] = []
        try:
            urls = {}
            for name, registry in registries.items():
                process, url = start_service(registry, [])
                processes.append(process)
                urls[name] = url
            import requests

            for name, url in urls.items():
                runtime = requests.get(url + "/version", timeout=30).json().get("runtime", "?")
                print(f"check {name:<21} runtime {runtime}: {check(url + '/predict', body)}")
            results: dict[tuple[str, int], dict[str, float]] = {}
            for conns in CONNECTIONS:
                for name, url in urls.items():
                    results[(name, conns)] = measure(f"{url}/predict", body, conns, args.duration)
        finally:
            for process in processes:
                stop(process)

    print(f"\nin-process, 1 row, OnnxPredictor.predict (columns), {args.repeat} calls; "
          f"ratio vs {BASELINE}")  # fmt: skip
    for name, (median, p99) in local.items():
        base = local[BASELINE]
        print(f"  {name:<21} median {median:7.3f} ms  p99 {p99:7.3f} ms  "
              f"{median / base[0]:5.2f}x  {p99 / base[1]:5.2f}x")  # fmt: skip
    print(f"\nci-ml serve, ONNX Runtime, 1-row POST /predict, loopback, client {shown}, "
          f"{args.duration:g} s per cell, {os.cpu_count()} CPUs")  # fmt: skip
    header = (f"{'model':<22}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
              f"{'p99 vs HGB':>12}{'req/s vs HGB':>14}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for conns in CONNECTIONS:
        base = results[(BASELINE, conns)]
        for name in ESTIMATORS:
            got = results[(name, conns)]
            print(f"{name:<22}{conns:>6}{got['rps']:>10.1f}{got['p50']:>9.2f}{got['p99']:>9.2f}"
                  f"{got['errors']:>8.0f}{got['p99'] / base['p99']:>11.2f}x"
                  f"{got['rps'] / base['rps']:>13.2f}x")  # fmt: skip
        print()
    print("bar (reported, not asserted): each booster's 1-row p99 within 2x of HGB's")
    for conns in CONNECTIONS:
        base = results[(BASELINE, conns)]
        for name in list(ESTIMATORS)[1:]:
            got = results[(name, conns)]
            ok = got["p99"] <= 2 * base["p99"] and got["errors"] == 0
            print(f"  {name:<9} {conns:>2} conns: p99 {got['p99']:.2f} vs {base['p99']:.2f} ms "
                  f"({got['p99'] / base['p99']:.2f}x): {'holds' if ok else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
