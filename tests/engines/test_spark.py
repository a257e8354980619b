"""Engine spark (ci_ml.engines.spark): NaN is missing as in pandas, a CSV is typed as pandas
types it, column names Spark would parse are plain names, and the config and the extra say
what to do. The comparisons of every check are in test_builtins.py and test_suite.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_ml.config import DataConfig, ExpectationsConfig, HoldoutConfig, SparkConfig
from ci_ml.errors import MissingExtra
from tests.engines.compare import assert_same, both, config, write
from tests.engines.test_database import nan_table

slow = pytest.mark.slow  # the tests that start the local Spark session


@slow
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_nan_counts_as_missing_like_pandas(spark_session: Any, tmp_path: Path, task: str) -> None:
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
    data = config("train.parquet", "holdout.parquet", "spark", task=task)
    expected, found = both(tmp_path, data, ExpectationsConfig(suite="suite.json"))
    assert_same(expected, found)
    counts = {(c.name, c.column): c.unexpected_count for c in found}
    assert counts[("target_valid", "label")] == 4
    assert counts[("expect_column_values_to_not_be_null", "x")] == 2 * 8
    assert counts[("expect_column_values_to_not_be_null", "label")] == 4


CSV = """\
a.b,my col,flag,n,code,note,label
1.5,x,True,1,007,"a, ""quoted"" one",yes
NA,y,False,2,012,plain,no
-nan,null,True,NA,7,"",yes
2.25,n/a,False,4,1e3,more,no
inf,z,True,5,3,last,yes
"""


@slow
def test_a_csv_is_typed_and_read_as_pandas_reads_it(spark_session: Any, tmp_path: Path) -> None:
    """pandas' missing texts, True/False and zero-padded codes, doubled quotes inside a
    quoted cell, an integer column with a missing cell, names with a dot and a space."""
    from ci_ml.engines import spark

    holdout = CSV.replace("inf", "0.5")  # an infinite feature is refused (by both engines)
    (tmp_path / "train.csv").write_text(holdout + "3,w,True,6,8,extra,no\n")
    (tmp_path / "holdout.csv").write_text(holdout)
    data = config(engine="spark", task="classification")
    assert_same(*both(tmp_path, data))
    frames = spark.open_frames(spark.session(data.spark), tmp_path, data)
    kinds = {c: frames.kind("train", c) for c in frames.train.columns}
    assert kinds == {
        **{"a.b": "float", "my col": "other", "flag": "other", "n": "integer"},
        **{"code": "float", "note": "other", "label": "other"},
    }
    rows = frames.train.collect()
    assert rows[0]["note"] == 'a, "quoted" one'
    assert [r["a.b"] for r in rows[:3]] == [1.5, None, None]  # NA and -nan are missing
    assert [r["my col"] for r in rows[2:4]] == [None, None]  # null and n/a are missing
    assert rows[2]["note"] is None  # a quoted empty cell is missing, as in pandas


@slow
def test_a_regex_expectation_runs_on_spark(spark_session: Any, tmp_path: Path) -> None:
    """GX evaluates regex on Spark (unlike on duckdb): the same result as pandas."""
    from tests.engines.test_suite import frame, suite_file

    write(tmp_path / "train.csv", frame(300, 1))
    write(tmp_path / "holdout.csv", frame(100, 2))
    suite = suite_file(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_match_regex",
                "kwargs": {"column": "home", "regex": "^[a-z]+$"},
            }
        ],
    )
    expected, found = both(tmp_path, config(engine="spark"), suite)
    assert_same(expected, found)
    assert found[-1].unexpected_count == 4 and not found[-1].success


def test_engine_spark_takes_one_way_to_a_cluster() -> None:
    assert DataConfig(path="data.parquet", target="label", engine="spark").holdout.file is None
    with pytest.raises(ValueError, match="keep one"):
        SparkConfig(master="local[2]", remote="sc://localhost:15002")
    with pytest.raises(ValueError, match="sc://"):
        SparkConfig(remote="spark://host:7077")
    data = DataConfig.model_validate(
        {
            "path": "train.parquet",
            "target": "label",
            "holdout": {"file": "holdout.parquet"},
            "engine": "spark",
            "spark": {"master": "spark://host:7077", "conf": {"spark.executor.memory": "4g"}},
        }
    )
    assert data.spark.master == "spark://host:7077"
    assert data.holdout == HoldoutConfig(file="holdout.parquet")


def test_without_the_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_ml.engines.spark import functions

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(MissingExtra, match=r"pip install 'ci-ml\[spark\]'"):
        functions()


def test_spark_connect_without_its_client_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ci_ml.engines.spark import session

    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(MissingExtra, match=r"remote \(Spark Connect\) needs the 'spark-connect'"):
        session(SparkConfig(remote="sc://localhost:15002"))


@slow
def test_a_malformed_csv_row_is_refused_naming_it(spark_session: Any, tmp_path: Path) -> None:
    from ci_ml import engines
    from ci_ml.errors import DataError

    (tmp_path / "train.csv").write_text("x,label\n1,a\n2,b\n3,a,9\n4,b\n")
    (tmp_path / "holdout.csv").write_text("x,label\n1,a\n2,b\n")
    with pytest.raises(DataError, match=r"train.csv is not a readable CSV file \(\[MALFORMED"):
        engines.data_gates(tmp_path, config(engine="spark"), None)
