"""Your own model as ONNX (docs/frameworks.md): a training command that writes ``model.onnx``
is checked against the contract, evaluated and gated against the HistGradientBoosting model in
production on the same holdout rows, registered, served and monitored; a file that breaks the
contract is refused with one sentence naming what is wrong; ``export`` is refused for it.

The PyTorch example (``scripts/train_torch_mlp.py``) runs the same way when torch is installed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.config import ModelConfig, load_config
from ci_ml.data import Dataset, load_dataset
from ci_ml.errors import ConfigError, ModelFileError
from ci_ml.monitor.sources import load_production
from ci_ml.records import ChangeValue, Evaluation, GateReport, ModelCard, read_record
from ci_ml.registry import Registry, open_registry
from ci_ml.serve.model import load_version
from ci_ml.training import train_command
from tests import _onnx_logistic
from tests._onnx_logistic import logistic_onnx
from tests.conftest import REPO, run_cli

# gates a logistic regression passes against the gradient-boosting model: the comparison is
# what these tests look at, not which model is better
GATES = [
    {"metric": "roc_auc", "min": 0.75, "change": {"margin": -0.05}},
    {"metric": "log_loss", "max": 0.6},
    {"metric": "accuracy", "change": {"margin": -0.05}},
    {"metric": "latency_p95_ms", "max": 20},
]


def edit(project: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = project / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def own_onnx(command: str, output: str = "build/model.onnx") -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["model"] = {"command": command, "output": output, "seed": 3}
        config["gates"] = GATES

    return change


def run(project: Path, name: str) -> tuple[Any, Path]:
    run_dir = project / ".ci-ml" / "runs" / name
    return run_cli("run", "--run-dir", str(run_dir), cwd=project), run_dir


def registry_of(project: Path) -> Registry:
    return open_registry(".ci-ml/registry", root=project)


def promote(project: Path, run_dir: Path) -> str:
    registry = registry_of(project)
    version = registry.get(read_record(run_dir / "model.json", ModelCard).digest).version
    current = registry.get_production()
    registry.promote(version, current.version if current else None, by="tests")
    return version


def hgb_in_production(project: Path) -> str:
    """The example's own gradient-boosting model, run and promoted: production's version."""
    done, first = run(project, "hgb")
    assert done.returncode == 0, done.stderr
    return promote(project, first)


def compared_on_the_same_rows(run_dir: Path, production: str) -> Evaluation:
    evaluation = read_record(run_dir / "evaluation.json", Evaluation)
    assert evaluation.baseline is not None and evaluation.baseline.version == production
    assert evaluation.baseline.problem is None
    assert evaluation.baseline.rows_compared == evaluation.rows.holdout > 800
    for metric in ("roc_auc", "accuracy"):
        found = evaluation.comparisons[metric]
        assert found.n == evaluation.rows.holdout  # every holdout row, predicted by both
        assert found.ci_low <= found.delta <= found.ci_high
    gate_report = read_record(run_dir / "gate-report.json", GateReport)
    assert gate_report.baseline is not None and gate_report.baseline.version == production
    changes = [g for g in gate_report.gates if g.kind == "change"]
    assert {g.metric for g in changes} == {"roc_auc", "accuracy"}
    assert all(isinstance(g.value, ChangeValue) for g in changes)  # judged, not a policy
    return evaluation


def served_like_evaluated(project: Path, run_dir: Path, version: str) -> None:
    """The service loads the version with ONNX Runtime and answers the holdout rows with the
    scores evaluate recorded for them; the monitor loads it as production."""
    registry = registry_of(project)
    loaded = load_version(registry, registry.get(version), [])
    assert loaded.runtime == "onnx"
    assert [str(c) for c in loaded.classes] == ["bad", "good"]
    dataset = load_dataset(project, load_config(project / "ci-ml.yaml").data)
    answers = loaded.predict(dataset.x("holdout"))
    recorded = pd.read_parquet(run_dir / "holdout-predictions.parquet")
    served = np.array([a["probability"] for a in answers])
    assert np.allclose(served, recorded["score"].to_numpy(), atol=1e-6)
    assert {a["label"] for a in answers} == {"bad", "good"}

    production = load_production(registry, run_dir / "monitor")
    assert production.version == version
    assert production.card["model_file"] == "model.onnx"
    assert production.holdout is not None
    assert production.model.predict_proba(dataset.x("holdout").head(5)).shape == (5, 2)


# --- a logistic regression of scikit-learn, exported by skl2onnx in the training command ---


def test_own_onnx_model_is_gated_registered_served_and_monitored(project: Path) -> None:
    production = hgb_in_production(project)
    shutil.copy(_onnx_logistic.__file__, project / "train_onnx.py")
    edit(project, own_onnx(f"{shlex.quote(sys.executable)} train_onnx.py"))

    done, run_dir = run(project, "own")
    assert done.returncode == 0, done.stderr
    card = read_record(run_dir / "model.json", ModelCard)
    assert f"trained a logistic regression on {card.training_rows} rows" in done.stderr
    assert card.model_file == "model.onnx" and not (run_dir / "model.skops").exists()
    assert card.estimator == "onnx:skl2onnx"
    assert card.classes == ["bad", "good"] and card.positive_class == "bad"
    assert (run_dir / "model.onnx").read_bytes() == (project / "build/model.onnx").read_bytes()
    evaluation = compared_on_the_same_rows(run_dir, production)
    assert 0.8 < evaluation.candidate.metrics["roc_auc"] < 0.9
    assert read_record(run_dir / "gate-report.json", GateReport).verdict == "pass"

    registered = registry_of(project).get(card.digest)
    assert registered.model_file == "model.onnx"
    assert "model.onnx" in registered.files and "parity.json" not in registered.files

    # nothing to export: the model is ONNX already
    done = run_cli("export", "--run-dir", str(run_dir), cwd=project)
    assert done.returncode == 2
    assert "is model.onnx, your training command's own ONNX model" in done.stderr
    assert "nothing to export" in done.stderr
    assert "Traceback" not in done.stderr

    version = promote(project, run_dir)
    served_like_evaluated(project, run_dir, version)

    # and the next candidate, the gradient-boosting model again, is compared with it
    example = yaml.safe_load((REPO / "ci-ml.yaml").read_text())
    edit(project, lambda config: config.update(model=example["model"], gates=GATES))
    done, again = run(project, "hgb-again")
    assert done.returncode == 0, done.stderr
    compared_on_the_same_rows(again, version)


def test_export_is_refused_for_an_own_onnx_model(project: Path) -> None:
    edit(project, own_onnx("true", output="model.onnx"))
    edit(project, lambda config: config.update(export={"format": "onnx"}))
    with pytest.raises(ConfigError) as info:
        load_config(project / "ci-ml.yaml")
    message = str(info.value)
    assert "'export' converts a scikit-learn model to ONNX" in message
    assert "model.output 'model.onnx' is an ONNX model already" in message
    assert "remove the 'export' section" in message
    assert "(top level)" not in message
    done = run_cli("config", "check", cwd=project)
    assert done.returncode == 2 and "remove the 'export' section" in done.stderr


# --- what breaks the contract ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(pulled_example: Path) -> Dataset:
    return load_dataset(pulled_example, load_config(pulled_example / "ci-ml.yaml").data)


def fitted(**options: Any) -> Callable[[Dataset], bytes]:
    def make(dataset: Dataset) -> bytes:
        features = [f for f in dataset.features if f not in options.get("without", ())]
        kept = {k: v for k, v in options.items() if k != "without"}
        return logistic_onnx(dataset.train, dataset.target, features, **kept)

    return make


def not_probabilities(dataset: Dataset) -> bytes:
    """Every input, and as 'probabilities' a numeric column twice: shaped right, no softmax."""
    from onnx import TensorProto, helper

    kinds = {c: dataset.train[c].dtype.kind in "biuf" for c in dataset.features}
    inputs = [
        helper.make_tensor_value_info(
            c, TensorProto.FLOAT if numeric else TensorProto.STRING, [None, 1]
        )
        for c, numeric in kinds.items()
    ]
    first = next(c for c, numeric in kinds.items() if numeric)
    node = helper.make_node("Concat", [first, first], ["probabilities"], axis=1)
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([node], "scores", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"ci_ml.task": "classification", "ci_ml.classes": ["bad", "good"]}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return bytes(model.SerializeToString())


BROKEN: dict[str, tuple[Callable[[Dataset], bytes], list[str]]] = {
    "missing input": (
        fitted(without=("Price",)),
        ["has no input for the feature column(s) 'Price'", "one [n, 1] input per feature"],
    ),
    "wrong output": (
        fitted(zipmap=True),
        ["has no output 'probabilities'", "'output_label', 'output_probability'", "[n, 2]"],
    ),
    "no classes metadata": (
        fitted(classes=[]),
        ["has no metadata 'ci_ml.classes'", "order of its probability columns", '["bad", "good"]'],
    ),
    "classes that are not the data's": (
        fitted(classes=["yes", "no"]),
        ["names the classes ['yes', 'no']", "target 'Status' has the classes ['bad', 'good']"],
    ),
    "another task": (
        fitted(task="regression"),
        ["says its task is 'regression'", "task of the target 'Status' is classification"],
    ),
    "scores, not probabilities": (
        not_probabilities,
        ["outputs 'probabilities' that are no probabilities", "softmax"],
    ),
    "not ONNX": (
        lambda _dataset: b"PK\x03\x04 a skops file, say",
        ["ONNX Runtime cannot load it", "must write an ONNX model there"],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_model_that_breaks_the_contract_is_refused(
    case: str, dataset: Dataset, tmp_path: Path
) -> None:
    make, fragments = BROKEN[case]
    (tmp_path / "given.onnx").write_bytes(make(dataset))
    config = ModelConfig(command='cp given.onnx "$CI_ML_MODEL_PATH"', output="model.onnx")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ModelFileError) as info:
        train_command(config, dataset, tmp_path, run_dir, run_dir / "model.onnx")
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert "docs/frameworks.md" in message
    assert len(message.splitlines()) == 1
    assert not (run_dir / "model.onnx").exists()


def test_the_cli_refuses_it_with_exit_2(project: Path, dataset: Dataset) -> None:
    (project / "given.onnx").write_bytes(fitted(classes=["yes", "no"])(dataset))
    edit(project, own_onnx('cp given.onnx "$CI_ML_MODEL_PATH"', output="model.onnx"))
    done, run_dir = run(project, "broken")
    assert done.returncode == 2, done.stderr
    assert "names the classes ['yes', 'no']" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (run_dir / "model.json").exists()


def test_the_command_is_told_the_features_task_and_classes(
    dataset: Dataset, tmp_path: Path
) -> None:
    script = "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"
    config = ModelConfig(command=f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
    with pytest.raises(ModelFileError, match="wrote no model"):
        train_command(config, dataset, tmp_path, tmp_path, tmp_path / "model.skops")
    env = json.loads((tmp_path / "env.json").read_text())
    assert json.loads(env["CI_ML_FEATURES"]) == dataset.features
    assert env["CI_ML_TASK"] == "classification"
    assert json.loads(env["CI_ML_CLASSES"]) == ["bad", "good"]
    assert env["CI_ML_TARGET"] == "Status"


# --- the PyTorch example ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_pytorch_example_runs_end_to_end(project: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")  # torch.onnx.export's exporter
    production = hgb_in_production(project)
    (project / "scripts").mkdir(exist_ok=True)
    shutil.copy(REPO / "scripts" / "train_torch_mlp.py", project / "scripts")
    command = f"{shlex.quote(sys.executable)} scripts/train_torch_mlp.py"
    edit(project, own_onnx(command, output="model.onnx"))

    done, run_dir = run(project, "torch")
    assert done.returncode == 0, done.stderr
    card = read_record(run_dir / "model.json", ModelCard)
    assert card.model_file == "model.onnx" and card.estimator == "onnx:pytorch"
    assert f"trained an MLP on {card.training_rows} rows" in done.stderr
    evaluation = compared_on_the_same_rows(run_dir, production)
    assert 0.8 < evaluation.candidate.metrics["roc_auc"] < 0.9
    assert registry_of(project).get(card.digest).model_file == "model.onnx"

    # the same seed gives the same model, byte for byte
    first = (project / "model.onnx").read_bytes()
    done, _again = run(project, "torch-again")
    assert done.returncode == 0, done.stderr
    assert (project / "model.onnx").read_bytes() == first

    version = promote(project, run_dir)
    served_like_evaluated(project, run_dir, version)
