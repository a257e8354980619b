"""Monitoring on the example credit data: drift, prediction drift, decay, sources, the CLI.

The production models come from ``conftest.py``: real fits on the example data, registered
as ``ci-ml run`` registers them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ci_ml.errors import BadInputError, DataError
from ci_ml.monitor import check as monitor
from ci_ml.monitor.sources import Recent, conform, parse_since, predict_scores
from ci_ml.records import MONITOR_REPORT, MonitorReport, read_record
from ci_ml.registry import open_registry
from tests.conftest import REPO as CHECKOUT
from tests.conftest import run_cli
from tests.github.test_issues import install_issue_handlers
from tests.github_api.fixtures import TOKEN
from tests.monitor.conftest import METRICS, Example, make_production

REPO = "octo-org/models"


def check(example: Example, frame: pd.DataFrame, **options: Any) -> MonitorReport:
    settings = monitor.MonitorSettings(**options)
    return monitor.check(example.production, Recent(frame, {"kind": "file", "path": "t"}), settings)


def shifted(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Income x 1.5 and a third of the applicants moved to Home = other; no outcomes."""
    out = frame.drop(columns=["Status"])
    out["Income"] = out["Income"] * 1.5
    moved = np.random.default_rng(seed).random(len(out)) < 1 / 3
    out.loc[moved, "Home"] = "other"
    return out


def flipped(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["Status"] = out["Status"].map({"good": "bad", "bad": "good"})
    return out


def drifted(record: MonitorReport) -> set[str]:
    return {f.feature for f in record.features if f.drifted}


# -- the three statuses on the example data -------------------------------------------------


def test_an_unchanged_sample_is_fine(example):
    record = check(example, example.holdout)

    assert (record.status, record.reasons, drifted(record)) == ("fine", [], set())
    assert not any(p.drifted for p in record.predictions)
    assert [d.metric for d in record.decay] == sorted(METRICS)  # recorded ones only
    assert all(d.verdict != "decayed" for d in record.decay)
    assert record.labelled.rows == len(example.holdout)
    json.dumps(record.model_dump(mode="json"), allow_nan=False)


def test_a_shifted_income_and_home_mix_flag_exactly_those_features(example):
    record = check(example, shifted(example.holdout))

    assert record.status == "drifting"
    assert drifted(record) == {"Income", "Home"}
    income = next(f for f in record.features if f.feature == "Income")
    assert income.details["recent"]["mean"] == pytest.approx(
        1.5 * income.details["reference"]["mean"], rel=0.15
    )
    assert record.decay == [] and "no 'Status' column" in (record.labelled.note or "")
    assert record.reasons[0] == "drift in 2 of 13 features: Income, Home"


def test_flipped_outcomes_flag_decay(example):
    record = check(example, flipped(example.holdout))

    assert record.status == "stale"
    assert drifted(record) == set()
    verdicts = {d.metric: d.verdict for d in record.decay}
    assert verdicts == dict.fromkeys(sorted(METRICS), "decayed")
    assert (record.problems.drift, record.problems.decay) == (False, True)


def test_the_report_puts_the_status_first_and_the_drifted_features_on_top(example):
    from ci_ml.monitor.report import render

    drifting = render(check(example, shifted(example.holdout)))
    stale = render(check(example, flipped(example.holdout)))

    assert drifting.startswith("## ⚠️ ci-ml monitor: **DRIFTING** — drift in 2 of 13 features")
    table = drifting.split("<details>")[0]
    assert "| ⚠️ drifted | Income | numeric |" in table
    assert "| ⚠️ drifted | Home | categorical | other " in table
    assert "_Not judged: no outcomes" in drifting
    assert stale.startswith("## ❌ ci-ml monitor: **STALE** — performance decayed on 4 of 4")
    assert "| ❌ decayed | roc_auc |" in stale


def test_too_few_labelled_rows_leave_decay_unjudged(example):
    recent = example.holdout.copy()
    recent.loc[recent.index[10:], "Status"] = None

    record = check(example, recent)

    assert record.decay == [] and record.labelled.rows == 10
    assert record.status == "fine"


def test_a_recent_file_without_a_feature_is_refused(example):
    with pytest.raises(DataError, match="lacks the feature column"):
        check(example, example.holdout.drop(columns=["Income"]))


# -- the reference of the predictions and of decay: the holdout at the gate ------------------


def test_predictions_and_decay_are_compared_with_the_holdout_at_the_gate(example):
    record = check(example, example.holdout.sample(frac=0.5, random_state=0))

    reference = record.reference
    assert (reference.rows, reference.predictions) == (len(example.train), "holdout")
    assert reference.prediction_rows == len(example.holdout)
    assert record.notes == []
    assert {d.gate_rows for d in record.decay} == {len(example.holdout)}
    assert all("both samples" in d.change_method for d in record.decay)


def test_a_version_without_holdout_predictions_still_works_and_says_so(older):
    from ci_ml.monitor.decay import AS_EXACT
    from ci_ml.monitor.report import render

    record = check(older, older.holdout)

    assert record.status == "fine"
    assert (record.reference.predictions, record.reference.prediction_rows) == (
        "training",
        len(older.train),
    )
    (note,) = record.notes
    assert "registered without holdout-predictions.parquet" in note
    assert all(d.gate_rows is None and d.change_method == AS_EXACT for d in record.decay)
    assert f"> [!NOTE]\n> {note}." in render(record)


@pytest.fixture(scope="module")
def forest(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Forest:
    """Issue 19's repro: a RandomForest on 3,000 shuffled rows; the other 1,454 are new."""
    rows = pd.read_csv(pulled_example / "data" / "credit_data.csv").sample(frac=1, random_state=0)
    model = {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 200},
    }
    example = make_production(pulled_example, tmp_path_factory, model, rows=rows.iloc[:3000])
    return Forest(example, rows.iloc[3000:].reset_index(drop=True))


@dataclass(frozen=True)
class Forest:
    example: Example
    new: pd.DataFrame  # rows the forest never saw, from the same data


def psi_of(entry: Any) -> float:
    return float(next(m.value for m in entry.measures if m.name == "psi"))


def test_a_random_forest_raises_no_false_alarm_on_three_unchanged_samples(forest):
    parts = np.array_split(np.arange(len(forest.new)), 3)
    records = [check(forest.example, forest.new.iloc[part]) for part in parts]

    assert [(r.status, r.reasons) for r in records] == [("fine", [])] * 3
    assert all(psi_of(r.predictions[0]) < 0.1 for r in records)


def test_against_its_training_rows_the_forest_predictions_would_drift(forest):
    # why the holdout is the reference: a forest fits its training rows closely
    production = forest.example.production
    settings = monitor.MonitorSettings()
    train = conform(production.reference, production.kinds, "train")
    new = conform(forest.new, production.kinds, "new")
    scores = (predict_scores(production, train), predict_scores(production, new))

    against_training = monitor.prediction_drift(production, *scores, settings)
    against_holdout = check(forest.example, forest.new).predictions

    assert against_training[0].drifted and psi_of(against_training[0]) > 0.5
    assert not against_holdout[0].drifted and psi_of(against_holdout[0]) < 0.1


def test_a_random_forest_still_flags_exactly_the_shifted_features(forest):
    record = check(forest.example, shifted(forest.new))

    assert record.status == "drifting"
    assert drifted(record) == {"Income", "Home"}


def test_one_class_of_outcomes_leaves_decay_unjudged_in_one_sentence(example):
    from ci_ml.monitor.report import render

    record = check(example, example.holdout[example.holdout["Status"] == "good"])

    assert record.decay == []  # (the rows of one class drift, rightly)
    assert record.labelled.note == "the labelled rows hold only the class 'good'; decay needs both"
    line = next(x for x in render(record).splitlines() if x.startswith("_Not judged"))
    assert line == f"_Not judged: {record.labelled.note}._"


# -- sources --------------------------------------------------------------------------------


def request_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = frame.drop(columns=["Status"])
    return features.astype(object).where(features.notna(), None).to_dict("records")


def write_request_log(directory: Path, rows: list[dict[str, Any]]) -> None:
    """The log as ci-ml serve writes it (its own writer), plus a line cut off mid-write."""
    from ci_ml.serve.requestlog import RequestLog

    log = RequestLog(directory, sample=1.0, max_bytes=200_000, max_files=100, seed=0)
    log.offer("abc123abc123", rows, [{"label": "good", "probability": 0.1}] * len(rows))
    log.close()
    last = sorted(directory.glob("requests-*.jsonl"))[-1]
    with last.open("a", encoding="utf-8") as stream:
        stream.write('{"ts": "2024-05-01T00:00:00Z", "row": {"Age": 3')


def test_the_request_log_is_a_source(example, tmp_path):
    write_request_log(tmp_path / "log", request_rows(example.holdout))
    sources = monitor.Sources(requests=tmp_path / "log", since="1d")

    record = monitor.run(tmp_path, _registry(example), tmp_path / "out", sources)

    source = record.recent.source
    assert (source["kind"], source["rows"], source["skipped_lines"]) == (
        "requests",
        len(example.holdout),
        1,
    )
    assert source["files"] > 1  # rotated files are all read
    assert source["model_versions"] == {"abc123abc123": len(example.holdout)}
    assert record.status == "fine" and record.decay == []


def test_labels_from_their_own_file_judge_decay(example, tmp_path):
    write_request_log(tmp_path / "log", request_rows(example.holdout))
    flipped(example.holdout).to_csv(tmp_path / "labels.csv", index=False)
    sources = monitor.Sources(requests=tmp_path / "log", labels=tmp_path / "labels.csv")

    record = monitor.run(tmp_path, _registry(example), tmp_path / "out", sources)

    assert record.status == "stale"
    assert record.labelled.source["path"] == str(tmp_path / "labels.csv")


def test_requests_before_since_are_left_out(example, tmp_path):
    write_request_log(tmp_path / "log", request_rows(example.holdout.head(50)))
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    with pytest.raises(DataError, match="no logged request rows since"):
        monitor.load_recent(tmp_path, monitor.Sources(requests=tmp_path / "log", since=future))


def test_since_takes_durations_and_times():
    now = datetime(2024, 5, 8, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(BadInputError, match="neither a duration"):
        parse_since("last week")


def test_a_folder_of_files_is_stacked(example, tmp_path):
    folder = tmp_path / "recent"
    folder.mkdir()
    example.holdout.iloc[:400].to_csv(folder / "a.csv", index=False)
    example.holdout.iloc[400:].to_parquet(folder / "b.parquet", index=False)

    recent = monitor.load_recent(tmp_path, monitor.Sources(recent=folder))

    assert len(recent.frame) == len(example.holdout)
    assert recent.source["files"] == 2


def _registry(example: Example) -> Any:
    return open_registry(str(example.registry))


# -- the command line -----------------------------------------------------------------------


def monitor_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``ci-ml monitor`` in a subprocess, as a user runs it."""
    return run_cli("monitor", "--out", str(cwd / "out"), *args, cwd=cwd, env=env)


def monitor_here(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``ci-ml monitor`` in this process (no second start of Python and scikit-learn)."""
    from typer.testing import CliRunner

    from ci_ml.cli.app import app

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(
            app, ["monitor", "--out", str(cwd / "out"), *args], env=env, catch_exceptions=False
        )
    finally:
        os.chdir(old)


def test_cli_fine_exits_0_and_writes_both_reports(example, tmp_path):
    example.holdout.to_csv(tmp_path / "recent.csv", index=False)

    done = monitor_cli(tmp_path, "--registry", str(example.registry), "--recent", "recent.csv")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("status: fine")
    record = read_record(tmp_path / "out" / MONITOR_REPORT, MonitorReport)
    markdown = (tmp_path / "out" / "monitor-report.md").read_text()
    assert record.status == "fine"
    assert markdown.startswith("## ✅ ci-ml monitor: **FINE** — no drift in 13 features")


def test_cli_drifting_exits_1_and_says_so_in_json(example, tmp_path):
    shifted(example.holdout).to_parquet(tmp_path / "recent.parquet", index=False)
    args = ["--registry", str(example.registry), "--recent", "recent.parquet", "--json"]

    done = monitor_here(tmp_path, *args)

    assert done.exit_code == 1
    assert MonitorReport.model_validate_json(done.stdout).status == "drifting"
    assert done.stderr.strip() == (
        "ci-ml: monitor: drifting — drift in 2 of 13 features: Income, Home."
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--recent", "a.csv", "--requests", "log"], "exactly one of --recent"),
        (["--recent", "missing.csv"], "--recent missing.csv: no such file or folder"),
        (["--recent", "a.csv", "--reference", "nope.csv"], "nope.csv: no such file"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(example, tmp_path, args, problem):
    example.holdout.head(50).to_csv(tmp_path / "a.csv", index=False)

    done = monitor_here(tmp_path, "--registry", str(example.registry), *args)

    assert done.exit_code == 2
    assert problem in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_cli_outcomes_in_another_encoding_exit_2_naming_values_and_classes(example, tmp_path):
    recent = example.holdout.assign(Status=example.holdout["Status"].str.capitalize())
    recent.to_csv(tmp_path / "recent.csv", index=False)

    done = monitor_here(tmp_path, "--registry", str(example.registry), "--recent", "recent.csv")

    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == [
        "ci-ml: the outcomes in 'Status' hold 'Bad', 'Good', but the production model's "
        "classes are 'bad', 'good': 'Bad', 'Good' is none of them; write the outcomes as the "
        "model's classes (or name the outcome column with --target)."
    ]


def test_cli_opens_one_issue_updates_it_and_starts_retraining(
    example, tmp_path, github_api, github_openapi, monkeypatch
):
    issues = install_issue_handlers(monkeypatch)
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_API_URL": github_api.url,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_RUN_ID": "4242",
    }
    args = ["--registry", str(example.registry), "--recent", "recent.csv", "--github"]
    args += ["--dispatch", "ml-pipeline.yml", "--dispatch-input", "reason=drift"]
    runs = []
    for seed in (0, 1):  # the next run: the same kind of drift, other rows moved
        shifted(example.holdout, seed).to_csv(tmp_path / "recent.csv", index=False)
        runs.append(monitor_here(tmp_path, *args, env=env))

    assert [r.exit_code for r in runs] == [1, 1], runs[0].stderr
    assert "drift issue #1 created" in runs[0].stderr
    assert "drift issue #1 updated" in runs[1].stderr
    (issue,) = issues.of(REPO)
    assert issue["title"] == "ci-ml monitor: data drift in Income, Home"
    assert "<!-- ci-ml:monitor/drift -->\n## ⚠️ ci-ml monitor: **DRIFTING**" in issue["body"]
    assert f"https://github.com/{REPO}/actions/runs/4242" in issue["body"]
    dispatches = github_api.requests_for("actions/create-workflow-dispatch")
    schema, _ = github_openapi.request_schema(
        github_openapi.operation("actions/create-workflow-dispatch")
    )
    assert len(dispatches) == 2
    assert all(github_openapi.errors(d.json, schema) == [] for d in dispatches)
    assert dispatches[0].json["inputs"] == {"reason": "drift"}
    assert summary.read_text().count("ci-ml monitor: **DRIFTING**") == 2


@pytest.mark.slow
def test_cli_pulls_dvc_tracked_recent_data(example, project):
    done = monitor_cli(
        project, "--registry", str(example.registry), "--recent", "data/credit_data.csv"
    )

    assert done.returncode == 0, done.stderr
    record = read_record(project / "out" / MONITOR_REPORT, MonitorReport)
    assert record.recent.source["dvc"] == "data.dvc"
    assert record.labelled.rows == record.recent.rows  # the data has outcomes


# -- the reusable workflow ------------------------------------------------------------------

WORKFLOW = CHECKOUT / ".github" / "workflows" / "ml-monitor.yml"


def retrain_cases() -> dict[str, tuple[dict[str, Any], bool]]:
    def context(monitor: bool, status: str, on: str = "drifting", workflow: str = "ml.yml"):
        inputs = {"monitor": monitor, "retrain-on": on, "retrain-workflow": workflow}
        return {"inputs": inputs, "needs": {"monitor": {"outputs": {"status": status}}}}

    return {
        "fine": (context(True, "fine"), False),
        "drifting": (context(True, "drifting"), True),
        "stale": (context(True, "stale"), True),
        "drifting, retrain on stale only": (context(True, "drifting", "stale"), False),
        "stale, retrain on stale only": (context(True, "stale", "stale"), True),
        "monitor failed (no status)": (context(True, ""), False),
        "plain periodic retrain": (context(False, ""), True),
        "no retrain workflow": (context(True, "stale", workflow=""), False),
    }


def test_the_workflow_retrains_only_when_the_status_calls_for_it():
    from tests.test_workflows import load, node

    condition = load(WORKFLOW)["jobs"]["retrain"]["if"]
    assert condition.startswith("always() && ")  # runs after a skipped or failed monitor
    cases = retrain_cases()
    request = {
        "expression": condition.removeprefix("always() && "),
        "contexts": [c for c, _ in cases.values()],
    }

    answer = node("--eval", stdin=json.dumps(request))

    assert dict(zip(cases, answer["results"], strict=True)) == {
        name: expected for name, (_, expected) in cases.items()
    }


def test_each_job_asks_only_for_its_own_write():
    from tests.test_workflows import jobs, levels

    writes = {
        name: {scope for scope, level in levels(job["permissions"]).items() if level == 2}
        for name, job in jobs(WORKFLOW).items()
    }
    assert writes == {"monitor": {"issues"}, "retrain": {"actions"}}


def test_the_docs_caller_is_a_valid_workflow(tmp_path):
    import re
    import shutil

    from tests.test_workflows import jobs, levels, load, node

    text = (WORKFLOW.parent.parent.parent / "docs" / "monitoring.md").read_text(encoding="utf-8")
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL) if "OWNER/ci-ml" in b
    ]
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(WORKFLOW, workflows)
    caller = workflows / "caller.yml"
    caller.write_text(re.sub(r"OWNER/ci-ml/(\S+)@SHA", r"$/\1", block), encoding="utf-8")

    answer = node("--root", str(tmp_path), ".github/workflows/caller.yml")

    assert answer["files"][0]["errors"] == []
    assert max(levels(load(caller)["permissions"]).values()) <= 1
    (job,) = jobs(caller).values()
    for called in jobs(WORKFLOW).values():
        for scope, level in levels(called["permissions"]).items():
            assert levels(job["permissions"]).get(scope, 0) >= level, scope


@pytest.mark.slow
def test_end_to_end_after_ci_ml_run(project):
    """The real pipeline registers the model and its reference; the monitor reads them."""
    assert run_cli("run", cwd=project).returncode == 0
    version = json.loads(run_cli("registry", "list", "--json", cwd=project).stdout)
    promoted = run_cli("registry", "promote", version["versions"][0]["version"], cwd=project)
    assert promoted.returncode == 0, promoted.stderr

    done = monitor_cli(project, "--recent", "data/credit_data.csv", "--json")

    assert done.returncode == 0, done.stderr
    record = MonitorReport.model_validate_json(done.stdout)
    assert record.status == "fine"
    assert record.production.version == version["versions"][0]["version"]
    assert "latency_p95_ms" not in {d.metric for d in record.decay}
    assert record.decay and record.reference.rows > 3000
    assert record.reference.predictions == "holdout" and record.notes == []


def test_an_empty_registry_has_nothing_to_monitor(tmp_path):
    with pytest.raises(BadInputError, match="no model is in production"):
        monitor.load_production(open_registry(str(tmp_path / "empty")), tmp_path / "out")
