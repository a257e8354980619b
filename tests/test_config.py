"""Tests for ci_ml.config: a valid file loads with its defaults, and every kind of bad file gives
exit 2 with one line naming the file, the field, what was found and what is allowed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ci_ml.config import Config, dump_config, gate_lines, load_config
from ci_ml.errors import ConfigError
from tests.conftest import REPO, run_cli


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``run_cli`` on this working tree, even if the venv holds a stale non-editable copy."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return run_cli(*args, cwd=cwd, env={"PYTHONPATH": path})


MINIMAL = """\
data:
  path: data/table.csv
  target: label
model:
  estimator: sklearn.linear_model.LogisticRegression
gates:
  - metric: roc_auc
    min: 0.7
"""


def write(tmp_path: Path, text: str, name: str = "ci-ml.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_config_loads() -> None:
    config = load_config(REPO / "ci-ml.yaml")
    raw = yaml.safe_load((REPO / "ci-ml.yaml").read_text())
    assert config.data.target == raw["data"]["target"]
    assert config.data.positive_class == raw["data"]["positive_class"]
    assert config.model.estimator == raw["model"]["estimator"]
    assert config.model.params == raw["model"]["params"]
    assert [(g.metric, g.min, g.max) for g in config.gates] == [
        (g["metric"], g.get("min"), g.get("max")) for g in raw["gates"]
    ]


def test_a_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data.holdout.fraction == 0.2
    assert config.data.holdout.seed == 42
    assert config.data.holdout.file is None
    assert config.data.task is None  # inferred from the data later
    assert config.model.seed == 0
    assert config.model.threshold == 0.5
    assert config.expectations is None
    assert config.registry.url == ".ci-ml/registry"
    assert config.runs_dir == ".ci-ml/runs"


def test_dump_config_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    again = Config.model_validate(yaml.safe_load(dump_config(config)))
    assert again == config


def test_config_check_prints_the_effective_config(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    done = cli("config", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = yaml.safe_load(done.stdout)
    # what the user wrote, and the defaults filled in
    assert shown["data"]["target"] == "label"
    assert shown["data"]["holdout"] == {
        "fraction": 0.2,
        "seed": 42,
        "file": None,
        "min_class_count": 10,
    }
    assert shown["model"]["threshold"] == 0.5
    assert shown["registry"] == {"url": ".ci-ml/registry"}
    (gate,) = shown["gates"]
    assert (gate["metric"], gate["min"], gate["max"]) == ("roc_auc", 0.7, None)
    assert "ci-ml.yaml: valid" in done.stderr


def test_gate_lines_point_at_each_gate(tmp_path: Path) -> None:
    text = MINIMAL + "  - metric: log_loss\n    max: 0.5\n"
    path = write(tmp_path, text)
    lines = text.splitlines()
    assert gate_lines(path) == [
        lines.index("  - metric: roc_auc") + 1,
        lines.index("  - metric: log_loss") + 1,
    ]


# --- bad files -----------------------------------------------------------------------


def replace(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


BAD_CONFIGS = {
    # name: (file text, fragments the one-line message must contain)
    "missing data": (
        "model:" + MINIMAL.split("model:")[1],
        ["field 'data'", "missing", "required"],
    ),
    "missing data.target": (
        replace("  target: label\n", ""),
        ["field 'data.target'", "missing"],
    ),
    "typo in a key": (
        replace("  target: label\n", "  target: label\n  tagret: other\n"),
        [
            "field 'data.tagret'",
            "not a known setting",
            "'other'",
            "did you mean 'target'",
            "allowed here: path, target",
        ],
    ),
    "holdout fraction above 1": (
        replace("  target: label\n", "  target: label\n  holdout:\n    fraction: 1.5\n"),
        ["field 'data.holdout.fraction'", "found 1.5", "less than 1"],
    ),
    "estimator and command": (
        replace(
            "  estimator: sklearn.linear_model.LogisticRegression\n",
            "  estimator: sklearn.linear_model.LogisticRegression\n  command: make train\n",
        ),
        ["field 'model'", "found {'estimator'", "exactly one of 'estimator'", "'command'"],
    ),
    "empty gate list": (
        MINIMAL.split("gates:")[0] + "gates: []\n",
        ["field 'gates'", "found []", "gate list is empty"],
    ),
    "gate without bound": (
        replace("    min: 0.7\n", ""),
        ["field 'gates.0'", "'roc_auc'", "a gate needs 'min', 'max'"],
    ),
    "gate min above max": (
        replace("    min: 0.7\n", "    min: 0.9\n    max: 0.1\n"),
        ["field 'gates.0'", "'min' (0.9) is above 'max' (0.1)"],
    ),
    "a list, not a mapping": (
        "- data\n- model\n- gates\n",
        ["found a list", "mapping with 'data', 'model', 'gates'"],
    ),
    "positive class yes unquoted": (
        replace("  target: label\n", "  target: label\n  positive_class: Yes\n"),
        ["field 'data.positive_class'", "found True", "YAML reads an unquoted yes/no", "quote"],
    ),
    "positive class off unquoted": (
        replace("  target: label\n", "  target: label\n  positive_class: off\n"),
        ["field 'data.positive_class'", "found False", "quote the label"],
    ),
    "a column named no unquoted": (
        replace("  target: label\n", "  target: label\n  drop: [no]\n"),
        ["field 'data.drop.0'", "found False", "as a boolean", "quote it"],
    ),
    "slice gate without slices": (
        replace("    min: 0.7\n", "    change: {margin: 0}\n    slices: true\n"),
        ["'slices: true'", "no 'slices' section"],
    ),
}

# what `config check` refuses beyond the schema: everything `ci-ml run` would refuse later
# that needs no data (name: (file text, fragments of the one-line message))
NEEDS_NO_DATA = {
    "unknown metric in metrics": (
        MINIMAL + "metrics: [roc_auc, acuracy]\n",
        ["field 'metrics.1'", "unknown metric 'acuracy'", "allowed: roc_auc"],
    ),
    "unknown gate metric": (
        replace("metric: roc_auc", "metric: roc_aux"),
        ["field 'gates.0.metric'", "unknown metric 'roc_aux'", "allowed: "],
    ),
    "gate metric of the other task": (
        replace("  target: label\n", "  target: label\n  task: regression\n"),
        ["field 'gates.0.metric'", "'roc_auc' is a classification metric", "task is regression"],
    ),
    "metrics of two tasks": (
        MINIMAL + "metrics: [rmse]\n",
        ["'roc_auc' is a classification metric", "metrics.0 ('rmse') makes the task regression"],
    ),
    "change gate on an operational metric": (
        MINIMAL + "  - metric: latency_p95_ms\n    change: {margin: 0}\n",
        ["field 'gates.1.metric'", "operational metric", "not 'change'"],
    ),
    "estimator that cannot be imported": (
        replace("LogisticRegression", "LogisticRegresion"),
        ["model.estimator", "'sklearn.linear_model.LogisticRegresion' cannot be imported"],
    ),
    "estimator that is a function": (
        replace("sklearn.linear_model.LogisticRegression", "sklearn.metrics.roc_auc_score"),
        ["model.estimator", "is not an estimator class with fit()"],
    ),
    "a transformer as estimator": (
        replace("sklearn.linear_model.LogisticRegression", "sklearn.preprocessing.StandardScaler"),
        ["model.estimator", "has no predict()", "classifier or a regressor"],
    ),
    "a regressor for a classification task": (
        replace("  target: label\n", "  target: label\n  task: classification\n").replace(
            "linear_model.LogisticRegression", "ensemble.RandomForestRegressor"
        ),
        ["RandomForestRegressor is a regressor, but the task is classification"],
    ),
    "a classifier without probabilities": (
        replace("  target: label\n", "  target: label\n  task: classification\n").replace(
            "linear_model.LogisticRegression", "svm.LinearSVC"
        ),
        ["sklearn.svm.LinearSVC", "has no predict_proba()"],
    ),
    "an unknown param": (
        replace("LogisticRegression\n", "LogisticRegression\n  params: {max_iterations: 5}\n"),
        ["model.params", "LogisticRegression rejects them", "max_iterations"],
    ),
    "a param value out of range": (
        replace("LogisticRegression\n", "LogisticRegression\n  params: {C: -1}\n"),
        ["model.params", "'C' parameter", "Got -1"],
    ),
    "export of an estimator ONNX cannot convert": (
        replace("linear_model.LogisticRegression", "neighbors.KNeighborsClassifier")
        + "export: {}\n",
        ["'export' is set", "cannot convert model.estimator", "KNeighborsClassifier"],
    ),
    "export of a booster the converters cannot take": (
        replace(
            "sklearn.linear_model.LogisticRegression\n",
            "lightgbm.LGBMClassifier\n  params: {boosting: rf}\n",
        )
        + "export: {}\n",
        [
            "'export' is set",
            "cannot convert model.estimator lightgbm.LGBMClassifier",
            "LightGBM with boosting_type='rf' is not supported (allowed: 'gbdt', 'dart', 'goss')",
            "docs/frameworks.md",
        ],
    ),
    "a suite that does not exist": (
        MINIMAL + "expectations: {suite: nowhere.json}\n",
        ["nowhere.json", "expectation suite not found"],
    ),
    "a suite entry with a bad kwarg": (
        MINIMAL + "expectations: {suite: suite.json}\n",
        ["suite.json: expectation #1 (expect_column_values_to_be_between)", "'min_value'"],
    ),
}
BAD_SUITE = (
    '{"expectations": [{"type": "expect_column_values_to_be_between", '
    '"kwargs": {"column": "age", "min_value": "eighteen"}}]}'
)


def assert_one_clean_line(done_stderr: str, fragments: list[str]) -> str:
    lines = done_stderr.strip().splitlines()
    assert len(lines) == 1, done_stderr
    assert "Traceback" not in done_stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, fragments = BAD_CONFIGS[case]
    write(tmp_path, text, "bad.yaml")
    done = cli("config", "check", "--config", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    line = assert_one_clean_line(done.stderr, fragments)
    assert line.startswith("ci-ml: ") and "bad.yaml:" in line


@pytest.mark.parametrize("case", list(NEEDS_NO_DATA))
def test_config_check_refuses_what_run_would_refuse_later(tmp_path: Path, case: str) -> None:
    text, fragments = NEEDS_NO_DATA[case]
    write(tmp_path, text, "bad.yaml")
    write(tmp_path, BAD_SUITE, "suite.json")
    done = cli("config", "check", "--config", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    line = assert_one_clean_line(done.stderr, fragments)
    assert line.startswith("ci-ml: bad.yaml: ") or "suite" in case, line


def test_config_check_needs_no_data(tmp_path: Path) -> None:
    # the example's config, without its data pulled: valid
    text = (REPO / "ci-ml.yaml").read_text()
    (tmp_path / "expectations").mkdir()
    suite = REPO / "expectations" / "credit_data.json"
    (tmp_path / "expectations" / suite.name).write_text(suite.read_text())
    write(tmp_path, text)
    done = cli("config", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier", "catboost.CatBoostClassifier"]
)
def test_config_check_takes_the_export_of_a_booster(tmp_path: Path, estimator: str) -> None:
    text = replace("sklearn.linear_model.LogisticRegression", estimator) + "export: {}\n"
    write(tmp_path, text)
    done = cli("config", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = replace("  target: label\n", "  target: label\n   task: classification\n")
    bad_line = text.splitlines().index("   task: classification") + 1
    write(tmp_path, text, "bad.yaml")
    done = cli("config", "check", "--config", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_clean_line(done.stderr, ["bad.yaml", f"line {bad_line}", "YAML"])


def test_missing_config_file(tmp_path: Path) -> None:
    done = cli("config", "check", "--config", "nowhere.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_clean_line(done.stderr, ["nowhere.yaml", "no config file", "--config"])


def test_an_empty_file_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"empty\.yaml: found an empty file"):
        load_config(write(tmp_path, "", "empty.yaml"))


def test_unknown_top_level_key_lists_the_top_level_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + "gatse: []\n"))
    message = str(info.value)
    assert "field 'gatse'" in message
    assert "did you mean 'gates'" in message
    assert "allowed here: data, expectations, model, metrics, gates" in message


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    text = "data: {}\nmodel: {}\ngates: [{}]\nextra1: 1\nextra2: 2\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "more)" in message
    assert "\n" not in message
