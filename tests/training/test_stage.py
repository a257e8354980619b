"""A dvc.yaml stage as the trainer (``ci_ml/stage.py``): the example pipeline end to end, and
every way a stage can be unfit to train on, named before it runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ci_ml.config import load_config
from ci_ml.errors import ConfigError
from ci_ml.records import ModelCard, read_record
from ci_ml.registry import open_registry
from ci_ml.training import stage
from tests.conftest import REPO, git, run_cli
from tests.credit_pipeline import PIPELINE, PIPELINE_CONFIG, pipeline_project


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline example as a fresh repository, its data pulled and split once."""
    root = pipeline_project(tmp_path_factory.mktemp("pipeline") / "repo")
    done = run_cli("pull", "--config", str(PIPELINE_CONFIG), cwd=root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def repo(pulled: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(pulled, dest, symlinks=True)
    return dest


def run(repo: Path, name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    run_dir = repo / PIPELINE / ".ci-ml/runs" / name
    done = run_cli("run", "--config", str(PIPELINE_CONFIG), "--run-dir", str(run_dir), cwd=repo)
    return done, run_dir


def edit_yaml(path: Path, change: Any) -> None:
    found = yaml.safe_load(path.read_text())
    change(found)
    path.write_text(yaml.safe_dump(found, sort_keys=False))


def promote(repo: Path, run_dir: Path) -> None:
    registry = open_registry(".ci-ml/registry", root=repo / PIPELINE)
    digest = read_record(run_dir / "model.json", ModelCard).digest
    current = registry.get_production()
    registry.promote(registry.get(digest).version, current.version if current else None, by="tests")


def lock(repo: Path) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((repo / PIPELINE / "dvc.lock").read_text())
    return found["stages"]


@pytest.mark.slow
def test_the_stage_trains_and_model_json_records_what_dvc_locked(repo: Path) -> None:
    done, first = run(repo, "first")
    assert done.returncode == 0, done.stderr
    card = json.loads((first / "model.json").read_text())
    dvc = card["dvc"]
    assert dvc["stage"] == "train" and dvc["dvc_file"] == "dvc.yaml"
    assert dvc["model_path"] == "model/model.skops"
    assert dvc["params"] == {
        "train.max_iter": 200,
        "train.learning_rate": 0.05,
        "train.max_leaf_nodes": 15,
        "train.seed": 0,
    }
    locked = lock(repo)["train"]
    assert dvc["deps"] == {d["path"]: f"md5:{d['md5']}" for d in locked["deps"]}
    assert dvc["outs"] == {"model/model.skops": f"md5:{locked['outs'][0]['md5']}"}
    # the run's model is the stage's output, byte for byte
    model = (repo / PIPELINE / "model/model.skops").read_bytes()
    assert (first / "model.skops").read_bytes() == model
    assert card["model_file"] == "model.skops" and card["estimator"].endswith(
        "HistGradientBoostingClassifier"
    )
    gate = json.loads((first / "gate-report.json").read_text())
    assert gate["verdict"] == "pass"

    # a pull request that makes the stage's params worse: the stage re-runs, the gate blocks
    promote(repo, first)
    edit_yaml(repo / PIPELINE / "params.yaml", lambda p: p["train"].update(max_iter=3))
    done, second = run(repo, "second")
    assert done.returncode == 1, done.stderr
    again = json.loads((second / "model.json").read_text())["dvc"]
    assert again["params"]["train.max_iter"] == 3
    assert again["outs"] != dvc["outs"]  # a new model, not the cached one
    assert again["deps"] == dvc["deps"]  # same data, same script
    gate = json.loads((second / "gate-report.json").read_text())
    assert gate["verdict"] == "fail"
    failed = {g["name"] for g in gate["gates"] if g["verdict"] == "fail"}
    assert "roc_auc change" in failed, gate["gates"]
    # the report says what changed, from production's registry record: the stage's params
    report = (second / "report.md").read_text()
    assert "What changed since production" in report
    assert "| train.max_iter | 200 | 3 |" in report
    assert "**Data**: none changed." in report


@pytest.mark.slow
def test_dvc_sees_the_runs_metrics_and_curves(repo: Path) -> None:
    done, first = run(repo, "first")
    assert done.returncode == 0, done.stderr
    promote(repo, first)
    done = run_cli("run", "--config", str(PIPELINE_CONFIG), cwd=repo)  # a new run: latest
    assert done.returncode == 0, done.stderr

    def dvc(*args: str) -> Any:
        found = subprocess.run(
            [sys.executable, "-m", "dvc", *args, "--json"],
            cwd=repo / PIPELINE,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(found.stdout)

    metrics = json.loads((repo / PIPELINE / ".ci-ml/runs/latest/metrics.json").read_text())
    shown = dvc("metrics", "show")
    assert (
        shown[""]["data"][".ci-ml/runs/latest/metrics.json"]["data"]["roc_auc"]
        == (metrics["roc_auc"])
    )
    diff = dvc("metrics", "diff")[".ci-ml/runs/latest/metrics.json"]
    assert diff["roc_auc"]["new"] == metrics["roc_auc"]
    plots = dvc("plots", "show")
    assert not plots.get("errors"), plots["errors"]
    values = plots["data"]["roc"][0]["content"]["data"]["values"]
    assert len({row["dvc_inferred_y_value"] for row in values}) > 2  # both lines drawn
    # against a commit: the workspace's run is drawn; the commit has no run files in git
    found = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "diff", "HEAD", "--json"],
        cwd=repo / PIPELINE,
        capture_output=True,
        text=True,
        check=True,
    )
    diff_plots = json.loads(found.stdout)
    drawn = diff_plots["data"]["roc"][0]["content"]["data"]["values"]
    assert {row["rev"] for row in drawn} == {"workspace"} and len(drawn) == len(values)
    assert {e["rev"] for e in diff_plots["errors"]} == {"HEAD"}


def test_the_pipeline_config_and_its_dvc_yaml_are_consistent() -> None:
    """The shipped example names a stage that exists, trains on data.path, never reads the
    holdout, and declares its model as an artifact."""
    root = REPO / PIPELINE
    config = load_config(root / "ci-ml.yaml")
    found = stage.load_stage(root, str(config.model.dvc_stage))
    stage.check_data(found, root, config.data)
    assert stage.model_output(found, root, config.model) == root / "model/model.skops"


# --- a stage unfit to train on: named before it runs -----------------------------------


def small_repo(tmp_path: Path, stages: dict[str, Any], artifacts: Any = None) -> Path:
    root = tmp_path / "small"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "data").mkdir()
    (root / "data/train.csv").write_text("x,y\n1,0\n")
    (root / "data/holdout.csv").write_text("x,y\n2,1\n")
    (root / "params.yaml").write_text("train:\n  depth: 3\n")
    dvc_yaml: dict[str, Any] = {"stages": stages}
    if artifacts is not None:
        dvc_yaml["artifacts"] = artifacts
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml))
    return root


def model_config(**fields: Any) -> Any:
    from ci_ml.config import ModelConfig

    return ModelConfig.model_validate({"dvc_stage": "train", **fields})


def data_config(**fields: Any) -> Any:
    from ci_ml.config import DataConfig

    return DataConfig.model_validate(
        {"path": "data/train.csv", "target": "y", "holdout": {"file": "data/holdout.csv"}, **fields}
    )


TRAIN = {"cmd": "python train.py", "deps": ["data/train.csv"], "outs": ["model.skops"]}


def test_a_stage_that_is_not_there_is_named_with_those_that_are(tmp_path: Path) -> None:
    root = small_repo(tmp_path, {"prepare": TRAIN})
    with pytest.raises(ConfigError, match=r"has no stage 'train' \(its stages: prepare\)"):
        stage.load_stage(root, "train")
    with pytest.raises(ConfigError, match=r"there is no elsewhere/dvc.yaml"):
        stage.load_stage(root, "elsewhere/dvc.yaml:train")


def test_the_stage_must_train_on_data_path_and_never_read_the_holdout(tmp_path: Path) -> None:
    root = small_repo(
        tmp_path,
        {
            "train": {**TRAIN, "deps": ["data/other.csv"]},
            "peek": {**TRAIN, "deps": ["data"]},
        },
    )
    with pytest.raises(ConfigError, match=r"does not depend on data.path 'data/train.csv'"):
        stage.check_data(stage.load_stage(root, "train"), root, data_config())
    # a stage reading the whole folder reads the held-out rows too
    with pytest.raises(ConfigError, match=r"depends on data, which holds data.holdout.file"):
        stage.check_data(stage.load_stage(root, "peek"), root, data_config())


def test_the_model_is_the_artifact_the_one_model_file_or_model_output(tmp_path: Path) -> None:
    two = {**TRAIN, "outs": ["model.skops", "model.onnx", "report.html"]}
    root = small_repo(
        tmp_path,
        {"train": two, "pickled": {**TRAIN, "outs": ["model.pkl"]}},
        artifacts={"scorer": {"path": "model.onnx", "type": "model"}},
    )
    found = stage.load_stage(root, "train")
    assert stage.model_output(found, root, model_config()) == root / "model.onnx"
    chosen = model_config(output="model.skops")
    assert stage.model_output(found, root, chosen) == root / "model.skops"
    with pytest.raises(ConfigError, match=r"'report.txt' is not an output .*its outs: model"):
        stage.model_output(found, root, model_config(output="report.txt"))
    pickled = stage.load_stage(root, "pickled")
    with pytest.raises(ConfigError, match=r"model.pkl is neither a skops file"):
        stage.model_output(pickled, root, model_config())


def test_two_model_files_and_no_artifact_ask_for_model_output(tmp_path: Path) -> None:
    root = small_repo(tmp_path, {"train": {**TRAIN, "outs": ["a.skops", "b.skops"]}})
    with pytest.raises(ConfigError, match=r"cannot tell which output .* set model.output"):
        stage.model_output(stage.load_stage(root, "train"), root, model_config())


def test_params_of_a_stage_are_flattened_with_their_file(tmp_path: Path) -> None:
    assert stage._flat({"train": {"depth": 3, "opt": {"lr": 0.1}}, "n": 1}, "") == {
        "train.depth": 3,
        "train.opt.lr": 0.1,
        "n": 1,
    }
    assert stage._flat({"lr": 0.1}, "conf/train.yaml:") == {"conf/train.yaml:lr": 0.1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["data"]["holdout"].pop("file"), "cannot hold rows out of them"),
        (lambda c: c["model"].update(params={"max_iter": 3}), "'params' is for the built-in"),
        (
            lambda c: c["model"].update(estimator="sklearn.linear_model.LogisticRegression"),
            "set exactly one of 'estimator'",
        ),
    ],
)
def test_a_dvc_stage_config_that_cannot_work_is_refused(
    tmp_path: Path, change: Any, message: str
) -> None:
    source = REPO / PIPELINE_CONFIG
    config = yaml.safe_load(source.read_text())
    change(config)
    path = tmp_path / "ci-ml.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("config", "check", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_failing_stage_command_is_one_sentence_and_exit_2(repo: Path) -> None:
    (repo / PIPELINE / "train.py").write_text("raise SystemExit('out of memory')\n")
    done, run_dir = run(repo, "broken")
    assert done.returncode == 2, done.stderr
    assert "'dvc repro --pull dvc.yaml:train' exited with" in done.stderr
    assert "Traceback (most recent call last)" not in done.stderr.split("out of memory")[-1]
    assert not (run_dir / "model.json").exists()


@pytest.mark.slow
def test_a_stage_that_remakes_the_gated_data_is_refused(repo: Path) -> None:
    """The split's params change after the data gates judged the files: 'dvc repro' of the
    train stage re-runs the split, so the model would train on rows nobody gated."""
    run_dir = repo / PIPELINE / ".ci-ml/runs/remade"
    for step in ("pull", "validate"):
        done = run_cli(step, "--config", str(PIPELINE_CONFIG), "--run-dir", str(run_dir), cwd=repo)
        assert done.returncode == 0, done.stderr
    edit_yaml(repo / PIPELINE / "params.yaml", lambda p: p["split"].update(seed=7))
    done = run_cli("train", "--config", str(PIPELINE_CONFIG), "--run-dir", str(run_dir), cwd=repo)
    assert done.returncode == 2, done.stderr
    assert "changed train.csv after the data gates judged it" in done.stderr
    assert not (run_dir / "model.json").exists() and not (run_dir / "model.skops").exists()
