"""NaN is missing on engine duckdb, as on the pandas engine, in Parquet files pyarrow wrote
with real NaN floats (ci_ml.engines.database; duckdb#25521: isnan() is folded to false from
such files' statistics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ci_ml.config import ExpectationsConfig
from ci_ml.engines.database import Database, open_database
from tests.engines.compare import assert_same, both, config, write


def nan_table(n: int, seed: int, target: str) -> pa.Table:
    """Floats with real NaN (not null) in some row groups only, plus nulls elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[n // 2 : n // 2 + 7] = np.nan  # one row group of 1000 has NaN, the others none
    y = np.linspace(0, 1, n) if target == "regression" else (x > 0).astype(float)
    y[[1, n - 2]] = np.nan
    labels = pa.array(y, from_pandas=False)  # from_pandas=False keeps NaN as NaN
    features = pa.array(x, from_pandas=False, mask=np.arange(n) == 3)
    return pa.table({"x": features, "kind": rng.choice(["a", "b"], n), "label": labels})


def test_the_file_really_holds_nan(tmp_path: Path) -> None:
    table = nan_table(5000, 1, "regression")
    assert table.column("x").null_count == 1
    assert int(np.isnan(table.column("x").to_numpy(zero_copy_only=False)).sum()) == 8


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_nan_counts_as_missing_like_pandas(tmp_path: Path, task: str) -> None:
    write(tmp_path / "train.parquet", nan_table(5000, 1, task))
    write(tmp_path / "holdout.parquet", nan_table(3000, 2, task))
    suite = {
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "x", "min_value": -10, "max_value": 10},
            },
        ]
    }
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    data = config("train.parquet", "holdout.parquet", task=task)
    expected, found = both(tmp_path, data, ExpectationsConfig(suite="suite.json"))
    assert_same(expected, found)
    counts = {(c.name, c.column): c.unexpected_count for c in found}
    assert counts[("target_valid", "label")] == 4
    assert counts[("expect_column_values_to_not_be_null", "x")] == 2 * 8
    assert counts[("expect_column_values_to_not_be_null", "label")] == 4
    assert counts[("expect_column_values_to_be_between", "x")] == 0


def test_a_filter_on_the_view_sees_nan_as_missing(tmp_path: Path) -> None:
    """The expression survives DuckDB's filter pushdown into the Parquet scan."""
    write(tmp_path / "train.parquet", nan_table(5000, 1, "regression"))
    write(tmp_path / "holdout.parquet", nan_table(3000, 2, "regression"))
    database = Database(tmp_path / "db.duckdb", tmp_path / "spill", "256MB")
    open_database(database, tmp_path, config("train.parquet", "holdout.parquet"))
    with database.connect() as con:
        raw = con.execute("SELECT count(*) FROM raw_train WHERE isnan(x)").fetchone()
        assert raw == (0,)  # the DuckDB bug this module works around
        assert con.execute("SELECT count(*) FROM train WHERE x IS NULL").fetchone() == (8,)
        assert con.execute("SELECT count(*) - count(x) FROM data").fetchone() == (16,)


def test_engine_duckdb_splits_and_needs_a_memory_size() -> None:
    from ci_ml.config import DataConfig

    assert DataConfig(path="data.parquet", target="label", engine="duckdb").holdout.file is None
    with pytest.raises(ValueError, match="a size with a unit is allowed"):
        DataConfig(path="data.parquet", target="label", memory_limit="lots")


def test_without_the_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from ci_ml.engines.database import import_duckdb
    from ci_ml.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(MissingExtra, match=r"pip install 'ci-ml\[duckdb\]'"):
        import_duckdb()
