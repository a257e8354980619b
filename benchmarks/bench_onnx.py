"""Time the example pipeline's answers: scikit-learn vs its ONNX export in ONNX Runtime.

Run from the repo root (after ``dvc pull``):  python benchmarks/bench_onnx.py [--repeat 100]

Fits the example pipeline of ci-ml.yaml (HistGradientBoostingClassifier on data/credit_data.csv),
exports it with ci_ml.export.convert, and times, for 1 row and for 100 rows of the holdout:

* ``sklearn predict_proba`` on the DataFrame the service builds (one thread, like the service);
* ``LoadedModel.predict`` — the service's scikit-learn path, answers as dicts;
* ``ONNX Runtime session.run`` on ready tensors (one intra-op thread);
* ``OnnxPredictor.predict`` — the same, plus the input adapter and the answer dicts, from the
  DataFrame and from the checked values column by column (what ``ci-ml serve`` passes).

It prints the median and p99 per call and the ratios; it asserts nothing. The HTTP-level
comparison (``ci-ml serve`` on either path vs ``mlflow models serve``) is
bench_serving_vs_mlflow.py.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ci_ml.config import load_config
from ci_ml.data import load_dataset
from ci_ml.export.convert import export_onnx
from ci_ml.models.runtime import OnnxPredictor
from ci_ml.serve.input import FeatureSchema, to_columns, to_frame
from ci_ml.serve.model import LoadedModel, limit_threads
from ci_ml.training import build_pipeline, feature_schema, fit

ROOT = Path(__file__).resolve().parent.parent


def timings(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p99 of ``repeat`` calls, in milliseconds (after a few warm-up calls)."""
    for _ in range(5):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    limit_threads(1)
    config = load_config(ROOT / "ci-ml.yaml")
    dataset = load_dataset(ROOT, config.data)
    schema = feature_schema(dataset.train, dataset.features)
    model = fit(build_pipeline(config.model, schema), dataset, str(config.model.estimator))
    features = FeatureSchema.from_card(schema)
    classes = tuple(model.classes_.tolist())
    service = LoadedModel(
        version="bench",
        digest="-",
        loaded_at="-",
        model=model,
        schema=features,
        task="classification",
        threshold=config.model.threshold,
        classes=classes,
        positive_index=classes.index("bad"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, schema, "classification", Path(tmp) / "model.onnx")
        size = path.stat().st_size
        onnx = OnnxPredictor(path, schema, "classification", "bad", config.model.threshold)
        print(f"example pipeline: {config.model.estimator}, model.onnx {size / 1e6:.2f} MB")
        print(f"{'rows':>5} {'path':<34} {'median ms':>10} {'p99 ms':>9} {'vs sklearn':>11}")
        for rows in (1, 100):
            records = dataset.x("holdout").head(rows).astype(object).to_dict("records")
            records = [{k: (None if v != v else v) for k, v in r.items()} for r in records]
            frame = to_frame(records, features)
            feed = onnx.feed(frame)
            columns = to_columns(records, features)
            cases: list[tuple[str, Callable[[], object]]] = [
                ("sklearn predict_proba", lambda f=frame: model.predict_proba(f)),
                ("service sklearn LoadedModel.predict", lambda f=frame: service.predict(f)),
                ("onnxruntime session.run", lambda d=feed: onnx.session.run(None, d)),
                ("OnnxPredictor.predict", lambda f=frame: onnx.predict(f)),
                ("OnnxPredictor.predict (columns)", lambda c=columns: onnx.predict(c)),
            ]
            base = None
            for name, call in cases:
                median, p99 = timings(call, args.repeat)
                base = base or median
                print(f"{rows:>5} {name:<34} {median:>10.3f} {p99:>9.3f} {base / median:>10.1f}x")


if __name__ == "__main__":
    main()
