"""XGBoost, LightGBM and CatBoost on the example project through the real CLI, each gated
against a HistGradientBoosting model in production on the same holdout rows, registered,
served — and no file of any run directory or registry version is a pickle."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.records import Evaluation, GateReport, ModelCard, read_record
from ci_ml.registry import open_registry
from ci_ml.serve.model import load_version
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

BOOSTERS = {
    "xgboost.XGBClassifier": {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 4},
    "lightgbm.LGBMClassifier": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15},
    "catboost.CatBoostClassifier": {"iterations": 300, "learning_rate": 0.05, "depth": 4},
}


@pytest.fixture(scope="module")
def production(pulled_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with its HistGradientBoosting model (the shipped config) in production."""
    root = tmp_path_factory.mktemp("frameworks") / "project"
    shutil.copytree(pulled_example, root, symlinks=True)
    done = run_cli("run", "--run-dir", ".ci-ml/runs/hgb", cwd=root)
    assert done.returncode == 0, done.stderr
    digest = read_record(root / ".ci-ml/runs/hgb/model.json", ModelCard).digest
    done = run_cli("registry", "promote", digest[:12], cwd=root)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def runs(production: Path) -> dict[str, Path]:
    """One gated run of each booster, in the same project (its registry, its production)."""
    found = {}
    for estimator, params in BOOSTERS.items():
        config = yaml.safe_load((production / "ci-ml.yaml").read_text())
        config["model"].update(estimator=estimator, params=params)
        name = estimator.split(".")[0]
        (production / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        run_dir = production / ".ci-ml/runs" / name
        done = run_cli("run", "--config", f"{name}.yaml", "--run-dir", str(run_dir), cwd=production)
        assert done.returncode == 0, done.stdout + done.stderr
        found[estimator] = run_dir
    return found


@pytest.mark.parametrize("estimator", sorted(BOOSTERS))
def test_each_booster_is_gated_against_production_on_the_same_rows(
    estimator: str, runs: dict[str, Path], production: Path
) -> None:
    run_dir = runs[estimator]
    card = read_record(run_dir / "model.json", ModelCard)
    assert card.model_file == "model.bundle" and card.estimator == estimator
    evaluation = read_record(run_dir / "evaluation.json", Evaluation)
    hgb = read_record(production / ".ci-ml/runs/hgb/evaluation.json", Evaluation)
    assert evaluation.baseline is not None and evaluation.baseline.problem is None
    assert evaluation.baseline.digest == hgb.candidate.digest
    assert {"roc_auc", "accuracy"} <= set(evaluation.comparisons)
    auc = evaluation.comparisons["roc_auc"]
    assert auc.production == pytest.approx(hgb.candidate.metrics["roc_auc"], abs=1e-12)
    assert auc.n == hgb.rows.holdout  # the very holdout rows production was judged on
    assert evaluation.candidate.operational.churn is not None
    gate = read_record(run_dir / "gate-report.json", GateReport)
    assert gate.verdict == "pass", gate.reasons
    assert gate.baseline is not None and gate.baseline.digest == hgb.candidate.digest


@pytest.mark.parametrize("estimator", sorted(BOOSTERS))
def test_each_registered_booster_serves_the_same_answer_alone_and_in_a_batch(
    estimator: str, runs: dict[str, Path], production: Path
) -> None:
    registry = open_registry(".ci-ml/registry", root=production)
    version = registry.get(read_record(runs[estimator] / "model.json", ModelCard).digest)
    assert version.model_file == "model.bundle"
    loaded = load_version(registry, version, [])
    rows = pd.read_csv(production / "data/credit_data.csv").drop(columns=["Status"]).head(12)
    rows.loc[1, "Home"] = "castle"  # a category the model never saw
    rows.loc[2, "Income"] = None
    batch = loaded.predict(rows)
    alone = [loaded.predict(rows.iloc[[i]])[0] for i in range(len(rows))]
    assert [a["label"] for a in alone] == [b["label"] for b in batch]
    np.testing.assert_allclose(
        [a["probability"] for a in alone], [b["probability"] for b in batch], atol=1e-9
    )
    assert {b["label"] for b in batch} <= {"bad", "good"}


def pickled(data: bytes) -> bool:
    """Whether ``data`` is a pickle (protocol 2+ opens with PROTO, ends with STOP) or a
    joblib file (its compressed variants open with their own magic)."""
    if len(data) >= 2 and data[0] == 0x80 and data[1] in range(2, 6) and data.rstrip()[-1:] == b".":
        return True
    return data.startswith((b"ZF", b"\x1f\x8b\x08")) and b"joblib" in data[:200]


def object_arrays(name: str, data: bytes) -> bool:
    """Whether a .npy member holds an object array (numpy pickles those)."""
    if not name.endswith(".npy"):
        return False
    import io

    stream = io.BytesIO(data)
    major, _ = np.lib.format.read_magic(stream)
    read = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    _, _, dtype = read(stream)
    return bool(dtype.hasobject)


def scan(folder: Path) -> list[str]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if pickled(data):
            found.append(str(path))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    member = archive.read(name)
                    if pickled(member) or object_arrays(name, member):
                        found.append(f"{path}!{name}")
                    if zipfile.is_zipfile(io_of(member)):  # the skops file inside a bundle
                        with zipfile.ZipFile(io_of(member)) as inner:
                            for inner_name in inner.namelist():
                                part = inner.read(inner_name)
                                if pickled(part) or object_arrays(inner_name, part):
                                    found.append(f"{path}!{name}!{inner_name}")
    return found


def io_of(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def test_no_file_of_any_run_or_registry_version_is_a_pickle(
    runs: dict[str, Path], production: Path
) -> None:
    assert runs  # every booster ran
    assert pickled(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")  # the scan sees one
    buffer = io_of(b"")
    np.save(buffer, np.array(["a", None], dtype=object), allow_pickle=True)
    assert object_arrays("x.npy", buffer.getvalue())  # and an object array
    assert scan(production / ".ci-ml") == []
    bundles = list((production / ".ci-ml/registry").rglob("*"))
    assert len([p for p in bundles if p.is_file()]) > 10  # the registry's objects were scanned
