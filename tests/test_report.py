"""Tests for ci_ml.report: the verdict comes first, failing checks before passing ones, and the
Markdown tables stay tables whatever the values hold."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ci_ml.config import GateConfig
from ci_ml.evaluation.changes import changes
from ci_ml.gates import as_dicts, data_gate, threshold_gate, verdict
from ci_ml.quality import Check
from ci_ml.records import BaselineSummary, DataReport, Evaluation, GateReport, ModelCard
from ci_ml.report import SHOWN_CHANGES, render
from tests.conftest import validated_data_report
from tests.evaluation.test_changes import STAGE, candidate, card

CHECKS = [
    Check("dataset_not_empty", True, observed={"train": 80, "holdout": 20}),
    Check(
        "expect_column_mean_to_be_between",
        False,
        source="suite",
        column="Assets",
        severity="warning",
        observed=25000.0,
    ),
    Check("target_valid", True, column="Status", unexpected_count=0, unexpected_percent=0.0),
    Check(
        "expect_column_values_to_be_between",
        False,
        source="suite",
        column="Age",
        unexpected_count=1,
        unexpected_percent=0.0225,
        sample=[250],
    ),
]


COMPARISON = {
    "confidence": 0.95,
    "resamples": 2000,
    "seed": 0,
    "first_model": "pass",
    "unusable_baseline": "fail",
    "fork_pull_request": "approve",
    "min_rows": 100,
}


def data_report(checks: list[Check]) -> DataReport:
    """A data report made the way api.validate makes it."""
    return validated_data_report(checks)


def gate_report(metrics: dict[str, float], data: DataReport, **fields: Any) -> GateReport:
    """A gate report made the way api.gate makes it."""
    results = [data_gate(data)]
    results += [
        threshold_gate(GateConfig(metric="roc_auc", min=0.8), metrics, line=None),
        threshold_gate(GateConfig(metric="log_loss", max=0.5), metrics, line=None),
    ]
    record = {
        "verdict": verdict(results),
        "reasons": [r.reason for r in results if r.verdict != "pass"],
        "gates": as_dicts(results),
        "candidate": {"digest": "ab" * 32},
        "baseline": None,
        "data_version": "md5:0123.dir",
        "config": "ci-ml.yaml",
        "comparison": COMPARISON,
        "inputs": {"config": "c" * 64, "data_report": "d" * 64, "evaluation": None, "parity": None},
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    return GateReport.model_validate({**record, **fields})


EVALUATION = Evaluation.model_validate(
    {
        "task": "classification",
        "data_version": "md5:0123.dir",
        "rows": {"train": 80, "holdout": 20},
        "positive_class": "bad",
        "candidate": {
            "digest": "ab" * 32,
            "metrics": {"roc_auc": 0.7123456, "log_loss": 0.45},
            "operational": {"latency_p50_ms": 0.01, "latency_p95_ms": 0.02, "size_mb": 0.1},
        },
        "baseline": None,
        "comparisons": {},
        "slices": [],
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"C": 1.0, "penalty": "l2"},
            "size_bytes": 100_000,
        },
        "created_at": "2026-12-01T00:00:00+00:00",
    }
)


def cells(row: str) -> list[str]:
    """The cells of a Markdown table row (an escaped pipe does not split)."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def tables(markdown: str) -> list[list[str]]:
    found: list[list[str]] = []
    current: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def table_with(markdown: str, column: str) -> list[str]:
    """The table whose header has ``column`` (its header and separator rows included)."""
    return next(t for t in tables(markdown) if column in [c.strip() for c in cells(t[0])])


def test_a_failing_report_starts_with_the_verdict_and_why() -> None:
    data = data_report(CHECKS)
    text = render(gate_report(EVALUATION.candidate.metrics, data), data, EVALUATION)
    lines = text.splitlines()
    assert lines[0] == "## ❌ ci-ml verdict: **FAIL**"
    # then every reason, the data checks first: a critical check failed on Age
    assert lines[2].startswith("- ")
    assert "first: expect_column_values_to_be_between on column 'Age'" in lines[2]


def test_failing_checks_come_before_passing_ones() -> None:
    data = data_report(CHECKS)
    text = render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, EVALUATION)
    rows = table_with(text, "severity")[2:]
    names = [cells(row)[1].strip() for row in rows]
    assert names == [
        "expect_column_values_to_be_between",
        "expect_column_mean_to_be_between",
        "dataset_not_empty",
        "target_valid",
    ]
    marks = [cells(row)[0].strip() for row in rows]
    assert marks == ["❌", "⚠️", "✅", "✅"]
    age_row = rows[0]
    assert "| Age |" in age_row and "250" in age_row and "0.0225" in age_row
    assert "### Data checks: 2 of 4 passed" in text


def test_the_gates_table_shows_rules_and_values() -> None:
    data = data_report([Check("target_valid", True)])
    text = render(gate_report({"roc_auc": 0.7123456, "log_loss": 0.45}, data), data, EVALUATION)
    assert text.splitlines()[:3] == [
        "## ❌ ci-ml verdict: **FAIL**",
        "",
        "- roc_auc = 0.7123 is out of bounds",
    ]
    roc = next(row for row in table_with(text, "result") if "roc_auc threshold" in row)
    assert "❌" in roc and "0.7123 is out of bounds" in roc
    rule = next(row for row in table_with(text, "rule") if "roc_auc threshold" in row)
    assert "pass if roc_auc ≥ 0.8" in rule
    assert "Candidate `abababababab`" in text
    assert "production none (first model)" in text
    assert "### Metrics (20 holdout rows" in text
    table = table_with(text, "metric")
    candidate = [c.strip() for c in cells(table[0])].index("candidate")
    values = {cells(row)[0].strip(): cells(row)[candidate].strip() for row in table[2:]}
    assert values["roc_auc"] == "0.7123"


def test_a_passing_report_folds_the_checks_away() -> None:
    data = data_report([Check("target_valid", True), Check("dataset_not_empty", True)])
    text = render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, None)
    assert text.splitlines()[0] == "## ✅ ci-ml verdict: **PASS**"
    assert "<details><summary>All checks</summary>" in text
    assert "### Metrics" not in text  # no evaluation given
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_inconclusive_has_its_own_mark() -> None:
    report = gate_report(
        {"roc_auc": 0.9, "log_loss": 0.3},
        data_report([Check("target_valid", True)]),
        verdict="inconclusive",
        reasons=["interval straddles the margin"],
        gates=[],
    )
    assert render(report, None, None).splitlines()[:3] == [
        "## ⚠️ ci-ml verdict: **INCONCLUSIVE**",
        "",
        "- interval straddles the margin",
    ]


def test_pipes_and_newlines_in_values_do_not_break_tables() -> None:
    checks = [
        Check(
            "expect_column_values_to_be_in_set",
            False,
            column="tags|v2",
            sample=["a|b", "two\nlines", None, 0.5],
            unexpected_percent=3.0,
        )
    ]
    data = data_report(checks)
    report = gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data)
    text = render(report, data, EVALUATION)
    for table in tables(text):
        widths = {len(cells(row)) for row in table}
        assert len(widths) == 1, table
    (row,) = table_with(text, "severity")[2:]
    assert r"a\|b, two lines, null, 0.5000" in row


def test_model_parameters_and_links() -> None:
    data = data_report([Check("target_valid", True)])
    text = render(
        gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data),
        data,
        EVALUATION,
        links={"run": "https://example.invalid/run/1"},
    )
    assert "<details><summary>Model parameters</summary>" in text
    penalty = next(line for line in text.splitlines() if line.startswith("| penalty |"))
    assert "l2" in [c.strip() for c in cells(penalty)]
    assert text.rstrip().endswith("[run](https://example.invalid/run/1)")


def _with_curves(task: str, compared: bool) -> Evaluation:
    """EVALUATION with the curves of ``task`` (production's too when ``compared``)."""
    import numpy as np

    from ci_ml.evaluation.curves import curves
    from ci_ml.evaluation.predict import Predictions

    rng = np.random.default_rng(0)
    if task == "regression":
        y = rng.normal(100, 20, 300)
        ours, theirs = y + rng.normal(0, 5, 300), y + rng.normal(3, 9, 300)
    else:
        y = (rng.random(300) < 0.3).astype(float)
        ours = np.clip(0.4 * y + 0.5 * rng.random(300), 0, 0.89)  # nothing above 0.9
        theirs = rng.random(300)
    found = curves(task, Predictions(y, ours), Predictions(y, theirs) if compared else None)
    return EVALUATION.model_copy(update={"curves": found})


def mermaid_blocks(markdown: str) -> list[list[str]]:
    blocks = re.findall(r"```mermaid\n(.*?)```", markdown, flags=re.S)
    return [block.splitlines() for block in blocks]


def test_the_curves_are_line_charts_folded_after_the_metrics() -> None:
    data = data_report([Check("target_valid", True)])
    evaluation = _with_curves("classification", compared=True)
    text = render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, evaluation)
    assert text.startswith("## ✅ ci-ml verdict")  # the verdict stays first
    fold = "<details><summary>Curves: ROC, precision-recall, calibration"
    assert f"{fold} (candidate vs production, the same 20 rows)</summary>" in text
    assert text.index("### Metrics") < text.index(fold)
    folded = text[text.index(fold) : text.index("</details>", text.index(fold))]
    roc, pr, calibration = mermaid_blocks(folded)
    assert roc[1:5] == [
        "xychart-beta",
        '    title "ROC: candidate blue, production orange, chance grey"',
        '    x-axis "false positive rate" 0 --> 1',
        '    y-axis "true positive rate" 0 --> 1',
    ]
    assert '"plotColorPalette": "#8c959f, #ff7f0e, #1f77b4"' in roc[0]  # grey, orange, blue
    lines = [line for line in roc if line.startswith("    line [")]
    chance, production, candidate = ([float(v) for v in ln[10:-1].split(", ")] for ln in lines)
    curve = evaluation.curves[0] if evaluation.curves else None
    assert curve is not None and curve.production is not None
    assert chance == pytest.approx([i / 20 for i in range(21)])
    assert candidate == pytest.approx(curve.candidate.y, abs=5e-5)  # 4 significant digits
    assert production == pytest.approx(curve.production.y, abs=5e-5)
    assert sum(line.startswith("    line [") for line in pr) == 2  # no reference line
    assert '    x-axis "predicted probability (bin centre)" 0.05 --> 0.95' in calibration
    assert "Rows per bin of predicted probability (0-0.1, …, 0.9-1): candidate " in folded
    assert "Bins without rows, drawn across: candidate 0.9-1." in folded


def test_the_candidates_curves_alone_and_regressions_curves() -> None:
    data = data_report([Check("target_valid", True)])
    alone = render(
        gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data),
        data,
        _with_curves("classification", compared=False),
    )
    assert "(the candidate on 20 rows)</summary>" in alone
    roc = mermaid_blocks(alone)[1]
    assert roc[2] == '    title "ROC: candidate blue, chance grey"'
    assert '"plotColorPalette": "#8c959f, #1f77b4"' in roc[0]

    regression = render(
        gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data),
        data,
        _with_curves("regression", compared=True),
    )
    assert "Curves: predicted vs actual, residual quantiles" in regression
    pva, residuals = mermaid_blocks(regression)[1:]
    title = "Predicted vs actual: candidate blue, production orange, actual grey"
    assert pva[2] == f'    title "{title}"'
    labels = re.findall(r'"([-\d.]+)"', pva[3])
    assert len(labels) == 10 and [float(v) for v in labels] == sorted(float(v) for v in labels)
    assert '    x-axis "quantile" 0.05 --> 0.95' in residuals
    assert residuals[5].startswith("    line [0, 0, 0")  # the zero line
    assert "Rows per bin" not in regression


def test_a_report_without_curves_has_no_curves_section() -> None:
    data = data_report([Check("target_valid", True)])
    text = render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, EVALUATION)
    assert "Curves" not in text and "line [" not in text


# --- what changed since production ----------------------------------------------------


def _compared(candidate: ModelCard, production: dict[str, Any]) -> str:
    """The report of EVALUATION compared with ``production`` (a model.json) as version v1."""
    baseline = {
        "version": "v1",
        "digest": "cd" * 32,
        "problem": None,
        "unread": False,
        "metrics": {},
        "params": None,
        "data_version": None,
    }
    found = changes(candidate, production, "v1")
    evaluation = EVALUATION.model_copy(
        update={"changes": found, "baseline": BaselineSummary.model_validate(baseline)}
    )
    data = data_report([Check("target_valid", True)])
    return render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, evaluation)


def section(markdown: str, heading: str) -> str:
    """The text from ``heading`` to the next heading or fold of the report."""
    start = markdown.index(heading)
    end = re.search(
        r"^(###|<details><summary>(Model parameters|Curves))", markdown[start + 1 :], re.M
    )
    return markdown[start : start + 1 + end.start()] if end else markdown[start:]


def test_what_changed_lists_the_params_and_data_that_differ() -> None:
    ours = candidate(
        configured_params={"max_iter": 3, "max_depth": 1},
        data_version="md5:" + "f" * 32 + ".dir",
        training_rows=3600,
    )
    text = _compared(ours, card())
    shown = section(text, "### What changed since production v1")
    params = table_with(shown, "param")
    assert [[c.strip() for c in cells(row)] for row in params[2:]] == [
        ["learning_rate", "0.05", "—"],
        ["max_depth", "—", "1"],
        ["max_iter", "200", "3"],
    ]
    assert "**Params** (ci-ml.yaml's `model.params`): 3 changed" in shown
    data = [[c.strip() for c in cells(row)] for row in tables(shown)[1][2:]]
    assert data == [
        ["data version", "md5:00000000….dir", "md5:ffffffff….dir"],
        ["training rows", "3562", "3600 (+38)"],
    ]
    assert "Unchanged: the estimator, the trainer, 2 feature columns." in shown
    # before the curves and the rest: a reviewer reads it next to the metrics
    assert text.index("### What changed") < text.index("<details><summary>Model parameters")


def test_the_same_params_and_data_list_nothing() -> None:
    shown = section(_compared(candidate(), card()), "### What changed")
    assert tables(shown) == []
    assert shown.strip().splitlines()[-1] == (
        "Nothing changed: the estimator, the trainer, the data version, the training rows, "
        "2 params, 2 feature columns are the same as production's."
    )


def test_an_old_production_card_is_not_recorded_rather_than_diffed() -> None:
    old = {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {}}
    shown = section(_compared(candidate(), old), "### What changed")
    assert tables(shown) == []  # nothing claimed to have changed
    assert (
        "- params, data version, training rows, feature columns: not recorded for production v1"
        in shown
    )
    assert "Unchanged: the estimator, the trainer." in shown


def test_a_dvc_candidate_against_a_built_in_production_says_why_no_params() -> None:
    ours = candidate(configured_params={}, dvc=STAGE)
    shown = section(_compared(ours, card()), "### What changed")
    (row,) = table_with(shown, "param")[2:]
    assert [c.strip() for c in cells(row)] == [
        "trained by",
        "ci-ml's trainer",
        "dvc stage train (dvc.yaml)",
    ]
    assert "**Model**: 1 changed" in shown  # not "Params": the params were not compared
    assert "- params: production v1 was trained by ci-ml's trainer" in shown
    assert "- dependencies: production v1 was not trained by a dvc.yaml stage" in shown
    assert "**Data**: none changed." in shown


def test_many_changed_dependencies_fold_after_the_first_few() -> None:
    deps = {f"src/part{i}.py": "md5:" + f"{i}" * 32 for i in range(9)}
    theirs = card(configured_params={}, dvc=STAGE)
    ours = candidate(configured_params={}, dvc={**STAGE, "deps": {**STAGE["deps"], **deps}})
    shown = section(_compared(ours, theirs), "### What changed")
    open_part = shown.split("<details>")[0]
    assert "**Params** (the dvc stage's): none changed." in open_part
    assert "**Data**: 9 changed" in open_part
    assert len(tables(open_part)[0]) == 2 + SHOWN_CHANGES
    assert "| dependency src/part0.py | — | md5:00000000… |" in open_part
    assert "<details><summary>The other 3 changes</summary>" in shown
    assert (
        "Unchanged: the estimator, the trainer, the data version, the training rows, 2 params, "
        "2 dependencies, 2 feature columns." in shown
    )


def test_a_first_model_or_an_older_record_has_no_what_changed() -> None:
    data = data_report([Check("target_valid", True)])
    text = render(gate_report({"roc_auc": 0.9, "log_loss": 0.3}, data), data, EVALUATION)
    assert "What changed" not in text
