"""The run records (ci_ml/records.py) and their published JSON Schemas (docs/schemas/).

What a user relies on: the schemas are current and valid, ci-ml.yaml validates against its
schema, every record round-trips unchanged, and a damaged or foreign record is one clear
line with exit code 2 that names the file and the field.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from ci_ml import api, records, rundir
from ci_ml.errors import RunDirError
from ci_ml.records import RECORDS, load_record, read_record, write_record

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "docs" / "schemas"
DIGEST = "cf73cd9287906749df81ade38cd737ddee2a92e1679303a13a899ca3f9f817aa"
DATA_VERSION = "md5:8799ff079aa1338c337e093b1f91cc50.dir"
WHEN = "2026-05-01T08:50:27+00:00"
PARAMS = {"learning_rate": 0.05, "max_depth": None, "max_iter": 200, "warm_start": False}
PAIRED = {
    "candidate": 0.8421,
    "production": 0.8302,
    "delta": 0.0119,
    "ci_low": -0.0021,
    "ci_high": 0.0259,
    "confidence": 0.95,
    "method": "DeLong 1988, normal interval (fast midranks, Sun & Xu 2014)",
    "n": 892,
}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_schemas", REPO / "scripts/make_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_schemas = _load_script()


def _measure(name: str, value: float) -> dict[str, Any]:
    return {
        "name": name,
        "threshold": 0.2,
        "value": value,
        "noise_floor": 0.0141,
        "limit": 0.2,
        "drifted": value >= 0.2,
    }


def _drift(feature: str, kind: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "feature": feature,
        "kind": kind,
        "measures": [_measure("psi", 0.0006)],
        "reference_rows": 3562,
        "recent_rows": 4454,
        "summary": "mean 36.91 → 37.08",
        "details": details,
        "drifted": False,
        "severity": 0.003,
    }


def samples() -> dict[str, dict[str, Any]]:
    """A realistic record of each kind, as the steps write them (plus schema_version)."""
    source = {"kind": "file", "path": "data/recent.csv", "files": 1, "dvc": "data/recent.csv.dvc"}
    return {
        rundir.PULL: {
            "schema_version": 1,
            "data_path": "data/credit_data.csv",
            "dvc_targets": ["data.dvc"],
            "data_version": DATA_VERSION,
            "pulled_at": WHEN,
            "row_identity": ["Age", "Home", "Income"],
        },
        rundir.DATA_REPORT: {
            "schema_version": 1,
            "data_version": DATA_VERSION,
            "task": "classification",
            "rows": {"train": 3562, "holdout": 892},
            "suite": "expectations/credit_data.json",
            "created_at": WHEN,
            "success": False,
            "failed": 1,
            "blocking": ["expect_column_values_to_be_between"],
            "checks": [
                {
                    "name": "expect_column_values_to_be_between",
                    "success": False,
                    "source": "suite",
                    "column": "Age",
                    "severity": "critical",
                    "observed": None,
                    "unexpected_count": 3,
                    "unexpected_percent": 0.0673,
                    "sample": [-1, 130, None],
                    "details": "min_value=18, max_value=100",
                    "location": {"file": "expectations/credit_data.json", "line": 12},
                },
                {
                    "name": "dataset_not_empty",
                    "success": True,
                    "source": "builtin",
                    "column": None,
                    "severity": "critical",
                    "observed": {"train": 3562, "holdout": 892},
                    "unexpected_count": None,
                    "unexpected_percent": None,
                    "sample": [],
                    "details": "train and holdout need rows",
                    "location": None,
                },
            ],
        },
        rundir.MODEL_CARD: {
            "schema_version": 1,
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": PARAMS,
            "configured_params": {"max_iter": 200, "learning_rate": 0.05},
            "command": None,
            "seed": 0,
            "threshold": 0.5,
            "task": "classification",
            "target": "Status",
            "positive_class": "bad",
            "classes": ["bad", "good"],
            "feature_schema": [
                {"name": "Seniority", "kind": "numeric", "dtype": "int64"},
                {"name": "Home", "kind": "categorical", "dtype": "object", "categories": ["rent"]},
            ],
            "training_rows": 3562,
            "digest": DIGEST,
            "created_at": WHEN,
            "ci_ml_version": "0.1.0",
            "data_version": DATA_VERSION,
            "git_sha": "4d68b08f919d1beb18ef714ca750ef5852f788db",
            "size_bytes": 1572104,
            "row_identity": ["Age", "Home", "Income"],
            "model_file": "model.skops",
        },
        rundir.EVALUATION: {
            "schema_version": 1,
            "task": "classification",
            "data_version": DATA_VERSION,
            "rows": {"train": 3562, "holdout": 892},
            "positive_class": "bad",
            "candidate": {
                "digest": DIGEST,
                "metrics": {"roc_auc": 0.8421, "log_loss": 0.4349},
                "operational": {
                    "latency_p50_ms": 0.0621,
                    "latency_p95_ms": 0.1888,
                    "size_mb": 1.572104,
                    "churn": 0.0314,
                },
            },
            "baseline": {
                "version": "v3",
                "digest": "9" * 64,
                "problem": None,
                "unread": False,
                "metrics": {"roc_auc": 0.8302},
                "params": PARAMS,
                "data_version": DATA_VERSION,
                "rows_compared": 892,
                "rows_excluded": 0,
            },
            "comparisons": {"roc_auc": {"metric": "roc_auc", **PAIRED}},
            "slices": [
                {
                    "column": "Home",
                    "value": "owner",
                    "n": 401,
                    "class_counts": {"positive": 120, "negative": 281},
                    "metrics": {"roc_auc": 0.8123},
                    "comparisons": {"roc_auc": {"metric": "roc_auc", **PAIRED}},
                    "judged": True,
                    "reason": "",
                },
                {
                    "column": "Home",
                    "value": "(missing)",
                    "n": 2,
                    "class_counts": {"positive": 1, "negative": 1},
                    "metrics": {},
                    "comparisons": {},
                    "judged": False,
                    "reason": "2 rows, fewer than slices.min_size (30); not judged",
                },
            ],
            "model": {
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": PARAMS,
                "size_bytes": 1572104,
            },
            "created_at": WHEN,
        },
        rundir.GATE_REPORT: {
            "schema_version": 1,
            "verdict": "pass",
            "reasons": [],
            "gates": [
                {
                    "name": "data checks",
                    "kind": "data",
                    "metric": None,
                    "rule": "pass if no critical data check fails",
                    "value": 0,
                    "verdict": "pass",
                    "reason": "all critical data checks passed",
                    "location": None,
                    "short": "",
                },
                {
                    "name": "roc_auc threshold",
                    "kind": "threshold",
                    "metric": "roc_auc",
                    "rule": "pass if roc_auc ≥ 0.78",
                    "value": 0.8421,
                    "verdict": "pass",
                    "reason": "roc_auc = 0.8421 is within bounds",
                    "location": {"file": "ci-ml.yaml", "line": 26},
                    "short": "≥ 0.78",
                },
                {
                    "name": "roc_auc change",
                    "kind": "change",
                    "metric": "roc_auc",
                    "rule": "pass if the lower bound of Δ roc_auc (DeLong 1988, 95%) is ≥ -0.01",
                    "value": PAIRED,
                    "verdict": "pass",
                    "reason": "roc_auc: Δ = +0.0119, CI [-0.0021, +0.0259] clears the margin",
                    "location": {"file": "ci-ml.yaml", "line": 26},
                    "short": "Δ ≥ -0.01",
                },
                {
                    "name": "churn threshold",
                    "kind": "threshold",
                    "metric": "churn",
                    "rule": "pass if churn ≤ 0.1",
                    "value": None,
                    "verdict": "pass",
                    "reason": "no production model to churn against (first model)",
                    "location": {"file": "ci-ml.yaml", "line": 36},
                    "short": "",
                },
            ],
            "candidate": {"digest": DIGEST},
            "baseline": {"version": "v3", "digest": "9" * 64, "problem": None, "unread": False},
            "data_version": DATA_VERSION,
            "config": "ci-ml.yaml",
            "comparison": {
                "confidence": 0.95,
                "resamples": 2000,
                "seed": 0,
                "first_model": "pass",
                "unusable_baseline": "fail",
                "fork_pull_request": "approve",
                "min_rows": 100,
            },
            "inputs": {
                "config": "c" * 64,
                "data_report": "d" * 64,
                "evaluation": "e" * 64,
                "parity": None,
            },
            "created_at": WHEN,
        },
        rundir.PARITY: {
            "schema_version": 1,
            "max_abs_diff": 3.2e-07,
            "max_diff_row": 513,
            "max_diff_values": {"original": 0.84358289, "onnx": 0.84358257},
            "rows_over_tolerance": 0,
            "first_rows_over_tolerance": [],
            "class_flips": 1,
            "first_flipped_rows": [{"row": 17, "original": 0.50001, "onnx": 0.49989}],
            "borderline_flips": 0,
            "kind": "parity",
            "format": "onnx",
            "task": "classification",
            "rows": 892,
            "compared": "probability of the positive class",
            "tolerance": 0.0001,
            "threshold": 0.5,
            "rule": "pass if |Δ probability of the positive class| ≤ 0.0001 on every holdout row",
            "success": False,
            "numeric_dtype": "float64",
            "model_digest": DIGEST,
            "onnx_digest": "98492bed12f0e1ce939d58438bd3fedf2be099449e4f9d9d1e07bbd222fca2d3",
            "onnx_size_bytes": 220542,
            "created_at": WHEN,
        },
        rundir.SMOKE: {
            "schema_version": 1,
            "task": "classification",
            "records": [{"Seniority": 0, "Home": "rent", "Income": 107.0, "Assets": None}],
            "expected": [0.1732],
        },
        records.PR_FILE: {
            "schema_version": 1,
            "repository": "octo-org/models",
            "number": 7,
            "head_sha": "a" * 40,
            "status_context": "ci-ml/gates",
            "key": "ml/gate",
            "run_url": "https://github.com/octo-org/models/actions/runs/42",
        },
        records.MONITOR_REPORT: {
            "schema_version": 1,
            "status": "fine",
            "reasons": [],
            "notes": [],
            "production": {
                "version": "v3",
                "digest": DIGEST,
                "task": "classification",
                "target": "Status",
                "positive_class": "bad",
                "data_version": DATA_VERSION,
                "metrics_at_gate": {"roc_auc": 0.8421, "latency_p95_ms": 0.1189},
            },
            "reference": {"rows": 3562, "predictions": "holdout", "prediction_rows": 891},
            "recent": {"rows": 4454, "source": source},
            "labelled": {"rows": 4454, "target": "Status", "source": source, "note": None},
            "settings": {
                "drift": {
                    "psi": 0.2,
                    "wasserstein": 0.1,
                    "missing": 0.05,
                    "bins": 10,
                    "max_categories": 50,
                },
                "decay": {
                    "max_drop": 0.02,
                    "max_drop_by_metric": {"roc_auc": 0.01},
                    "confidence": 0.95,
                    "resamples": 2000,
                    "seed": 0,
                    "threshold": 0.5,
                    "max_relative_drop": 0.02,
                },
                "metrics": [],
                "min_labelled": 30,
            },
            "features": [
                _drift("Age", "numeric", {"reference": {"mean": 36.9}, "recent": {"mean": 37.1}}),
                _drift("Home", "categorical", {"shares": {"rent": [0.2, 0.3]}, "unseen_share": 0}),
            ],
            "predictions": [_drift("P(bad)", "numeric", {})],
            "decay": [
                {
                    "metric": "accuracy",
                    "recorded": 0.7993,
                    "recent": 0.8691,
                    "ci_low": 0.8586,
                    "ci_high": 0.8788,
                    "confidence": 0.95,
                    "method": "bootstrap on confusion counts, percentile, B=2000",
                    "rows": 4454,
                    "gate_rows": 891,
                    "change": 0.0698,
                    "change_low": 0.0401,
                    "change_high": 0.0985,
                    "change_method": "independent bootstraps on confusion counts of both "
                    "samples, percentile of the differences, B=2000",
                    "allowed_drop": 0.02,
                    "allowed_drop_relative": None,
                    "limit": 0.7793,
                    "higher_is_better": True,
                    "verdict": "fine",
                }
            ],
            "problems": {"drift": False, "decay": False},
            "created_at": WHEN,
            "ci_ml_version": "0.1.0",
        },
        rundir.EXPERIMENTS: {
            "schema_version": 1,
            "stage": "train",
            "confidence": 0.95,
            "corrected_confidence": 1 - 0.05 / 2,
            "ranked_by": "roc_auc",
            "higher_is_better": True,
            "experiments": [
                {
                    "name": "deeper",
                    "rev": "b" * 40,
                    "params": {"train.max_leaf_nodes": 31},
                    "verdict": "pass",
                    "reasons": [],
                    "metrics": {"roc_auc": 0.87},
                    "changes": {"roc_auc": {"delta": 0.01, "ci_low": 0.001, "ci_high": 0.02}},
                    "digest": "c" * 64,
                    "run_dir": "experiments/deeper",
                },
                {
                    "name": "elsewhere",
                    "rev": "d" * 40,
                    "params": {"split.seed": 1},
                    "verdict": "fail",
                    "reasons": ["it was trained on another data/train.csv"],
                    "metrics": {},
                    "changes": {},
                    "digest": None,
                    "run_dir": "experiments/elsewhere",
                },
            ],
            "winner": "deeper",
            "created_at": WHEN,
        },
    }


def schema_of(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / make_schemas.schema_file(name)).read_text(encoding="utf-8"))


def as_file(data: Any) -> str:
    """The text a step writes for ``data`` today (rundir.write_json's format)."""
    return json.dumps(data, indent=2, default=str, allow_nan=False) + "\n"


# --- the published schemas ------------------------------------------------------------


def test_the_published_schemas_are_current() -> None:
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.schema.json")}
    assert on_disk == make_schemas.generate(), "stale: run python scripts/make_schemas.py"


def test_the_check_mode_names_stale_and_left_over_files(tmp_path: Path) -> None:
    assert make_schemas.write(tmp_path)  # everything was missing
    assert make_schemas.stale(tmp_path) == []
    (tmp_path / "gate-report.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "old.schema.json").write_text("{}\n", encoding="utf-8")
    assert make_schemas.stale(tmp_path) == ["gate-report.schema.json", "old.schema.json"]
    done = subprocess.run(
        [sys.executable, "scripts/make_schemas.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_there_is_a_schema_for_the_config_and_every_record() -> None:
    expected = {"ci-ml.schema.json", *map(make_schemas.schema_file, RECORDS)}
    assert {p.name for p in SCHEMAS.glob("*.schema.json")} == expected


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_every_schema_is_a_valid_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    if path.name != "ci-ml.schema.json":
        assert schema["required"][0] == "schema_version"


def test_the_example_config_validates_against_its_schema() -> None:
    validator = Draft202012Validator(schema_of("ci-ml.json"))
    config = yaml.safe_load((REPO / "ci-ml.yaml").read_text(encoding="utf-8"))
    validator.validate(config)
    config["model"]["trusted_type"] = []  # a typo an editor should underline
    assert [e.message for e in validator.iter_errors(config)]


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RECORDS))
def test_a_record_validates_and_round_trips_unchanged(name: str, tmp_path: Path) -> None:
    sample = samples()[name]
    Draft202012Validator(schema_of(name)).validate(sample)
    record = load_record(_written(tmp_path, name, sample), name)
    assert type(record) is RECORDS[name]
    written = write_record(tmp_path, name, record).read_text(encoding="utf-8")
    assert written == as_file(sample)  # same keys, order and values
    assert read_record(tmp_path / name, RECORDS[name]) == record


def test_churn_is_left_out_when_there_was_no_production_model(tmp_path: Path) -> None:
    sample = samples()[rundir.EVALUATION]
    sample["baseline"], sample["comparisons"] = None, {}
    del sample["candidate"]["operational"]["churn"]
    record = load_record(_written(tmp_path, rundir.EVALUATION, sample), rundir.EVALUATION)
    assert isinstance(record, records.Evaluation)
    assert record.candidate.operational.churn is None
    assert record.model_dump(mode="json") == sample
    sample["candidate"]["operational"]["churn"] = None  # regression: compared, no classes
    assert records.Evaluation.model_validate(sample).model_dump(mode="json") == sample


def test_write_record_refuses_a_record_of_another_file(tmp_path: Path) -> None:
    pull = records.PullRecord.model_validate(samples()[rundir.PULL])
    with pytest.raises(TypeError, match=r"gate-report\.json holds a GateReport"):
        write_record(tmp_path, rundir.GATE_REPORT, pull)


def test_reading_records_imports_no_heavy_library() -> None:
    code = (
        "import sys, ci_ml.records; "
        "print(sorted(m for m in ('pandas', 'numpy', 'sklearn', 'yaml') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- damaged and foreign records ------------------------------------------------------

# file -> (a key to remove, a field to damage, the damage, what the message says about it)
DAMAGE: dict[str, tuple[str, str, Any, str]] = {
    rundir.PULL: ("data_version", "dvc_targets", "data.dvc", "expected a list, found 'data.dvc'"),
    rundir.DATA_REPORT: (
        "checks.1.severity",
        "checks.0.severity",
        "fatal",
        "expected one of critical, warning, info, found 'fatal'",
    ),
    rundir.MODEL_CARD: (
        "digest",
        "feature_schema.1.kind",
        "text",
        "expected one of numeric, categorical, found 'text'",
    ),
    rundir.EVALUATION: (
        "candidate.operational.size_mb",
        "comparisons.roc_auc.ci_low",
        "low",
        "expected a number, found 'low'",
    ),
    rundir.GATE_REPORT: (
        "gates.0.verdict",
        "verdict",
        "maybe",
        "expected one of pass, fail, inconclusive, found 'maybe'",
    ),
    rundir.PARITY: ("onnx_digest", "rows_over_tolerance", 1.5, "expected an integer, found 1.5"),
    rundir.SMOKE: ("expected", "expected.0", None, "expected a number, found null"),
    records.PR_FILE: ("head_sha", "number", "7", "expected an integer, found '7'"),
    records.MONITOR_REPORT: (
        "problems.decay",
        "features.0.drifted",
        "no",
        "expected a boolean, found 'no'",
    ),
    rundir.EXPERIMENTS: (
        "winner",
        "experiments.0.verdict",
        "passed",
        "expected one of pass, fail, inconclusive, found 'passed'",
    ),
}


def _written(run_dir: Path, name: str, data: Any) -> Path:
    (run_dir / name).write_text(as_file(data), encoding="utf-8")
    return run_dir


def _walk(data: Any, dotted: str) -> tuple[Any, str | int]:
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parents:
        data = data[part]
    return data, last


def _refused(tmp_path: Path, name: str, data: Any) -> str:
    with pytest.raises(RunDirError) as caught:
        load_record(_written(tmp_path, name, data), name)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in message and "pydantic" not in message
    assert message.startswith(f"{tmp_path / name}: ")
    assert "re-run the step that writes it" in message and "'ci-ml " in message
    return message


@pytest.mark.parametrize("name", list(RECORDS))
def test_a_record_with_a_key_removed_names_it(name: str, tmp_path: Path) -> None:
    removed = DAMAGE[name][0]
    data = samples()[name]
    parent, key = _walk(data, removed)
    del parent[key]
    assert f"field '{removed}' is missing" in _refused(tmp_path, name, data)


@pytest.mark.parametrize("name", list(RECORDS))
def test_a_field_of_the_wrong_type_is_named_with_what_was_found(name: str, tmp_path: Path) -> None:
    _, field, value, says = DAMAGE[name]
    data = samples()[name]
    parent, key = _walk(data, field)
    parent[key] = value
    assert f"field '{field}': {says}" in _refused(tmp_path, name, data)


@pytest.mark.parametrize("name", list(RECORDS))
@pytest.mark.parametrize("empty", [{}, []], ids=["object", "list"])
def test_an_empty_record_is_refused(name: str, empty: Any, tmp_path: Path) -> None:
    assert "schema_version" in _refused(tmp_path, name, empty)


@pytest.mark.parametrize("name", list(RECORDS))
def test_a_record_of_another_version_is_refused(name: str, tmp_path: Path) -> None:
    data = {**samples()[name], "schema_version": 7}
    message = _refused(tmp_path, name, data)
    assert "schema_version 7 is not supported (this ci-ml reads 1)" in message


@pytest.mark.parametrize("name", list(RECORDS))
def test_a_record_from_before_versions_is_refused(name: str, tmp_path: Path) -> None:
    data = samples()[name]
    del data["schema_version"]
    message = _refused(tmp_path, name, data)
    assert "field 'schema_version' is missing: an older ci-ml wrote it" in message


def test_the_message_names_the_step_that_writes_the_file(tmp_path: Path) -> None:
    data = {**samples()[rundir.GATE_REPORT], "schema_version": "1"}
    message = _refused(tmp_path, rundir.GATE_REPORT, data)
    assert f"('ci-ml gate --run-dir {tmp_path}')" in message
    monitor = {**samples()[records.MONITOR_REPORT], "status": "worse"}
    assert f"'ci-ml monitor --out {tmp_path}'" in _refused(
        tmp_path, records.MONITOR_REPORT, monitor
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("gates.2.value", {"delta": 0.01}, "field 'gates.2.value.candidate' is missing"),
        ("gates.2.value", "high", "expected an integer, a number or an object, found 'high'"),
        ("gates.1.location", {"file": "ci-ml.yaml", "line": 2, "col": 1}, "'gates.1.location.col'"),
        ("candidate.digest", 12, "field 'candidate.digest': expected text, found 12"),
    ],
)
def test_damage_inside_a_union_or_a_nested_object_names_the_deepest_field(
    field: str, value: Any, says: str, tmp_path: Path
) -> None:
    data = samples()[rundir.GATE_REPORT]
    parent, key = _walk(data, field)
    parent[key] = value
    assert says in _refused(tmp_path, rundir.GATE_REPORT, data)


def test_a_non_finite_number_is_refused(tmp_path: Path) -> None:
    text = as_file(samples()[rundir.EVALUATION]).replace('"delta": 0.0119', '"delta": NaN', 1)
    (tmp_path / rundir.EVALUATION).write_text(text, encoding="utf-8")
    with pytest.raises(RunDirError, match=r"field 'comparisons\.roc_auc\.delta': expected a fin"):
        load_record(tmp_path, rundir.EVALUATION)


def test_a_missing_or_broken_file_says_what_rundir_says(tmp_path: Path) -> None:
    with pytest.raises(RunDirError) as missing:
        load_record(tmp_path, rundir.GATE_REPORT)
    with pytest.raises(RunDirError) as expected:
        rundir.require(tmp_path, rundir.GATE_REPORT)
    assert str(missing.value) == str(expected.value)
    (tmp_path / rundir.GATE_REPORT).write_text('{"verdict": ', encoding="utf-8")
    with pytest.raises(RunDirError, match=r"gate-report\.json is not valid JSON"):
        load_record(tmp_path, rundir.GATE_REPORT)


# --- the files a real run writes ------------------------------------------------------


def _open_project(path: Path) -> Any:
    from ci_ml.project import open_project

    return open_project(path)


@pytest.fixture(scope="module")
def real_run(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The run files of the example project, with export: a first model, then a comparison
    with it in production. File name (the first model's get a ``first-`` prefix) -> text."""
    from ci_ml.registry import open_registry

    root = tmp_path_factory.mktemp("records") / "project"
    shutil.copytree(pulled_example, root, symlinks=True)
    config = yaml.safe_load((root / "ci-ml.yaml").read_text(encoding="utf-8"))
    config["export"] = {"format": "onnx"}
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = _open_project(root / "ci-ml.yaml")
    run_dir = rundir.new_run_dir(project.runs_dir)
    results = api.run(project, run_dir)
    texts = {
        f"first-{n}": (run_dir / n).read_text() for n in (rundir.EVALUATION, rundir.GATE_REPORT)
    }
    registry = open_registry(project.config.registry.url, root=project.root)
    registry.promote(results["register"].version, None, by="tests")
    api.evaluate(project, run_dir)
    api.gate(project, run_dir)
    texts.update({n: (run_dir / n).read_text() for n in RECORDS if (run_dir / n).is_file()})
    return texts


REAL = [
    rundir.PULL,
    rundir.DATA_REPORT,
    rundir.MODEL_CARD,
    rundir.EVALUATION,
    rundir.GATE_REPORT,
    rundir.PARITY,
    rundir.SMOKE,
    f"first-{rundir.EVALUATION}",
    f"first-{rundir.GATE_REPORT}",
]


@pytest.mark.slow
@pytest.mark.parametrize("file", REAL)
def test_the_files_of_a_real_run_are_their_records(
    file: str, real_run: dict[str, str], tmp_path: Path
) -> None:
    name = file.removeprefix("first-")
    data = json.loads(real_run[file])
    assert next(iter(data)) == "schema_version" and data["schema_version"] == 1
    Draft202012Validator(schema_of(name)).validate(data)
    record = load_record(_written(tmp_path, name, data), name)
    assert write_record(tmp_path, name, record).read_text(encoding="utf-8") == as_file(data)
    assert as_file(data) == real_run[file]


def test_a_model_card_from_before_model_file_means_a_skops_model(tmp_path: Path) -> None:
    sample = {k: v for k, v in samples()[rundir.MODEL_CARD].items() if k != "model_file"}
    card = load_record(_written(tmp_path, rundir.MODEL_CARD, sample), rundir.MODEL_CARD)
    assert card.model_file == "model.skops"
    wrong = {**sample, "model_file": "model.pkl"}
    with pytest.raises(RunDirError, match=r"model_file"):
        load_record(_written(tmp_path, rundir.MODEL_CARD, wrong), rundir.MODEL_CARD)
