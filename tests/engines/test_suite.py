"""The GX suite through GX's datasource for the engine (ci_ml.engines.suite: SQL on DuckDB,
a Spark DataFrame on Spark): the same Check records as the pandas engine, and an expectation
GX cannot evaluate on duckdb fails closed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ci_ml import engines, quality
from ci_ml.config import ExpectationsConfig
from tests.engines.compare import assert_same, both, config, write


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n).astype(float),
            "home": rng.choice(["rent", "owner", "other"], n),
            "label": rng.choice(["no", "yes"], n),
        }
    )
    data.loc[[2, 9], "age"] = np.nan
    data.loc[4, "age"] = 250
    data.loc[[5, 6], "home"] = "Parents"
    return data


def suite_file(root: Path, entries: list[dict[str, object]]) -> ExpectationsConfig:
    (root / "suite.json").write_text(json.dumps({"name": "s", "expectations": entries}))
    return ExpectationsConfig(suite="suite.json")


def test_failing_expectations_agree(tmp_path: Path, engine: str) -> None:
    write(tmp_path / "train.csv", frame(300, 1))
    write(tmp_path / "holdout.csv", frame(100, 2))
    suite = suite_file(
        tmp_path,
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "age", "min_value": 18, "max_value": 100},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "severity": "warning",
                "kwargs": {"column": "home", "value_set": ["rent", "owner", "other"]},
            },
            {
                "type": "expect_column_distinct_values_to_be_in_set",
                "kwargs": {"column": "home", "value_set": ["rent", "owner", "other"]},
            },
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "age", "min_value": 0, "max_value": 50},
            },
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 500}},
        ],
    )
    expected, found = both(tmp_path, config(engine=engine), suite)
    assert_same(expected, found)
    suite_checks = [c for c in found if c.source == "suite"]
    assert [c.success for c in suite_checks] == [False] * 6
    assert [c.unexpected_count for c in suite_checks][:3] == [4, 2, 4]
    assert [c.location["line"] for c in suite_checks if c.location] == [1] * 6


def test_a_regex_expectation_fails_closed(tmp_path: Path) -> None:
    """GX has no regex for the duckdb dialect: the check fails, critical even as a warning."""
    write(tmp_path / "train.csv", frame(300, 1))
    write(tmp_path / "holdout.csv", frame(100, 2))
    suite = suite_file(
        tmp_path,
        [
            {
                "type": "expect_column_values_to_match_regex",
                "severity": "warning",
                "kwargs": {"column": "home", "regex": "^[a-z]+$"},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "home"}},
        ],
    )
    found = engines.data_gates(tmp_path, config(), suite).checks
    regex, not_null = found[-2:]
    assert not regex.success and regex.blocking and regex.severity == "critical"
    assert "cannot be evaluated on engine duckdb" in regex.details
    assert "data.engine: pandas" in regex.details
    assert "Regex is not supported for dialect duckdb" in regex.details
    assert not_null.success
    suite_checks = [c for c in found if c.source == "suite"]
    assert quality.report(suite_checks, {})["blocking"] == ["expect_column_values_to_match_regex"]
