"""Tests for ci_ml.quality: the built-in data checks on injected problems, and the Great
Expectations suite of the example project on clean and on broken data (real GX)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ci_ml import quality
from ci_ml.config import DataConfig, HoldoutConfig, load_config
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import ConfigError
from ci_ml.gates import data_gate
from ci_ml.quality import Check, builtin_checks, read_suite, run_suite
from tests.conftest import validated_data_report

SUITE = Path("expectations/credit_data.json")


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n).round(8),
            "kind": rng.choice(["a", "b"], n),
            "label": rng.choice(["no", "yes"], n, p=[0.7, 0.3]),
        }
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def load(root: Path, config: DataConfig, **files: pd.DataFrame) -> Dataset:
    for name, table in files.items():
        table.to_csv(root / f"{name}.csv", index=False)
    return load_dataset(root, config)


# --- built-in checks -----------------------------------------------------------------


def test_clean_data_passes_every_builtin_check(tmp_path: Path) -> None:
    config = DataConfig(path="data.csv", target="label")
    checks = builtin_checks(load(tmp_path, config, data=frame()), config)
    assert {c.name for c in checks} == {
        "dataset_not_empty",
        "target_valid",
        "train_has_every_class",
        "holdout_has_every_class",
        "holdout_class_counts",
        "train_holdout_overlap",
    }
    assert all(c.success for c in checks), [c for c in checks if not c.success]


def test_null_labels_fail_target_valid(tmp_path: Path) -> None:
    data = frame()
    data.loc[[5, 17, 60, 111], "label"] = np.nan
    config = DataConfig(path="data.csv", target="label")
    check = by_name(builtin_checks(load(tmp_path, config, data=data), config))["target_valid"]
    assert not check.success and check.blocking
    assert check.column == "label"
    assert check.unexpected_count == 4
    assert check.unexpected_percent == pytest.approx(100 * 4 / len(data))
    assert check.sample == [None, None, None, None]


def test_non_finite_regression_target_fails(tmp_path: Path) -> None:
    data = frame().assign(label=lambda f: np.linspace(0, 1, len(f)))
    data.loc[3, "label"] = np.inf
    config = DataConfig(path="data.csv", target="label", task="regression")
    check = by_name(builtin_checks(load(tmp_path, config, data=data), config))["target_valid"]
    assert not check.success
    assert check.unexpected_count == 1


def holdout_file_config(**options: Any) -> DataConfig:
    return DataConfig(
        path="train.csv", target="label", holdout=HoldoutConfig(file="holdout.csv"), **options
    )


def test_holdout_rows_copied_into_train_are_caught(tmp_path: Path) -> None:
    train, holdout = frame(200, seed=1), frame(50, seed=2)
    leaked = holdout.iloc[[4, 9, 30]]
    train = pd.concat([train, leaked], ignore_index=True)
    config = holdout_file_config()
    dataset = load(tmp_path, config, train=train, holdout=holdout)
    check = by_name(builtin_checks(dataset, config))["train_holdout_overlap"]
    assert not check.success and check.blocking
    assert check.unexpected_count == 3
    assert check.observed == "3 of 50 holdout rows also in train"
    assert check.unexpected_percent == pytest.approx(6.0)
    assert sorted(row["x"] for row in check.sample) == sorted(leaked["x"].tolist())


def test_some_overlap_can_be_allowed(tmp_path: Path) -> None:
    train, holdout = frame(200, seed=1), frame(50, seed=2)
    train = pd.concat([train, holdout.iloc[[4, 9, 30]]], ignore_index=True)
    config = holdout_file_config(max_overlap_percent=10)
    dataset = load(tmp_path, config, train=train, holdout=holdout)
    check = by_name(builtin_checks(dataset, config))["train_holdout_overlap"]
    assert check.success
    assert check.unexpected_count == 3


def test_a_holdout_without_one_class_fails(tmp_path: Path) -> None:
    holdout = frame(50, seed=2).assign(label="no")
    config = holdout_file_config()
    dataset = load(tmp_path, config, train=frame(200, seed=1), holdout=holdout)
    check = by_name(builtin_checks(dataset, config))["holdout_has_every_class"]
    assert not check.success
    assert check.sample == ["yes"]


def test_a_class_with_too_few_rows_for_both_sides_is_named(tmp_path: Path) -> None:
    # six rows, one of them 'yes': the split puts it in the holdout and train has no 'yes'
    data = frame(6).assign(label=["no", "no", "yes", "no", "no", "no"])
    config = DataConfig(path="data.csv", target="label")
    checks = by_name(builtin_checks(load(tmp_path, config, data=data), config))
    check = checks["train_has_every_class"]
    assert not check.success and check.blocking
    assert check.column == "label"
    assert check.sample == ["yes"]
    assert "train rows must contain every class" in check.details
    gate = data_gate(validated_data_report(list(checks.values())))
    assert gate.verdict == "fail"
    assert "train_has_every_class on column 'label'" in gate.reason


def test_report_puts_failures_first_and_is_json() -> None:
    checks = [
        Check("passes", True),
        Check("warns", False, severity="warning"),
        Check("blocks", False, column="Age", unexpected_percent=float("nan")),
        Check("info", False, severity="info"),
    ]
    record = quality.report(checks, {"data_version": "md5:x"})
    assert [c["name"] for c in record["checks"]] == ["blocks", "warns", "info", "passes"]
    assert record["success"] is False
    assert record["failed"] == 3
    assert record["blocking"] == ["blocks"]
    assert record["data_version"] == "md5:x"


# --- Great Expectations --------------------------------------------------------------


@pytest.fixture(scope="module")
def example(pulled_example: Path) -> tuple[Path, DataConfig, pd.DataFrame]:
    """The example project's data as validate sees it: train and holdout together."""
    config = load_config(pulled_example / "ci-ml.yaml").data
    dataset = load_dataset(pulled_example, config)
    return pulled_example, config, pd.concat([dataset.train, dataset.holdout], ignore_index=True)


@pytest.fixture(scope="module")
def clean_checks(example: tuple[Path, DataConfig, pd.DataFrame]) -> list[Check]:
    root, _, data = example
    return run_suite(data, root / SUITE)


@pytest.fixture(scope="module")
def broken(
    example: tuple[Path, DataConfig, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, list[Check]]:
    """The example data with three missing ages and one applicant aged 250."""
    root, config, _ = example
    raw = pd.read_csv(root / config.path)
    raw["Age"] = raw["Age"].astype(float)
    raw.loc[[3, 10, 20], "Age"] = np.nan
    raw.loc[5, "Age"] = 250
    where = tmp_path_factory.mktemp("broken")
    raw.to_csv(where / "credit.csv", index=False)
    dataset = load_dataset(where, config.model_copy(update={"path": "credit.csv"}))
    data = pd.concat([dataset.train, dataset.holdout], ignore_index=True)
    return data, run_suite(data, root / SUITE)


def test_the_example_suite_passes_on_the_example_data(
    example: tuple[Path, DataConfig, pd.DataFrame], clean_checks: list[Check]
) -> None:
    root = example[0]
    items = json.loads((root / SUITE).read_text())["expectations"]
    assert [c.name for c in clean_checks] == [item["type"] for item in items]
    assert [c for c in clean_checks if not c.success] == []
    assert all(c.source == "suite" for c in clean_checks)
    assert quality.report(clean_checks, {})["success"] is True


def test_each_check_points_at_its_line_in_the_suite(
    example: tuple[Path, DataConfig, pd.DataFrame], clean_checks: list[Check]
) -> None:
    lines = (example[0] / SUITE).read_text().splitlines()
    for check in clean_checks:
        assert check.location is not None
        line = lines[check.location["line"] - 1]
        assert f'"type": "{check.name}"' in line
        if check.column:
            assert f'"column": "{check.column}"' in line


def failing(checks: list[Check]) -> dict[tuple[str, str | None], Check]:
    return {(c.name, c.column): c for c in checks if not c.success}


def test_only_the_age_expectations_fail_on_broken_ages(
    broken: tuple[pd.DataFrame, list[Check]],
) -> None:
    assert set(failing(broken[1])) == {
        ("expect_column_values_to_not_be_null", "Age"),
        ("expect_column_values_to_be_between", "Age"),
    }


def test_missing_ages_are_counted(broken: tuple[pd.DataFrame, list[Check]]) -> None:
    data, checks = broken
    check = failing(checks)[("expect_column_values_to_not_be_null", "Age")]
    assert check.blocking
    assert check.unexpected_count == 3
    assert check.unexpected_percent == pytest.approx(100 * 3 / len(data))


def test_an_impossible_age_is_shown(broken: tuple[pd.DataFrame, list[Check]]) -> None:
    data, checks = broken
    check = failing(checks)[("expect_column_values_to_be_between", "Age")]
    assert check.blocking
    assert check.unexpected_count == 1
    # GX counts the out-of-range share among the non-null values
    assert check.unexpected_percent == pytest.approx(100 / data["Age"].notna().sum())
    assert check.sample == [250]
    assert "max_value=100" in check.details


def test_broken_ages_block_the_data_gate(broken: tuple[pd.DataFrame, list[Check]]) -> None:
    record = quality.report(broken[1], {})
    assert record["success"] is False
    assert sorted(record["blocking"]) == [
        "expect_column_values_to_be_between",
        "expect_column_values_to_not_be_null",
    ]
    json.dumps(record, allow_nan=False)  # what validate writes
    gate = data_gate(validated_data_report(broken[1]))
    assert gate.verdict == "fail"
    assert "2 critical data checks failed" in gate.reason
    assert "column 'Age'" in gate.reason


def write_suite(path: Path, expectations: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"name": "t", "expectations": expectations}))
    return path


def test_a_failed_warning_is_reported_but_does_not_block(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path / "suite.json",
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "x", "min_value": 100, "max_value": 200},
                "severity": "warning",
            },
        ],
    )
    checks = run_suite(frame(), suite)
    warned = by_name(checks)["expect_column_mean_to_be_between"]
    assert not warned.success
    assert warned.severity == "warning" and not warned.blocking
    assert warned.observed == pytest.approx(frame()["x"].mean())
    record = quality.report(checks, {})
    assert record["success"] is True
    assert record["failed"] == 1
    assert record["blocking"] == []
    assert record["checks"][0]["name"] == "expect_column_mean_to_be_between"
    gate = data_gate(validated_data_report(checks))
    assert gate.verdict == "pass"
    assert "1 non-blocking failure" in gate.reason


def test_an_unknown_expectation_type_is_refused(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path / "suite.json",
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {"type": "expect_column_values_to_be_sensible", "kwargs": {"column": "x"}},
        ],
    )
    with pytest.raises(ConfigError) as info:
        run_suite(frame(), suite)
    message = str(info.value)
    assert "suite.json" in message
    assert "#2 'expect_column_values_to_be_sensible'" in message


def test_a_bad_severity_is_refused(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path / "suite.json",
        [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "x"},
                "severity": "fatal",
            },
        ],
    )
    with pytest.raises(
        ConfigError,
        match=r"expectation #1 \(expect_column_values_to_not_be_null\) has severity 'fatal'; "
        r"allowed: critical, warning, info",
    ):
        read_suite(suite)


# --- results matched to their entries ----------------------------------------------


def assets_frame(n: int = 120) -> pd.DataFrame:
    """Income in range; Assets with 47 nulls (as in the example data)."""
    rng = np.random.default_rng(3)
    assets = rng.uniform(0, 9000, n).round(1)
    assets[rng.choice(n, 47, replace=False)] = np.nan
    return pd.DataFrame({"Income": rng.uniform(0, 4000, n).round(1), "Assets": assets})


ISSUE_SUITE = [
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "Income", "min_value": 0, "max_value": 5000},
    },
    {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "Assets"},
        "severity": "critical",
    },
    {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "Income", "min_value": 0, "max_value": 1e6},
        "severity": "warning",
    },
]


def test_a_failing_critical_check_keeps_its_severity_when_gx_reorders(tmp_path: Path) -> None:
    # GX returns the results grouped by column (Income, Income, Assets): paired by position,
    # the failing Assets check would take the warning's severity and pass the gate
    checks = run_suite(assets_frame(), write_suite(tmp_path / "suite.json", ISSUE_SUITE))
    assert [(c.name, c.column, c.severity) for c in checks] == [
        (e["type"], e["kwargs"]["column"], e.get("severity", "critical")) for e in ISSUE_SUITE
    ]
    nulls = checks[1]
    assert not nulls.success and nulls.blocking
    assert nulls.unexpected_count == 47
    assert checks[0].success and checks[2].success
    gate = data_gate(validated_data_report(checks))
    assert gate.verdict == "fail"
    assert "expect_column_values_to_not_be_null on column 'Assets'" in gate.reason


MIXED_SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "kind", "value_set": ["a"]},
        "severity": "warning",
    },
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "x", "min_value": 0, "max_value": 10},
        "severity": "info",
    },
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "label", "value_set": ["no"]},
    },
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}},
    {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "x", "min_value": 5, "max_value": 6},
        "severity": "warning",
    },
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "kind"}},
]


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> list[bool]:
    """Each entry of MIXED_SUITE validated on its own: the outcome it must keep in any suite."""
    where = tmp_path_factory.mktemp("alone")
    return [
        run_suite(frame(), write_suite(where / f"{i}.json", [entry]))[0].success
        for i, entry in enumerate(MIXED_SUITE)
    ]


@pytest.mark.parametrize("seed", range(4))
def test_every_result_keeps_its_entry_in_any_order(
    tmp_path: Path, alone: list[bool], seed: int
) -> None:
    order = np.random.default_rng(seed).permutation(len(MIXED_SUITE)).tolist()
    suite = [MIXED_SUITE[i] for i in order]
    checks = run_suite(frame(), write_suite(tmp_path / "suite.json", suite))
    assert len(checks) == len(suite)
    for check, entry, i in zip(checks, suite, order, strict=True):
        assert check.name == entry["type"]
        assert check.column == entry["kwargs"].get("column")
        assert check.severity == entry.get("severity", "critical")
        assert check.success == alone[i], (entry, check)
    # the data fails some checks of each severity, so a mix-up would show
    assert {c.severity for c in checks if not c.success} == {"critical", "warning", "info"}


def test_identical_entries_keep_their_own_severity(tmp_path: Path) -> None:
    entry = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "kind"}}
    entry["kwargs"]["value_set"] = ["a"]
    suite = [
        {**entry, "severity": "warning"},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {**entry, "severity": "critical"},
    ]
    checks = run_suite(frame(), write_suite(tmp_path / "suite.json", suite))
    assert [(c.success, c.severity) for c in checks] == [
        (False, "warning"),
        (True, "critical"),
        (False, "critical"),
    ]
    assert quality.report(checks, {})["success"] is False


def test_an_entry_without_a_result_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = quality._validate
    monkeypatch.setattr(quality, "_validate", lambda *args: real(*args)[1:])
    suite = [
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "x"},
            "severity": "warning",
        },
    ]
    (check,) = run_suite(frame(), write_suite(tmp_path / "suite.json", suite))
    assert not check.success and check.blocking
    assert "no result" in check.details


def test_line_numbers_follow_the_entries_in_a_compact_suite(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(
        '{"name": "t", "meta": {"type": "note"}, "expectations": [\n'
        + ",\n".join(json.dumps(e) for e in ISSUE_SUITE[:2])
        + ", "
        + json.dumps(ISSUE_SUITE[2])
        + "]}\n"
    )
    checks = run_suite(assets_frame(), path)
    assert [c.location["line"] for c in checks if c.location] == [2, 3, 3]


# --- bad suite files -----------------------------------------------------------------

BAD_ENTRIES = {
    # name: (entry, fragments the message must contain)
    "wrong kwarg type": (
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": "low"},
        },
        ["kwarg 'min_value' = 'low'", "not a valid float"],
    ),
    "a list where a set is expected": (
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "x", "value_set": "ab"}},
        ["kwarg 'value_set' = 'ab'", "not a valid list"],
    ),
    "a number as column": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": 3}},
        ["kwarg 'column' = 3", "str type expected"],
    ),
    "mostly above 1": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "mostly": 2}},
        ["kwarg 'mostly' = 2"],
    ),
    "unknown kwarg": (
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": 0, "maxvalue": 3},
        },
        ["unknown kwarg 'maxvalue'", "did you mean 'max_value'", "allowed: ", "min_value"],
    ),
    "missing column": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {}},
        ["lacks the required kwarg 'column'"],
    ),
    "no kwargs at all": (
        {"type": "expect_column_values_to_be_in_set"},
        ["lacks the required kwarg 'column'"],
    ),
    "kwargs not a mapping": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": ["x"]},
        ["kwargs ['x']", "must be a mapping"],
    ),
    "no type": ({"kwargs": {"column": "x"}}, ["has no 'type'"]),
    "unknown entry key": (
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}, "severty": 1},
        ["unknown key 'severty'", "did you mean 'severity'"],
    ),
    "not a mapping": (
        "expect_column_values_to_not_be_null",
        ["is 'expect_column", "not a mapping"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_a_bad_entry_names_the_file_the_entry_and_the_problem(tmp_path: Path, case: str) -> None:
    entry, fragments = BAD_ENTRIES[case]
    good = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
    suite = write_suite(tmp_path / "suite.json", [good, entry])
    with pytest.raises(ConfigError) as info:
        run_suite(frame(), suite)
    message = str(info.value)
    assert message.startswith(f"{suite}: expectation #2")
    if isinstance(entry, dict) and "type" in entry:
        assert f"#2 ({entry['type']})" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "expectation suite not found"),
        ("{not json", "not valid JSON"),
        ('{"expectations": []}', "non-empty 'expectations' list"),
        ("[1, 2]", "non-empty 'expectations' list"),
    ],
)
def test_unusable_suite_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "suite.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_suite(path)
