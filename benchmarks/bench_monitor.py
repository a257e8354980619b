"""Time ci-ml's drift report against Evidently's DataDriftPreset on the same data.

Run from the repo root:  python benchmarks/bench_monitor.py [--rows 1000000] [--features 20]

Both get the same synthetic reference and recent frames (by default 1,000,000 rows x 20
features each: 15 numeric of several shapes, some with missing values, and 5 categorical,
with drift planted in a few columns). ci-ml's side is what ``ci-ml monitor`` does for the
features: :func:`ci_ml.monitor.drift.compare_frames`, the JSON records and the Markdown tables.
Evidently's side is ``Report([DataDriftPreset()]).run(...)`` and its ``dict()``; Evidently
picks normed Wasserstein for numeric and Jensen-Shannon for categorical columns on samples
this large, with threshold 0.1, the same kind of measures as ci-ml.

Evidently is not a dependency of ci-ml. Install it in a separate environment (it needs
pandas < 3 at version 0.7.23), e.g.::

    python -m venv /tmp/bench && /tmp/bench/bin/pip install evidently "pandas<3" pyarrow
    PYTHONPATH=. /tmp/bench/bin/python benchmarks/bench_monitor.py

Without it the script times ci-ml alone. It prints times and the ratio; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np
import pandas as pd

from ci_ml.monitor.drift import DriftThresholds, compare_frames
from ci_ml.monitor.report import render

CATEGORIES = np.array([f"c{i:02d}" for i in range(30)], dtype=object)


def numeric_column(rng: np.random.Generator, index: int, rows: int, drift: bool) -> np.ndarray:
    """One of four shapes, shifted or stretched when ``drift``; every fourth has 2% missing."""
    shape = index % 4
    if shape == 0:
        values = rng.normal(0.3 if drift else 0.0, 1.0, rows)
    elif shape == 1:
        values = rng.lognormal(5.0, 0.6, rows) * (1.5 if drift else 1.0)
    elif shape == 2:
        values = rng.integers(18, 80, rows).astype(np.float64) + (5 if drift else 0)
    else:
        values = rng.exponential(2.0, rows)
        values[rng.random(rows) < 0.02] = np.nan
    return values


def categorical_column(rng: np.random.Generator, index: int, rows: int, drift: bool) -> Any:
    """5 to 30 categories, Zipf-like shares, the mix reversed when ``drift``."""
    k = 5 + 6 * index
    shares = 1 / np.arange(1, k + 1)
    shares = shares[::-1] if drift else shares
    return rng.choice(CATEGORIES[:k], rows, p=shares / shares.sum())


def frames(
    rows: int, features: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Reference and recent frames; drift in numeric x0, x1, x2 and categorical c0."""
    n_cat = max(1, features // 4)
    kinds = {f"x{i}": "numeric" for i in range(features - n_cat)}
    kinds.update({f"c{i}": "categorical" for i in range(n_cat)})
    out = []
    for part, rng in enumerate(np.random.default_rng(seed).spawn(2)):
        columns = {}
        for name, kind in kinds.items():
            index = int(name[1:])
            drift = part == 1 and (name in ("x0", "x1", "x2", "c0"))
            make = numeric_column if kind == "numeric" else categorical_column
            columns[name] = make(rng, index, rows, drift)
        out.append(pd.DataFrame(columns))
    return out[0], out[1], kinds


def ci_ml_report(reference: pd.DataFrame, recent: pd.DataFrame, kinds: dict[str, str]) -> Any:
    """What ci-ml monitor does for the features: measures, records, Markdown."""
    found = compare_frames(reference, recent, kinds, DriftThresholds())
    record = {
        "status": "drifting" if any(f.drifted for f in found) else "fine",
        "reasons": [],
        "reference": {"rows": len(reference)},
        "recent": {"rows": len(recent), "source": {"kind": "benchmark", "path": "memory"}},
        "features": [f.as_dict() for f in found],
    }
    render(record)
    return {f.feature for f in found if f.drifted and f.kind != "missing"}


def evidently_report(reference: pd.DataFrame, recent: pd.DataFrame, kinds: dict[str, str]) -> Any:
    """Evidently's DataDriftPreset report on the same frames."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[n for n, k in kinds.items() if k == "numeric"],
        categorical_columns=[n for n, k in kinds.items() if k == "categorical"],
    )
    result = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(recent, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    values = result.dict()["metrics"]
    return {
        m["config"]["column"]
        for m in values
        if m["config"].get("column") and m["value"] >= m["config"]["threshold"]
    }


def timed(function: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true")
    options = parser.parse_args()
    reference, recent, kinds = frames(options.rows, options.features, options.seed)
    print(
        f"{options.rows:,} recent rows x {options.features} features vs {options.rows:,} "
        f"reference rows; {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}"
    )
    import scipy.stats  # noqa: F401  (imports are not what is timed, on either side)

    ours, flagged = timed(ci_ml_report, reference, recent, kinds)
    print(f"ci-ml drift report        {ours:8.2f} s   drifted: {sorted(flagged)}")
    print(f"goal: under 10 s -> {'met' if ours < 10 else 'NOT met'}")
    if options.skip_evidently:
        return
    try:
        import evidently
        import evidently.presets
    except ImportError:
        print("Evidently is not installed; see this script's docstring to compare.")
        return
    theirs, flagged = timed(evidently_report, reference, recent, kinds)
    print(
        f"Evidently {evidently.__version__:<8} report  {theirs:8.2f} s   drifted: {sorted(flagged)}"
    )
    print(f"ratio: Evidently / ci-ml = {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
