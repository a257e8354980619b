"""`ci-ml combine`: one report for a matrix of pipelines (ci_ml/report/combine.py).

The legs are copies of one real run of the example project, each changed as a leg of a
matrix would differ (its verdict, its production's metrics), through its JSON files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ci_ml import api, rundir
from ci_ml.github.client import GitHubClient
from ci_ml.project import open_project
from ci_ml.publish import publish, publish_combined
from ci_ml.report.combine import combine, leg_name, read_legs
from tests.conftest import run_cli
from tests.github_api.server import GitHubAPIServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_run(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one real `ci-ml run` of the example (a first model: pass)."""
    dest = tmp_path_factory.mktemp("combined") / "project"
    shutil.copytree(pulled_example, dest, symlinks=True)
    project = open_project(dest / "ci-ml.yaml")
    directory = rundir.new_run_dir(project.runs_dir)
    api.run(project, directory)
    return directory


def edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def compared(production: float, delta: float) -> Any:
    """Give the leg a production model whose roc_auc is ``production``."""

    def change(record: dict[str, Any]) -> None:
        candidate = production + delta
        record["candidate"]["metrics"]["roc_auc"] = candidate
        record["comparisons"]["roc_auc"] = {
            "metric": "roc_auc",
            "candidate": candidate,
            "production": production,
            "delta": delta,
            "ci_low": delta - 0.01,
            "ci_high": delta + 0.01,
            "confidence": 0.95,
            "method": "paired bootstrap",
            "n": 1115,
        }

    return change


def failed(record: dict[str, Any]) -> None:
    record["verdict"] = "fail"
    record["reasons"] = ["roc_auc change: -0.0300 is below the margin"]


@pytest.fixture
def legs(one_run: Path, tmp_path: Path) -> list[Path]:
    """Three downloaded artifacts: credit-run (pass, +0.02), limit-run (pass, +0.05 over a
    weaker production) and fraud-run (fail)."""
    made = []
    for name in ("credit", "limit", "fraud"):
        folder = tmp_path / "legs" / f"{name}-run"
        shutil.copytree(one_run, folder)
        made.append(folder)
    edit(made[0] / "evaluation.json", compared(0.82, 0.02))
    edit(made[1] / "evaluation.json", compared(0.80, 0.05))
    edit(made[2] / "gate-report.json", failed)
    (made[2] / "report.md").write_text("## ❌ ci-ml verdict: **FAIL**\n\nfraud's own\n")
    return made


def table_rows(text: str) -> list[list[str]]:
    lines = text.split("\n\n")[1].splitlines()
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_one_row_per_leg_with_metrics_beside_production(legs: list[Path]) -> None:
    text = combine(read_legs(legs))

    assert text.splitlines()[0] == "## ❌ ci-ml matrix: 3 legs — 2 pass, 1 fail"
    header = text.split("\n\n")[1].splitlines()[0]
    assert header.startswith("| leg | verdict | model | roc_auc | accuracy |")
    rows = table_rows(text)
    assert [r[0] for r in rows] == ["credit", "★ limit", "fraud"]  # limit's roc_auc is best
    assert [r[1] for r in rows] == ["✅ pass", "✅ pass", "❌ fail"]
    assert rows[0][2] == "HistGradientBoostingClassifier"
    assert rows[0][3] == "0.8400 (prod 0.8200) Δ +0.0200 [+0.010, +0.030]"
    assert rows[2][3] == "0.8440"  # no production to compare with: the value alone
    assert [r[-1] for r in rows] == ["yes, on merge", "yes, on merge", "no"]
    assert "★ marks the best passing leg by roc_auc." in text
    # then each leg's own report, folded, its headings under the matrix's
    assert "<details><summary>❌ fraud: FAIL</summary>" in text
    assert "### ❌ ci-ml verdict: **FAIL**\n\nfraud's own" in text
    assert text.count("<details><summary>✅") == 2


def test_no_best_mark_without_two_passing_legs_to_rank(legs: list[Path]) -> None:
    edit(legs[1] / "gate-report.json", failed)

    text = combine(read_legs(legs))

    assert [r[0] for r in table_rows(text)] == ["credit", "limit", "fraud"]
    assert "★" not in text


def test_leg_names_come_from_the_artifact_folder_or_are_given(legs: list[Path]) -> None:
    assert leg_name(legs[0]) == "credit"
    assert leg_name(legs[0].parent) == "legs"
    named = read_legs([legs[0]], {"big-model": legs[1]})
    assert [leg.name for leg in named] == ["credit", "big-model"]


def test_the_cli_prints_it_and_refuses_bad_input(legs: list[Path], tmp_path: Path) -> None:
    done = run_cli("combine", *map(str, legs), "--output", "combined.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (tmp_path / "combined.md").read_text(encoding="utf-8")
    assert done.stdout.startswith("## ❌ ci-ml matrix: 3 legs")

    empty = tmp_path / "empty-run"
    empty.mkdir()
    cases = {
        (str(legs[0]), str(empty)): "has no gate-report.json",
        (str(legs[0]), "--leg", f"credit={legs[1]}"): "two run directories are the leg 'credit'",
        ("--leg", "credit"): "is not NAME=DIR",
        (): "no run directories to combine",
    }
    for args, message in cases.items():
        refused = run_cli("combine", *args, cwd=tmp_path)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert refused.stdout == ""


def test_one_combined_comment_beside_the_legs_and_no_status(
    legs: list[Path], github_api: GitHubAPIServer, github_env: dict[str, str]
) -> None:
    def client() -> GitHubClient:
        return GitHubClient(env=github_env, sleep=lambda _s: None)

    leg = publish(
        legs[0],
        "leg report\n",
        client,
        env=github_env,
        pipeline="credit",
        status_context="ci-ml/gates/credit",
    )
    quiet = publish(
        legs[1],
        "leg report\n",
        client,
        env=github_env,
        pipeline="limit",
        status_context="ci-ml/gates/limit",
        comment=False,
    )
    text = combine(read_legs(legs))
    first = publish_combined(text, client, env=github_env)
    second = publish_combined(text + "again\n", client, env=github_env)

    assert any("comment created" in d for d in leg.done)
    assert not any("comment" in d for d in quiet.done)  # its status only
    assert first.done[-1].startswith("combined comment created on #")
    assert second.done[-1].startswith("combined comment updated on #")
    comments = list(github_api.state.comments.values())
    markers = sorted(c["body"].split("\n", 1)[0] for c in comments)
    assert markers == [
        "<!-- ci-ml:ci-ml/gate/combined=matrix -->",
        "<!-- ci-ml:ci-ml/gate/pipeline=credit -->",
    ]
    statuses = [r.json["context"] for r in github_api.requests_for("repos/create-commit-status")]
    assert statuses == ["ci-ml/gates/credit", "ci-ml/gates/limit"]  # legs' own; none combined
    assert (Path(github_env["GITHUB_STEP_SUMMARY"])).read_text().count("ci-ml matrix") == 2
