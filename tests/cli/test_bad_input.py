"""Bad input through the real ``ci-ml`` command line (issue 13, "Tests and bar").

Every case feeds one bad thing — a config, a data file, a suite, a run file, a model file, a
registry, a flag or an HTTP request — and asserts what DESIGN.md promises: the exit code, one
line on stderr starting with ``ci-ml: `` that names the bad thing, no traceback and no
"unexpected error", the registry byte for byte as it was, and nothing half-written (no temp or
dot file, no new folder, no run file changed).

The example project is trained once for the module (``api.run``, with the ONNX export so that
parity.json exists); each case works on its own copy of that trained project.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from typer.testing import CliRunner

from ci_ml import api, rundir
from ci_ml.cli.app import app
from ci_ml.data import data_version
from ci_ml.project import open_project
from ci_ml.registry import open_registry
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.server import serve_in_thread
from ci_ml.serve.service import ServeSettings

RUN = ".ci-ml/runs/latest"
REGISTRY = ".ci-ml/registry"
Setup = Callable[[Path], None]


@pytest.fixture(scope="module")
def trained(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project after one real ``run`` (registered, nothing in production)."""
    root = tmp_path_factory.mktemp("bad-input") / "trained"
    shutil.copytree(pulled_example, root, symlinks=True)
    config = yaml.safe_load((root / "ci-ml.yaml").read_text())
    for gate in config["gates"]:
        if gate["metric"].startswith("latency"):  # speed is for benchmarks, not verdicts
            gate["max"] = 1e6
    config["export"] = {"format": "onnx"}
    (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    found = open_project(root / "ci-ml.yaml")
    results = api.run(found, rundir.new_run_dir(found.runs_dir))
    assert results["gate"].verdict == "pass", results["gate"].reasons
    assert "register" in results
    return root


# --- what every case asserts --------------------------------------------------------------


def tree(root: Path) -> tuple[dict[str, str], set[str]]:
    """sha256 of every file under ``root`` and every folder (git's and DVC's own state aside)."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] == ".git" or rel.startswith(".dvc/tmp"):
            continue
        if path.is_symlink():
            files[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            dirs.add(rel)
        else:
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, dirs


def under(files: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: v for k, v in files.items() if k.startswith(prefix + "/")}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("ci-ml: "), lines[0]
    return lines[0]


def assert_clean(output: str) -> None:
    assert "Traceback" not in output, output
    assert "unexpected error" not in output, output


@dataclass(frozen=True)
class Case:
    """One bad input: what to break, the command, its exit code and what the line names."""

    id: str
    args: list[str]
    code: int
    needle: str
    setup: Setup | None = None
    writes: tuple[str, ...] = ()  # files the command may (re)write, e.g. a blocking gate report
    env: dict[str, str] = field(default_factory=dict)


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, args, prog_name="ci-ml", catch_exceptions=False, env=env)


@pytest.fixture
def copy(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained project, the current folder."""
    root = tmp_path / "project"
    shutil.copytree(trained, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("CI_ML_REGISTRY_URL", raising=False)
    monkeypatch.delenv("CI_ML_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return root


def check(case: Case, root: Path) -> None:
    if case.setup is not None:
        case.setup(root)
    files, dirs = tree(root)
    result = invoke(case.args, case.env)
    assert_clean(result.output)
    assert result.exit_code == case.code, result.output
    line = one_line(result.stderr)
    assert case.needle.lower() in line.lower(), f"{case.needle!r} not named in: {line}"
    after, after_dirs = tree(root)
    assert under(after, REGISTRY) == under(files, REGISTRY), "the registry changed"
    assert after_dirs == dirs, f"folders changed: {after_dirs ^ dirs}"
    changed = {k for k in set(files) | set(after) if files.get(k) != after.get(k)}
    allowed = {f"{run_id(root)}/{name}" for name in case.writes}
    assert changed <= allowed, f"files written or changed: {sorted(changed - allowed)}"


def run_id(root: Path) -> str:
    return (root / RUN).resolve().relative_to(root.resolve()).as_posix()


# --- setups -------------------------------------------------------------------------------


def edit_config(change: Callable[[dict[str, Any]], Any]) -> Setup:
    def setup(root: Path) -> None:
        config = yaml.safe_load((root / "ci-ml.yaml").read_text())
        change(config)
        (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    return setup


def put(section: str, key: str, value: Any) -> Setup:
    def change(config: dict[str, Any]) -> None:
        node = config
        for part in section.split(".") if section else []:
            node = node.setdefault(part, {})
        node[key] = value

    return edit_config(change)


def remove(section: str, key: str) -> Setup:
    return edit_config(lambda config: config[section].pop(key))


def raw_config(text: str) -> Setup:
    def setup(root: Path) -> None:
        (root / "ci-ml.yaml").write_text(text)

    return setup


def replace_in_config(old: str, new: str) -> Setup:
    def setup(root: Path) -> None:
        path = root / "ci-ml.yaml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return setup


def gates(*found: dict[str, Any]) -> Setup:
    return put("", "gates", list(found))


def write_file(name: str, content: str | bytes) -> Setup:
    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(root: Path) -> None:
        for one in setups:
            one(root)

    return setup


# config keys that every valid file needs, for raw YAML texts
BASE = """\
data: {path: data/credit_data.csv, target: Status, task: classification, positive_class: bad}
model: {estimator: sklearn.ensemble.HistGradientBoostingClassifier}
gates: [{metric: roc_auc, min: 0.5}]
"""


def config_cases() -> list[Case]:
    check_args = ["config", "check"]
    cases = [
        ("yaml-unclosed", raw_config("data: [unclosed\n"), "ci-ml.yaml"),
        ("yaml-tab", raw_config("data:\n\tpath: x\n"), "ci-ml.yaml"),
        ("yaml-list", raw_config("- data\n- model\n"), "ci-ml.yaml"),
        ("yaml-empty", raw_config(""), "ci-ml.yaml"),
        ("yaml-scalar", raw_config("just text\n"), "ci-ml.yaml"),
        ("yaml-duplicate-key", raw_config(BASE + "gates: [{metric: f1, min: 0.1}]\n"), "twice"),
        ("no-data", raw_config(BASE.split("\n", 1)[1]), "data"),
        ("no-gates-key", edit_config(lambda c: c.pop("gates")), "gates"),
        ("data-path-list", put("data", "path", ["a", "b"]), "data.path"),
        ("data-target-missing", remove("data", "target"), "data.target"),
        ("unknown-top-key", put("", "modle", {"x": 1}), "modle"),
        ("unknown-data-key", put("data", "targt", "Status"), "targt"),
        ("unknown-model-key", put("model", "estimater", "x"), "estimater"),
        ("task-enum", put("data", "task", "clasification"), "clasification"),
        ("fraction-high", put("data.holdout", "fraction", 1.5), "fraction"),
        ("fraction-zero", put("data.holdout", "fraction", 0), "fraction"),
        ("fraction-text", put("data.holdout", "fraction", "a fifth"), "fraction"),
        ("seed-text", put("data.holdout", "seed", "forty-two"), "seed"),
        ("data-id-empty", put("data", "id", []), "data.id"),
        ("data-drop-text", put("data", "drop", 5), "data.drop"),
        ("overlap-percent", put("data", "max_overlap_percent", 150), "max_overlap_percent"),
        ("gates-empty", gates(), "gates"),
        ("gates-not-list", put("", "gates", {"metric": "roc_auc"}), "gates"),
        ("gate-no-metric", gates({"min": 0.5}), "metric"),
        ("gate-no-bound", gates({"metric": "roc_auc"}), "roc_auc"),
        ("gate-unknown-metric", gates({"metric": "roc_aucc", "min": 0.5}), "roc_aucc"),
        ("gate-other-task", gates({"metric": "rmse", "max": 1.0}), "rmse"),
        ("gate-min-text", gates({"metric": "roc_auc", "min": "high"}), "min"),
        ("gate-unknown-key", gates({"metric": "roc_auc", "minimum": 0.5}), "minimum"),
        (
            "gate-margin-text",
            gates({"metric": "roc_auc", "change": {"margin": "small"}}),
            "margin",
        ),
        (
            "gate-inconclusive-enum",
            gates({"metric": "roc_auc", "change": {"inconclusive": "maybe"}}),
            "maybe",
        ),
        (
            "gate-slices-without-section",
            gates({"metric": "roc_auc", "min": 0.5, "slices": True}),
            "slices",
        ),
        ("metrics-unknown", put("", "metrics", ["roc_auc", "f2"]), "f2"),
        ("metrics-other-task", put("", "metrics", ["roc_auc", "r2"]), "r2"),
        ("metrics-not-list", put("", "metrics", "roc_auc"), "metrics"),
        ("confidence-high", put("comparison", "confidence", 1.5), "confidence"),
        ("resamples-low", put("comparison", "resamples", 5), "resamples"),
        ("first-model-enum", put("comparison", "first_model", "sometimes"), "sometimes"),
        ("unusable-baseline-enum", put("comparison", "unusable_baseline", "skip"), "skip"),
        ("min-rows-low", put("comparison", "min_rows", 1), "min_rows"),
        (
            "estimator-missing-class",
            put("model", "estimator", "sklearn.ensemble.NoSuchModel"),
            "NoSuchModel",
        ),
        ("estimator-missing-module", put("model", "estimator", "nosuchpkg.Model"), "nosuchpkg"),
        ("estimator-not-dotted", put("model", "estimator", "RandomForest"), "RandomForest"),
        ("estimator-function", put("model", "estimator", "os.system"), "os.system"),
        (
            "estimator-transformer",
            put("model", "estimator", "sklearn.preprocessing.StandardScaler"),
            "StandardScaler",
        ),
        (
            "estimator-regressor",
            both(
                put("model", "estimator", "sklearn.linear_model.Ridge"), put("model", "params", {})
            ),
            "Ridge",
        ),
        ("estimator-empty", put("model", "estimator", ""), "estimator"),
        ("estimator-number", put("model", "estimator", 5), "model.estimator"),
        ("estimator-and-command", put("model", "command", "python train.py"), "command"),
        ("params-unknown", put("model", "params", {"n_estimatorz": 5}), "n_estimatorz"),
        ("params-list", put("model", "params", [1, 2]), "model.params"),
        ("threshold-high", put("model", "threshold", 1.0), "threshold"),
        ("trusted-types-text", put("model", "trusted_types", "numpy.int64"), "trusted_types"),
        (
            "positive-class-yes",
            replace_in_config("positive_class: bad", "positive_class: Yes"),
            "positive_class",
        ),
        ("positive-class-true", put("data", "positive_class", True), "positive_class"),
        ("slices-columns-text", put("", "slices", {"columns": "Home"}), "slices.columns"),
        ("slices-columns-empty", put("", "slices", {"columns": []}), "slices.columns"),
        ("slices-min-size", put("slices", "min_size", 1), "min_size"),
        ("slices-min-class-count", put("slices", "min_class_count", 0), "min_class_count"),
        ("export-format", put("export", "format", "tflite"), "tflite"),
        ("export-tolerance", put("export", "tolerance", -1), "tolerance"),
        ("export-dtype", put("export", "numeric_dtype", "float16"), "float16"),
        ("deploy-target-type", put("deploy", "targets", [{"type": "ftp"}]), "ftp"),
        ("deploy-timeout", put("deploy", "timeout", 0), "timeout"),
        ("deploy-smoke-rows", put("deploy", "smoke_rows", 0), "smoke_rows"),
        ("deploy-unknown-key", put("deploy", "servce_url", "http://x"), "servce_url"),
        ("registry-url-list", put("registry", "url", ["a"]), "registry.url"),
        ("registry-unknown-key", put("registry", "uri", "x"), "uri"),
        ("suite-missing", put("expectations", "suite", "expectations/nope.json"), "nope.json"),
        ("suite-key-missing", put("", "expectations", {}), "expectations.suite"),
        ("runs-dir-list", put("", "runs_dir", ["a"]), "runs_dir"),
    ]
    found = [Case(f"config-{name}", check_args, 2, needle, setup) for name, setup, needle in cases]
    missing = [
        Case("config-file-missing", ["config", "check", "--config", "nope.yaml"], 2, "nope.yaml"),
        Case(
            "config-file-folder", ["config", "check", "--config", "expectations"], 2, "expectations"
        ),
        Case("config-run-missing", ["run", "--config", "nope.yaml"], 2, "nope.yaml"),
    ]
    # the same bad configs through the commands that run the pipeline: refused before anything
    # is written (no new run folder); each step refuses what it uses, ``run`` all of it
    unclosed = ("yaml-unclosed", raw_config("data: [unclosed\n"), "ci-ml.yaml")
    task = ("task-enum", put("data", "task", "clasification"), "clasification")
    metric = ("gate-unknown-metric", gates({"metric": "roc_aucc", "min": 0.5}), "roc_aucc")
    yes = (
        "positive-class-yes",
        replace_in_config("positive_class: bad", "positive_class: Yes"),
        "positive_class",
    )
    ftp = ("registry-ftp", put("registry", "url", "ftp://host/models"), "ftp")
    estimator = ("estimator-missing", put("model", "estimator", "sklearn.nope.M"), "sklearn.nope")
    through = [
        ("run", ["run"], [unclosed, task, metric, yes, ftp, estimator]),
        ("validate", ["validate", "--run-dir", RUN], [unclosed, task, yes]),
        ("train", ["train", "--run-dir", RUN], [unclosed, estimator]),
        ("evaluate", ["evaluate", "--run-dir", RUN], [unclosed, ftp]),
        ("gate", ["gate", "--run-dir", RUN], [unclosed, metric]),
    ]
    piped = [
        Case(f"{step}-{name}", args, 2, needle, setup)
        for step, args, again in through
        for name, setup, needle in again
    ]
    return found + missing + piped


# --- data files ---------------------------------------------------------------------------

HEADER = (
    "Status,Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price"
)


def example_rows(root: Path, n: int | None = None) -> list[str]:
    lines = (root / "data" / "credit_data.csv").read_text().splitlines()
    return lines[1 : (n + 1 if n else None)]


def bad_data(make: Callable[[Path], str | bytes], name: str = "bad/data.csv") -> Setup:
    """Point data.path at an untracked file built by ``make`` and record it as pulled (so the
    step reads it as the run's data)."""

    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = make(root)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        config = yaml.safe_load((root / "ci-ml.yaml").read_text())
        config["data"]["path"] = name
        (root / "ci-ml.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        pull = json.loads((root / RUN / "pull.json").read_text())
        pull["data_path"] = name
        pull["dvc_targets"] = []
        pull["data_version"] = data_version(root, open_project(root / "ci-ml.yaml").config.data)
        (root / RUN / "pull.json").write_text(json.dumps(pull))

    return setup


def csv_with(change: Callable[[list[str]], list[str]]) -> Callable[[Path], str]:
    return lambda root: "\n".join(change([HEADER, *example_rows(root)])) + "\n"


def column(name: str, value: Callable[[int], str]) -> Callable[[list[str]], list[str]]:
    """Rewrite one column of every data row."""

    def change(lines: list[str]) -> list[str]:
        at = lines[0].split(",").index(name)
        out = [lines[0]]
        for i, line in enumerate(lines[1:]):
            cells = line.split(",")
            cells[at] = value(i)
            out.append(",".join(cells))
        return out

    return change


def parquet_of(root: Path) -> bytes:
    import pandas as pd

    frame = pd.read_csv(root / "data" / "credit_data.csv")
    out = root / "bad" / "tmp-frame.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out)
    data = out.read_bytes()
    out.unlink()
    return data


def data_cases() -> list[Case]:
    validate = ["validate", "--run-dir", RUN]
    single_class = column("Status", lambda i: "good")
    three = column("Status", lambda i: ["good", "bad", "meh"][i % 3])

    def dup(lines: list[str]) -> list[str]:
        return [line + "," + line.split(",")[9] for line in lines]  # a second Income

    def all_null(lines: list[str]) -> list[str]:
        return column("Assets", lambda i: "")(lines)

    cases = [
        ("empty-file", bad_data(lambda r: ""), "data.csv"),
        ("header-only", bad_data(lambda r: HEADER + "\n"), "data.csv"),
        ("binary-csv", bad_data(lambda r: b"\x00\xff\xfe" * 200), "data.csv"),
        ("ragged-csv", bad_data(lambda r: HEADER + "\n" + "a,b,c\n" + '"unclosed,1\n'), "data.csv"),
        ("bad-parquet", bad_data(lambda r: b"PAR1 not really", "bad/data.parquet"), "data.parquet"),
        (
            "parquet-truncated",
            bad_data(lambda r: parquet_of(r)[:300], "bad/data.parquet"),
            "data.parquet",
        ),
        ("unknown-suffix", bad_data(lambda r: "a,b\n1,2\n", "bad/data.xlsx"), "data.xlsx"),
        (
            "missing-target",
            bad_data(csv_with(lambda ls: [",".join(x.split(",")[1:]) for x in ls])),
            "Status",
        ),
        ("single-class", bad_data(csv_with(single_class)), "Status"),
        ("three-classes", bad_data(csv_with(three)), "3 classes"),
        ("duplicate-columns", bad_data(csv_with(dup)), "Income"),
        ("all-null-column", bad_data(csv_with(all_null)), "Assets"),
        (
            "inf-values",
            bad_data(csv_with(column("Income", lambda i: "inf" if i == 3 else "100"))),
            "Income",
        ),
        (
            "null-target",
            bad_data(csv_with(column("Status", lambda i: "" if i % 2 else "good"))),
            "Status",
        ),
    ]
    found = [Case(f"data-{name}", validate, 2, needle, setup) for name, setup, needle in cases]
    # data that reads fine but fails a data gate: exit 1, the failed check and its column named,
    # data-report.json (re)written
    blocked = [
        (
            "text-in-numbers",
            csv_with(column("Age", lambda i: "old" if i == 7 else "30")),
            "expect_column_values_to_be_between (Age)",
        ),
        (
            "six-rows",
            lambda r: "\n".join([HEADER, *example_rows(r, 6)]) + "\n",
            "expect_table_row_count_to_be_between",
        ),
        (
            "negative-amount",
            csv_with(column("Amount", lambda i: "-5" if i < 50 else "900")),
            "expect_column_values_to_be_between (Amount)",
        ),
        (
            "unknown-home",
            csv_with(column("Home", lambda i: "castle" if i < 50 else "rent")),
            "expect_column_values_to_be_in_set (Home)",
        ),
    ]
    found += [
        Case(f"data-gate-{name}", validate, 1, needle, bad_data(make), ("data-report.json",))
        for name, make, needle in blocked
    ]

    def edit_tracked(root: Path) -> None:
        path = root / "data" / "credit_data.csv"
        path.write_text(path.read_text().replace("good", "bad", 1))

    found += [
        Case(
            "data-missing-file",
            ["validate", "--run-dir", RUN],
            2,
            "nope.csv",
            put("data", "path", "data/nope.csv"),
        ),
        Case(
            "data-pull-missing-file",
            ["pull", "--run-dir", RUN],
            2,
            "nope.csv",
            put("data", "path", "bad/nope.csv"),
        ),
        Case("data-edited-after-pull", validate, 2, "data", edit_tracked),
        Case("data-edited-after-pull-train", ["train", "--run-dir", RUN], 2, "data", edit_tracked),
        Case(
            "data-drop-unknown", validate, 2, "NoSuchColumn", put("data", "drop", ["NoSuchColumn"])
        ),
        Case("data-drop-target", validate, 2, "Status", put("data", "drop", ["Status"])),
        Case(
            "data-drop-target-check",
            ["config", "check"],
            2,
            "data.drop",
            put("data", "drop", ["Status"]),
        ),
        Case("data-target-unknown", validate, 2, "Outcome", put("data", "target", "Outcome")),
        Case("data-id-unknown", validate, 2, "ApplicantId", put("data", "id", ["ApplicantId"])),
        Case(
            "data-positive-class-unknown",
            validate,
            2,
            "maybe",
            put("data", "positive_class", "maybe"),
        ),
        Case(
            "data-holdout-file-missing",
            validate,
            2,
            "holdout.csv",
            put("data.holdout", "file", "data/holdout.csv"),
        ),
        Case(
            "data-slice-column-unknown",
            ["evaluate", "--run-dir", RUN],
            2,
            "Region",
            put("slices", "columns", ["Region"]),
        ),
    ]
    return found


# --- GX suites ----------------------------------------------------------------------------


def suite_with(*expectations: dict[str, Any]) -> Setup:
    return write_file(
        "expectations/credit_data.json",
        json.dumps({"name": "credit_data", "expectations": list(expectations)}),
    )


def suite_cases() -> list[Case]:
    bad = [
        ("not-json", write_file("expectations/credit_data.json", "{not json"), "credit_data.json"),
        ("list", write_file("expectations/credit_data.json", "[]"), "credit_data.json"),
        (
            "no-expectations",
            write_file("expectations/credit_data.json", '{"name": "x"}'),
            "expectations",
        ),
        (
            "unknown-type",
            suite_with({"type": "expect_column_to_be_nice", "kwargs": {"column": "Age"}}),
            "expect_column_to_be_nice",
        ),
        ("no-type", suite_with({"kwargs": {"column": "Age"}}), "type"),
        (
            "missing-column",
            suite_with({"type": "expect_column_values_to_not_be_null", "kwargs": {}}),
            "column",
        ),
        (
            "unknown-kwarg",
            suite_with(
                {
                    "type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "Age", "colour": "red"},
                }
            ),
            "colour",
        ),
        (
            "wrong-kwarg-type",
            suite_with(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "Age", "min_value": "young"},
                }
            ),
            "min_value",
        ),
        (
            "bad-severity",
            suite_with(
                {
                    "type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "Age"},
                    "severity": "fatal",
                }
            ),
            "fatal",
        ),
        (
            "kwargs-list",
            suite_with({"type": "expect_column_values_to_not_be_null", "kwargs": ["Age"]}),
            "kwargs",
        ),
    ]
    return [
        Case(f"suite-{name}-{where}", args, 2, needle, setup)
        for name, setup, needle in bad
        for where, args in [
            ("check", ["config", "check"]),
            ("validate", ["validate", "--run-dir", RUN]),
        ]
    ]


# --- run files and model files ------------------------------------------------------------


def run_file(name: str, content: str | Callable[[Any], Any]) -> Setup:
    def setup(root: Path) -> None:
        path = root / RUN / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            data = json.loads(path.read_text())
            path.write_text(json.dumps(content(data)))

    return setup


def without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {k: v for k, v in d.items() if k != key}


def with_(key: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {**d, key: value}


# each run file, the command that reads it, a required key and a wrong value for it
READERS = [
    ("pull.json", ["validate"], "data_version", 5),
    ("pull.json", ["train"], "data_version", ["x"]),
    ("data-report.json", ["train"], "success", "yes"),
    ("model.json", ["evaluate"], "digest", 12),
    ("model.json", ["export"], "feature_schema", "all"),
    ("evaluation.json", ["gate"], "candidate", []),
    ("gate-report.json", ["report"], "verdict", 1),
    ("gate-report.json", ["deploy"], "verdict", "maybe"),
    ("parity.json", ["gate"], "success", "yes"),
    ("smoke-sample.json", ["deploy"], "records", "none"),
]


def run_file_cases() -> list[Case]:
    found = []
    for name, command, key, wrong in READERS:
        args = [*command, "--run-dir", RUN]
        tag = f"{name.removesuffix('.json')}-{command[0]}"
        variants = [
            ("object-empty", "{}", name),
            ("array", "[]", name),
            ("invalid-json", '{"schema_version": 1,', name),
            ("binary", "\x00\x01", name),
            ("missing-key", without(key), key),
            ("wrong-type", with_(key, wrong), key),
            ("foreign-schema", with_("schema_version", 99), "schema_version"),
            ("schema-text", with_("schema_version", "1"), "schema_version"),
        ]
        found += [
            Case(f"runfile-{tag}-{variant}", args, 2, needle, run_file(name, content))
            for variant, content, needle in variants
        ]
    # a reader's file removed: the line says which step writes it
    for name, command in [
        ("model.json", "evaluate"),
        ("evaluation.json", "gate"),
        ("gate-report.json", "deploy"),
        ("data-report.json", "train"),
        ("pull.json", "validate"),
        ("model.skops", "evaluate"),
    ]:
        found.append(
            Case(
                f"runfile-{name}-gone-{command}",
                [command, "--run-dir", RUN],
                2,
                name,
                lambda root, n=name: (root / RUN / n).unlink(),
            )
        )
    return found


def model_file_cases() -> list[Case]:
    def skops(change: Callable[[bytes], bytes], *, recorded: bool = False) -> Setup:
        """model.skops changed by ``change``; ``recorded``: model.json's digest follows it (so
        the loader itself meets the bad file, not the digest check)."""

        def setup(root: Path) -> None:
            path = root / RUN / "model.skops"
            path.write_bytes(change(path.read_bytes()))
            if recorded:
                card = json.loads((root / RUN / "model.json").read_text())
                card["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()
                (root / RUN / "model.json").write_text(json.dumps(card))

        return setup

    def not_a_model(_: bytes) -> bytes:
        """A valid zip, but not a skops file."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("schema.json", "{}")
        return buffer.getvalue()

    found = []
    for command in ["evaluate", "export"]:
        args = [command, "--run-dir", RUN]
        found += [
            Case(f"model-digest-{command}", args, 2, "digest", skops(lambda b: b + b"\0")),
            Case(
                f"model-not-zip-changed-{command}", args, 2, "digest", skops(lambda b: b"not a zip")
            ),
            Case(
                f"model-not-zip-{command}",
                args,
                2,
                "model.skops",
                skops(lambda b: b"not a zip", recorded=True),
            ),
            Case(
                f"model-truncated-{command}",
                args,
                2,
                "model.skops",
                skops(lambda b: b[: len(b) // 2], recorded=True),
            ),
            Case(
                f"model-zip-not-model-{command}",
                args,
                2,
                "model.skops",
                skops(not_a_model, recorded=True),
            ),
        ]
    found += [
        Case(
            "model-digest-deploy",
            ["deploy", "--run-dir", RUN],
            2,
            "model.skops",
            skops(lambda b: b + b"\0"),
        ),
    ]
    return found


def run_dir_cases() -> list[Case]:
    found = []
    for command in ["validate", "train", "evaluate", "gate", "report", "export", "deploy"]:
        found += [
            Case(f"rundir-file-{command}", [command, "--run-dir", "ci-ml.yaml"], 2, "ci-ml.yaml"),
            Case(f"rundir-missing-{command}", [command, "--run-dir", "typo"], 2, "typo"),
        ]
    found += [
        Case("rundir-file-run", ["run", "--run-dir", "ci-ml.yaml"], 2, "ci-ml.yaml"),
        Case("rundir-file-pull", ["pull", "--run-dir", "ci-ml.yaml"], 2, "ci-ml.yaml"),
    ]
    return found


# --- registry -----------------------------------------------------------------------------


def promote_first(root: Path) -> None:
    registry = open_registry(REGISTRY, root=root)
    registry.promote(registry.list_versions()[0].version, None, by="tests")


def promote_another(root: Path) -> None:
    """Another version put in production after the run was gated against an empty one."""
    registry = open_registry(REGISTRY, root=root)
    other = root / "other"
    other.mkdir()
    (other / "model.skops").write_bytes(b"another model")
    (other / "model.json").write_text("{}")
    files = {name: other / name for name in ("model.skops", "model.json")}
    registry.promote(registry.register(files, {}, by="tests").version, None, by="tests")
    shutil.rmtree(other)


def damage(pattern: str, content: str) -> Setup:
    def setup(root: Path) -> None:
        matches = sorted((root / REGISTRY).glob(pattern))
        assert matches, pattern
        matches[0].write_text(content)

    return setup


def registry_cases() -> list[Case]:
    found = []
    listing = (["registry", "list"], ["registry", "show", "production"], ["registry", "history"])
    for url, needle in [("ftp://host/models", "ftp"), ("gopher://x", "gopher")]:
        for args in listing:
            found.append(
                Case(f"registry-url-{needle}-{args[1]}", [*args, "--registry", url], 2, needle)
            )
    # an empty --registry counts as not given (an unset CI variable); an empty registry.url
    # in the config is refused
    for args in listing:
        found.append(
            Case(f"registry-url-empty-{args[1]}", args, 2, "empty", put("registry", "url", ""))
        )
    damaged_version = damage("versions/*.json", "{not json")
    empty_version = damage("versions/*.json", "{}")
    damaged_pointer = both(promote_first, damage("production/*.json", "{broken"))
    wrong_pointer = both(promote_first, damage("production/*.json", "[]"))
    for name, setup in [("version-invalid", damaged_version), ("version-empty", empty_version)]:
        for args in (["registry", "list"], ["registry", "show", "LATEST"]):
            found.append(Case(f"registry-{name}-{args[1]}", args, 3, "versions/", setup))
    for name, setup in [("pointer-invalid", damaged_pointer), ("pointer-array", wrong_pointer)]:
        for args in (
            ["registry", "list"],
            ["registry", "show", "production"],
            ["registry", "history"],
            ["registry", "promote", "000000000000"],
        ):
            found.append(Case(f"registry-{name}-{args[1]}", args, 3, "production/", setup))
    found += [
        Case("registry-show-unknown", ["registry", "show", "abcdef123456"], 2, "abcdef123456"),
        Case("registry-show-not-hex", ["registry", "show", "v1.0"], 2, "v1.0"),
        Case(
            "registry-promote-unknown", ["registry", "promote", "abcdef123456"], 2, "abcdef123456"
        ),
        Case(
            "registry-promote-stale",
            ["registry", "promote", "LATEST", "--expected-current", "abcdef123456"],
            4,
            "abcdef123456",
        ),
        Case(
            "registry-promote-stale-none",
            ["registry", "promote", "LATEST", "--expected-current", "none"],
            4,
            "production",
            promote_first,
        ),
        Case("rollback-nothing", ["rollback"], 2, "promoted"),
    ]
    return found


# --- arguments ----------------------------------------------------------------------------


def gated_out(root: Path) -> None:
    """The run gated again under a gate it cannot pass: a genuine "fail" decision record."""
    put("", "gates", [{"metric": "roc_auc", "min": 0.99}])(root)
    api.gate(open_project(root / "ci-ml.yaml"), (root / RUN).resolve())


def argument_cases() -> list[Case]:
    serve = ["serve", "--registry", REGISTRY]
    found = [
        Case("serve-port-high", [*serve, "--port", "70000"], 2, "--port"),
        Case("serve-port-negative", [*serve, "--port", "-1"], 2, "--port"),
        Case("serve-port-text", [*serve, "--port", "http"], 2, "--port"),
        Case("serve-max-body-text", [*serve, "--max-body", "lots"], 2, "--max-body"),
        Case("serve-max-body-zero", [*serve, "--max-body", "0"], 2, "--max-body"),
        Case("serve-max-rows-zero", [*serve, "--max-rows", "0"], 2, "--max-rows"),
        Case("serve-poll-zero", [*serve, "--poll", "0"], 2, "--poll"),
        Case("serve-poll-text", [*serve, "--poll", "often"], 2, "--poll"),
        Case("serve-threads-zero", [*serve, "--threads", "0"], 2, "--threads"),
        Case("serve-threads-many", [*serve, "--threads", "1000"], 2, "--threads"),
        Case(
            "serve-log-sample-high",
            [*serve, "--log-requests", "logs", "--log-sample", "2"],
            2,
            "--log-sample",
        ),
        Case("serve-log-sample-alone", [*serve, "--log-sample", "0.5"], 2, "--log-requests"),
        Case(
            "serve-log-bytes",
            [*serve, "--log-requests", "logs", "--log-max-bytes", "big"],
            2,
            "--log-max-bytes",
        ),
        Case(
            "serve-log-files",
            [*serve, "--log-requests", "logs", "--log-max-files", "0"],
            2,
            "--log-max-files",
        ),
        Case(
            "serve-short-token", serve, 2, "CI_ML_ADMIN_TOKEN", env={"CI_ML_ADMIN_TOKEN": "short"}
        ),
        Case("export-format", ["export", "--run-dir", RUN, "--format", "tflite"], 2, "tflite"),
        Case(
            "export-dtype", ["export", "--run-dir", RUN, "--numeric-dtype", "float16"], 2, "float16"
        ),
        Case(
            "export-tolerance", ["export", "--run-dir", RUN, "--tolerance", "-1"], 2, "--tolerance"
        ),
        Case(
            "monitor-recent-missing",
            ["monitor", "--recent", "nope.csv", "--no-pull"],
            2,
            "--recent nope.csv",
            promote_first,
        ),
        Case(
            "monitor-both-sources",
            ["monitor", "--recent", "data/credit_data.csv", "--requests", "logs"],
            2,
            "--requests",
            promote_first,
        ),
        Case("monitor-no-source", ["monitor"], 2, "--recent", promote_first),
        Case(
            "monitor-since-without-requests",
            ["monitor", "--recent", "data/credit_data.csv", "--since", "7d"],
            2,
            "--since",
            promote_first,
        ),
        Case(
            "monitor-since-bad",
            ["monitor", "--requests", "logs", "--since", "last week"],
            2,
            "last week",
            both(promote_first, lambda r: (r / "logs").mkdir()),
        ),
        Case(
            "monitor-requests-missing",
            ["monitor", "--requests", "nolog"],
            2,
            "nolog",
            promote_first,
        ),
        Case(
            "monitor-dispatch-on",
            [
                "monitor",
                "--recent",
                "data/credit_data.csv",
                "--dispatch",
                "retrain.yml",
                "--dispatch-on",
                "sometimes",
            ],
            2,
            "sometimes",
            promote_first,
        ),
        Case(
            "monitor-max-drop-for",
            ["monitor", "--recent", "data/credit_data.csv", "--max-drop-for", "roc_auc"],
            2,
            "roc_auc",
            promote_first,
        ),
        Case(
            "monitor-no-production",
            ["monitor", "--recent", "data/credit_data.csv"],
            2,
            "production",
        ),
        Case(
            "deploy-no-gate",
            ["deploy", "--run-dir", RUN],
            2,
            "gate-report.json",
            lambda r: (r / RUN / "gate-report.json").unlink(),
        ),
        Case(
            "deploy-forged-verdict",
            ["deploy", "--run-dir", RUN],
            2,
            "decision record says fail",
            run_file("gate-report.json", with_("verdict", "fail")),
        ),
        Case("deploy-blocked", ["deploy", "--run-dir", RUN], 1, "fail", gated_out),
        Case(
            "deploy-production-moved",
            ["deploy", "--run-dir", RUN],
            4,
            "run the gates again",
            promote_another,
        ),
        Case(
            "report-publish-from",
            ["report", "--run-dir", RUN, "--publish-from", "nowhere"],
            2,
            "nowhere",
        ),
    ]
    return found


CASES = (
    config_cases()
    + data_cases()
    + suite_cases()
    + run_file_cases()
    + model_file_cases()
    + run_dir_cases()
    + registry_cases()
    + argument_cases()
)


def test_there_are_enough_cases() -> None:
    assert len(CASES) + len(HTTP_CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, copy: Path) -> None:
    # LATEST: the registered version, named by its record's file (which a case may damage)
    latest = next((copy / REGISTRY / "versions").glob("*.json")).stem
    case = Case(**{**case.__dict__, "args": [latest if a == "LATEST" else a for a in case.args]})
    check(case, copy)


# --- HTTP ---------------------------------------------------------------------------------

TOKEN = "bad-input-admin-token-0123456789"


@pytest.fixture(scope="module")
def service(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ci-ml serve`` of the trained model, in production in its own registry copy."""
    registry_dir = tmp_path_factory.mktemp("served") / "registry"
    shutil.copytree(trained / REGISTRY, registry_dir)
    registry = open_registry(str(registry_dir))
    registry.promote(registry.list_versions()[0].version, None, by="tests")
    holder = ModelHolder(registry, ())
    settings = ServeSettings(port=0, max_body_bytes=4096, max_rows=5, admin_token=TOKEN)
    with serve_in_thread(holder, settings) as url:
        yield url


def a_row(trained: Path) -> dict[str, Any]:
    import pandas as pd

    frame = pd.read_csv(trained / "data" / "credit_data.csv", nrows=1).drop(columns="Status")
    return json.loads(frame.to_json(orient="records"))[0]


@dataclass(frozen=True)
class Http:
    id: str
    method: str
    path: str
    status: int
    needle: str
    body: Callable[[dict[str, Any]], Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


HTTP_CASES = [
    Http(
        "text-content-type",
        "POST",
        "/predict",
        415,
        "text/plain",
        raw=b'{"records": []}',
        headers={"Content-Type": "text/plain"},
    ),
    Http(
        "form-content-type",
        "POST",
        "/predict",
        415,
        "x-www-form-urlencoded",
        raw=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Http(
        "not-json",
        "POST",
        "/predict",
        400,
        "JSON",
        raw=b"{not json",
        headers={"Content-Type": "application/json"},
    ),
    Http(
        "empty-body",
        "POST",
        "/predict",
        400,
        "JSON",
        raw=b"",
        headers={"Content-Type": "application/json"},
    ),
    Http("json-array", "POST", "/predict", 422, "records", body=lambda row: [row]),
    Http("no-records", "POST", "/predict", 422, "records", body=lambda row: {"rows": [row]}),
    Http("records-not-list", "POST", "/predict", 422, "records", body=lambda row: {"records": row}),
    Http("records-empty", "POST", "/predict", 422, "records", body=lambda row: {"records": []}),
    Http(
        "record-not-object",
        "POST",
        "/predict",
        422,
        "row 0",
        body=lambda row: {"records": [[1, 2, 3]]},
    ),
    Http(
        "wrong-column-type",
        "POST",
        "/predict",
        422,
        "'Age'",
        body=lambda row: {"records": [{**row, "Age": "old"}]},
    ),
    Http(
        "missing-column",
        "POST",
        "/predict",
        422,
        "Income",
        body=lambda row: {"records": [{k: v for k, v in row.items() if k != "Income"}]},
    ),
    Http(
        "unknown-column",
        "POST",
        "/predict",
        422,
        "Colour",
        body=lambda row: {"records": [{**row, "Colour": "red"}]},
    ),
    Http("too-many-rows", "POST", "/predict", 413, "rows", body=lambda row: {"records": [row] * 6}),
    Http(
        "oversized-body",
        "POST",
        "/predict",
        413,
        "body",
        raw=json.dumps({"records": [], "pad": "x" * 10_000}).encode(),
        headers={"Content-Type": "application/json"},
    ),
    Http("unknown-route", "GET", "/predictions", 404, "/predictions"),
    Http("wrong-method", "GET", "/predict", 405, "method"),
    Http("reload-no-token", "POST", "/admin/reload", 401, "token"),
    Http(
        "reload-bad-token",
        "POST",
        "/admin/reload",
        403,
        "token",
        headers={"Authorization": "Bearer wrong-token-wrong-token"},
    ),
    Http(
        "reload-not-bearer",
        "POST",
        "/admin/reload",
        401,
        "token",
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
]


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def test_bad_request(case: Http, service: str, trained: Path) -> None:
    row = a_row(trained)
    kwargs: dict[str, Any] = {"headers": case.headers, "timeout": 30}
    if case.raw is not None:
        kwargs["data"] = case.raw
    elif case.body is not None:
        kwargs["json"] = case.body(row)
    response = requests.request(case.method, service + case.path, **kwargs)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str), detail
    assert case.needle.lower() in detail.lower(), detail
    assert "Traceback" not in response.text
    still = requests.post(f"{service}/predict", json={"records": [row]}, timeout=30)
    assert still.status_code == 200, still.text
