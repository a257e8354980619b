"""Tests for ci_ml.gates: min/max bounds, the verdict, fail-closed metrics and the data gate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ci_ml.config import Config, GateConfig, load_config
from ci_ml.errors import ConfigError
from ci_ml.gates import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    GateResult,
    as_dicts,
    check_gate_metrics,
    data_gate,
    threshold_gate,
    verdict,
)
from ci_ml.quality import Check
from ci_ml.records import DataReport
from tests.conftest import validated_data_report


def judge(metric: str, value: float, **bounds: float) -> GateResult:
    return threshold_gate(GateConfig(metric=metric, **bounds), {metric: value}, line=None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.79, FAIL), (0.80, PASS), (0.81, PASS)],
)
def test_min_is_a_lower_bound(value: float, expected: str) -> None:
    result = judge("roc_auc", value, min=0.80)
    assert result.verdict == expected
    assert result.rule == "pass if roc_auc ≥ 0.8"
    assert result.value == value
    assert result.reason.startswith(f"roc_auc = {value:.4f}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.49, PASS), (0.50, PASS), (0.51, FAIL)],
)
def test_max_is_an_upper_bound(value: float, expected: str) -> None:
    result = judge("log_loss", value, max=0.5)
    assert result.verdict == expected
    assert result.rule == "pass if log_loss ≤ 0.5"


@pytest.mark.parametrize(("value", "expected"), [(0.05, FAIL), (0.2, PASS), (0.95, FAIL)])
def test_min_and_max_together(value: float, expected: str) -> None:
    result = judge("recall", value, min=0.1, max=0.9)
    assert result.verdict == expected
    assert result.rule == "pass if recall ≥ 0.1 and recall ≤ 0.9"
    assert ("out of bounds" in result.reason) == (expected == FAIL)


def test_a_gate_on_a_metric_that_was_not_computed_fails_closed() -> None:
    gate = GateConfig(metric="f1", min=0.5)
    with pytest.raises(ConfigError, match=r"gate on 'f1': the metric was not computed"):
        threshold_gate(gate, {"roc_auc": 0.9}, line=None)


def test_the_gate_remembers_its_line(tmp_path: Path) -> None:
    result = threshold_gate(GateConfig(metric="f1", min=0.5), {"f1": 0.6}, line=12)
    assert result.location == {"file": "ci-ml.yaml", "line": 12}


def make_config(tmp_path: Path, *gates: str) -> Config:
    text = (
        "data: {path: d.csv, target: y}\n"
        "model: {estimator: sklearn.linear_model.LogisticRegression}\n"
        "gates:\n" + "".join(f"  - {g}\n" for g in gates)
    )
    (tmp_path / "ci-ml.yaml").write_text(text)
    return load_config(tmp_path / "ci-ml.yaml")


def test_known_metrics_are_accepted(tmp_path: Path) -> None:
    config = make_config(tmp_path, "{metric: roc_auc, min: 0.7}", "{metric: log_loss, max: 0.6}")
    check_gate_metrics(config, "classification")  # no error


@pytest.mark.parametrize(
    ("gate", "task", "named"),
    [
        (
            "{metric: roc_aux, min: 0.7}",
            "classification",
            "unknown classification metric 'roc_aux'",
        ),
        (
            "{metric: rmse, max: 3}",
            "classification",
            "'rmse' is a regression metric, but the task is classification",
        ),
        (
            "{metric: roc_auc, min: 0.7}",
            "regression",
            "'roc_auc' is a classification metric, but the task is regression",
        ),
        ("{metric: roc_aux, min: 0.7}", None, "unknown metric 'roc_aux'"),
    ],
)
def test_an_unknown_metric_is_an_error_not_a_pass(
    tmp_path: Path, gate: str, task: str | None, named: str
) -> None:
    config = make_config(tmp_path, gate)
    with pytest.raises(ConfigError) as info:
        check_gate_metrics(config, task)
    message = str(info.value)
    assert message.startswith("ci-ml.yaml: field 'gates.0.metric': ")
    assert named in message
    assert "allowed: " in message


def test_without_a_task_the_metrics_must_agree_on_one(tmp_path: Path) -> None:
    config = make_config(tmp_path, "{metric: roc_auc, min: 0.7}", "{metric: rmse, max: 3}")
    with pytest.raises(ConfigError) as info:
        check_gate_metrics(config, None)
    message = str(info.value)
    assert "field 'gates.1.metric': 'rmse' is a regression metric" in message
    assert "gates.0.metric ('roc_auc') makes the task classification" in message
    check_gate_metrics(make_config(tmp_path, "{metric: rmse, max: 3}"), None)  # no error


def test_an_operational_metric_takes_no_change_gate(tmp_path: Path) -> None:
    config = make_config(tmp_path, "{metric: roc_auc, min: 0.7}", "{metric: size_mb, change: {}}")
    with pytest.raises(ConfigError, match=r"'gates.1.metric': 'size_mb' is an operational"):
        check_gate_metrics(config, "classification")


def test_an_unknown_metric_in_the_metric_list_is_refused_too(tmp_path: Path) -> None:
    config = make_config(tmp_path, "{metric: roc_auc, min: 0.7}")
    config = config.model_copy(update={"metrics": ["roc_auc", "acuracy"]})
    with pytest.raises(
        ConfigError, match=r"field 'metrics\.1': unknown classification metric 'acuracy'"
    ):
        check_gate_metrics(config, "classification")


# --- the verdict ---------------------------------------------------------------------

PASSED = judge("roc_auc", 0.9, min=0.8)
FAILED = judge("roc_auc", 0.7, min=0.8)
UNSURE = replace(PASSED, verdict=INCONCLUSIVE, reason="interval straddles the margin")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([PASSED], PASS),
        ([PASSED, PASSED], PASS),
        ([FAILED], FAIL),
        ([PASSED, FAILED], FAIL),
        ([PASSED, UNSURE], INCONCLUSIVE),
        ([UNSURE, FAILED, PASSED], FAIL),
    ],
)
def test_verdict(results: list[GateResult], expected: str) -> None:
    assert verdict(results) == expected


def test_no_gate_is_an_error_not_a_pass() -> None:
    with pytest.raises(ConfigError, match="no gate was evaluated"):
        verdict([])


def test_results_as_dicts_keep_every_field() -> None:
    (record,) = as_dicts([FAILED])
    assert record["verdict"] == FAIL
    assert record["metric"] == "roc_auc"
    assert record["rule"] == "pass if roc_auc ≥ 0.8"
    assert record["kind"] == "threshold"


# --- the data gate -------------------------------------------------------------------


def check(name: str, success: bool, severity: str = "critical", column: str | None = None) -> Check:
    return Check(name, success, severity=severity, column=column)


def data_report(*checks: Check) -> DataReport:
    """The data report of ``checks`` as api.validate writes it."""
    return validated_data_report(list(checks))


def test_data_gate_passes_when_every_check_passes() -> None:
    result = data_gate(data_report(check("target_valid", True), check("overlap", True)))
    assert result.verdict == PASS
    assert result.value == 0
    assert result.reason == "all critical data checks passed"


def test_data_gate_fails_on_a_critical_failure() -> None:
    result = data_gate(
        data_report(
            check("mean_ok", False, severity="warning", column="Assets"),
            check("target_valid", True),
            check("not_null", False, column="Age"),
        )
    )
    assert result.verdict == FAIL
    assert result.value == 1
    assert result.reason == "1 critical data check failed, first: not_null on column 'Age'"


@pytest.mark.parametrize("severity", ["warning", "info"])
def test_data_gate_ignores_non_critical_failures(severity: str) -> None:
    result = data_gate(data_report(check("mean_ok", False, severity=severity), check("t", True)))
    assert result.verdict == PASS
    assert "(1 non-blocking failure)" in result.reason
