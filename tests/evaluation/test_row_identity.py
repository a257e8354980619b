"""Production is never judged on the rows it trained on, whatever happens to the data's columns.

Each test puts a real model in production on the example data, changes the data or the config
the way a team does (a new column, a dropped one, another split seed), retrains and checks
which rows the comparison used and the verdict it gave.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.evaluation.test_baseline import change_gate, configure, establish, run

pytestmark = pytest.mark.slow

FOREST = {
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 200},
}
NO_REGRESSION = [{"metric": "roc_auc", "change": {"margin": -0.01, "inconclusive": "approve"}}]
DATA = "data/credit_data.csv"


def version_data(project: Path, frame: pd.DataFrame) -> None:
    """Write the data file and version it with DVC, as a team commits a data change."""
    frame.to_csv(project / DATA, index=False)
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data"], cwd=project, check=True)


def allow_columns(project: Path, columns: list[str]) -> None:
    """The suite's column set, as the team edits it with the data."""
    path = project / "expectations/credit_data.json"
    suite = json.loads(path.read_text())
    for entry in suite["expectations"]:
        if entry["type"] == "expect_table_columns_to_match_set":
            entry["kwargs"]["column_set"] = columns
    path.write_text(json.dumps(suite, indent=2))


def compared(results: dict[str, Any]) -> tuple[int, int]:
    baseline = results["evaluate"]["baseline"]
    return baseline["rows_compared"], baseline["rows_excluded"]


def test_a_new_column_keeps_every_row_where_it_was(project: Path) -> None:
    establish(project, FOREST)
    frame = pd.read_csv(project / DATA)
    frame["Branch"] = np.random.default_rng(7).choice(["N", "S", "E", "W"], len(frame))
    version_data(project, frame)
    allow_columns(project, list(frame.columns))
    configure(project, FOREST, NO_REGRESSION)

    results = run(project)

    gate = change_gate(results)
    rows, excluded = compared(results)
    assert excluded == 0 and rows == results["evaluate"]["rows"]["holdout"]
    assert results["gate"]["verdict"] != "fail", gate["reason"]
    assert abs(gate["value"]["delta"]) < 0.01


def test_data_drop_changes_neither_the_split_nor_what_the_data_gates_see(project: Path) -> None:
    establish(project, FOREST)
    config = yaml.safe_load((project / "ci-ml.yaml").read_text())
    configure(project, FOREST, NO_REGRESSION, data={**config["data"], "drop": ["Debt"]})

    results = run(project)

    assert results["validate"]["success"], results["validate"]["blocking"]
    gate = change_gate(results)
    assert "needs column" not in gate["reason"]  # production is given the Debt it uses
    assert compared(results)[1] == 0
    assert results["gate"]["verdict"] != "fail", gate["reason"]


def test_a_new_split_leaves_productions_training_rows_out(project: Path) -> None:
    establish(project, FOREST)
    config = yaml.safe_load((project / "ci-ml.yaml").read_text())
    data = {**config["data"], "holdout": {"fraction": 0.2, "seed": 7}}
    configure(project, FOREST, NO_REGRESSION, data=data)

    results = run(project)

    rows, excluded = compared(results)
    holdout = results["evaluate"]["rows"]["holdout"]
    # about 80% of a fresh holdout is rows production trained on
    assert 0.6 * holdout < excluded < 0.95 * holdout and rows + excluded == holdout
    gate = change_gate(results)
    assert gate["value"]["n"] == rows
    assert gate["value"]["delta"] > -0.05, gate["reason"]  # not the -0.15 of a biased judge
    text = (project / ".ci-ml/runs/latest/report.md").read_text()
    assert f"the {excluded} production trained on are left out" in text


def test_too_few_new_rows_apply_the_unusable_baseline_policy(project: Path) -> None:
    establish(project, FOREST)
    config = yaml.safe_load((project / "ci-ml.yaml").read_text())
    data = {**config["data"], "holdout": {"fraction": 0.2, "seed": 7}}
    configure(project, FOREST, NO_REGRESSION, data=data, comparison={"min_rows": 800})

    results = run(project)

    gate = change_gate(results)
    assert results["gate"]["verdict"] == "fail"
    assert "fewer than comparison.min_rows (800)" in gate["reason"]
    assert "policy: fail" in gate["reason"]


def test_identity_columns_gone_from_the_file_fail_closed(project: Path) -> None:
    config = yaml.safe_load((project / "ci-ml.yaml").read_text())
    establish(project, FOREST, data={**config["data"], "drop": ["Debt"]})
    frame = pd.read_csv(project / DATA).drop(columns=["Debt"])
    version_data(project, frame)
    allow_columns(project, list(frame.columns))
    configure(project, FOREST, NO_REGRESSION, data=config["data"])

    results = run(project)

    gate = change_gate(results)
    assert results["gate"]["verdict"] == "fail"
    assert "row identity column(s) Debt are not in the data" in gate["reason"]
    assert "data.id" in gate["reason"]
