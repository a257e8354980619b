"""The data gates (``ci-ml validate``) out of core: engine duckdb on data larger than memory,
and the pandas engine beside it on data it can still load.

    python benchmarks/bench_data_gates.py                       # 100M rows on duckdb
    python benchmarks/bench_data_gates.py --rows 10000000 --pandas-rows 1000000

Writes a 12-column Parquet data set (a label, five floats with real NaN and nulls, two
integer columns, four categorical columns), 80% as the train file and 20% as the holdout
file (with 100 train rows copied into it, so the overlap check finds something), into
``--dir`` (a temporary directory by default, deleted afterwards). Then runs the built-in
checks and a 10-expectation GX suite in a child process per engine and prints its wall time
and peak RSS (the child's own, from ``os.wait4``): engine duckdb at ``--rows``, and both
engines at ``--pandas-rows`` (0: skip), with the ratios, and whether the engines' checks
agree. Bar: 100M rows in under 60 s and 2 GB of RSS on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 2_000_000
LEAKED = 100
CATEGORIES = [
    [f"{name}{i}" for i in range(n)] for name, n in (("a", 5), ("b", 20), ("c", 3), ("d", 50))
]


def expect(kind: str, column: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return {
        "type": f"expect_{kind}",
        "kwargs": {**({"column": column} if column else {}), **kwargs},
    }


SUITE = [
    expect("table_row_count_to_be_between", min_value=1),
    expect("column_values_to_not_be_null", "label"),
    expect("column_values_to_be_in_set", "label", value_set=["no", "yes"]),
    expect("column_values_to_not_be_null", "f0", mostly=0.95),
    expect("column_values_to_be_between", "f1", min_value=-10, max_value=10),
    expect("column_mean_to_be_between", "f2", min_value=-1, max_value=1),
    expect("column_values_to_be_between", "i0", min_value=0, max_value=1000),
    expect("column_values_to_be_in_set", "c0", value_set=CATEGORIES[0]),
    expect("column_distinct_values_to_be_in_set", "c2", value_set=CATEGORIES[2]),
    expect("column_values_to_not_be_null", "c3"),
]


def batch(rows: int, seed: int) -> Any:
    """``rows`` rows of the 12 columns as a pyarrow table (NaN kept apart from null)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"label": pa.array(np.where(rng.random(rows) < 0.3, "yes", "no"))}
    for i in range(5):
        values = rng.normal(size=rows)
        values[rng.random(rows) < 0.01] = np.nan  # real NaN: from_pandas=False keeps it
        columns[f"f{i}"] = pa.array(values, from_pandas=False, mask=rng.random(rows) < 0.005)
    for i in range(2):
        columns[f"i{i}"] = pa.array(rng.integers(0, 1000, rows))
    for i, labels in enumerate(CATEGORIES):
        codes = pa.array(rng.integers(0, len(labels), rows).astype(np.int32))
        columns[f"c{i}"] = pa.DictionaryArray.from_arrays(codes, pa.array(labels))
    return pa.table(columns)


def generate(where: Path, rows: int) -> None:
    """train.parquet (80%) and holdout.parquet (20%, plus LEAKED rows of train)."""
    import pyarrow.parquet as pq

    first = batch(min(BATCH, rows), 0)
    writers = {
        side: pq.ParquetWriter(where / f"{side}.parquet", first.schema)
        for side in ("train", "holdout")
    }
    done, seed = 0, 0
    while done < rows:
        table = first if seed == 0 else batch(min(BATCH, rows - done), seed)
        cut = int(len(table) * 0.8)
        writers["train"].write_table(table.slice(0, cut))
        writers["holdout"].write_table(table.slice(cut))
        if seed == 0:
            writers["holdout"].write_table(table.slice(0, LEAKED))
        done, seed = done + len(table), seed + 1
    for writer in writers.values():
        writer.close()


def child(engine: str, where: Path) -> None:
    """Run the data gates of the files in ``where`` on ``engine``; print their outcomes."""
    from ci_ml import engines, quality
    from ci_ml.config import DataConfig, ExpectationsConfig, HoldoutConfig
    from ci_ml.data import load_dataset

    data = DataConfig(
        path="train.parquet", target="label", holdout=HoldoutConfig(file="holdout.parquet"),
        engine=engine, max_overlap_percent=1,
    )  # fmt: skip
    suite = ExpectationsConfig(suite="suite.json")
    if engine == "pandas":
        import pandas as pd

        dataset = load_dataset(where, data)
        checks = quality.builtin_checks(dataset, data)
        frame = pd.concat([dataset.train, dataset.holdout], ignore_index=True)
        checks += quality.run_suite(frame, where / suite.suite, suite.suite)
    else:
        checks = engines.data_gates(where, data, suite).checks
    outcomes = [[c.name, c.column, c.success, c.unexpected_count] for c in checks]
    print(json.dumps(outcomes))


def measure(engine: str, where: Path) -> tuple[float, float, list[Any]]:
    """Wall seconds, peak RSS in GB and the outcomes of one child run."""
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    start = time.perf_counter()
    command = [sys.executable, __file__, "--child", engine, "--dir", str(where)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the {engine} run failed (exit {process.returncode})")
    return seconds, usage.ru_maxrss / 1024**2, json.loads(out.decode().splitlines()[-1])


def data_set(parent: Path, rows: int) -> Path:
    where = parent / f"rows-{rows}"
    where.mkdir(exist_ok=True)
    start = time.perf_counter()
    generate(where, rows)
    (where / "suite.json").write_text(json.dumps({"name": "bench", "expectations": SUITE}))
    size = sum(f.stat().st_size for f in where.glob("*.parquet")) / 1024**3
    print(
        f"{rows:>12,} rows written in {time.perf_counter() - start:6.1f} s ({size:.2f} GB Parquet)"
    )
    return where


def line(engine: str, rows: int, seconds: float, rss: float) -> None:
    print(f"  {engine:<7} {rows:>12,} rows  {seconds:7.1f} s  peak RSS {rss:5.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--pandas-rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--child", choices=["pandas", "duckdb"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.dir)
    with tempfile.TemporaryDirectory(prefix="bench-data-gates-", dir=args.dir) as parent:
        big = data_set(Path(parent), args.rows)
        seconds, rss, found = measure("duckdb", big)
        line("duckdb", args.rows, seconds, rss)
        print(f"  failed checks: {[o[0] for o in found if not o[2]]}; overlap: {found[5][3]}")
        for path in big.glob("*.parquet"):
            path.unlink()  # room for the next data set
        if args.pandas_rows:
            small = data_set(Path(parent), args.pandas_rows)
            runs = {engine: measure(engine, small) for engine in ("duckdb", "pandas")}
            for engine, (s, r, _) in runs.items():
                line(engine, args.pandas_rows, s, r)
            (ds, dr, dfound), (ps, pr, pfound) = runs["duckdb"], runs["pandas"]
            print(f"  pandas / duckdb: {ps / ds:.1f}x the time, {pr / dr:.1f}x the memory")
            print(f"  the engines' checks agree: {dfound == pfound}")


if __name__ == "__main__":
    main()
