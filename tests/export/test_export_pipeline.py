"""The export inside the pipeline: `run` exports, gates on parity, registers the ONNX file
beside the skops one, and `ci-ml serve` then answers with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ci_ml import api, rundir
from ci_ml.project import Project, open_project
from ci_ml.registry import open_registry
from tests.conftest import as_files

pytestmark = pytest.mark.slow


def with_export(project: Path, **export: object) -> Project:
    path = project / "ci-ml.yaml"
    config = yaml.safe_load(path.read_text())
    config["export"] = {"format": "onnx", **export}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return open_project(path)


def test_run_exports_gates_on_parity_and_registers_the_onnx_file(project: Path) -> None:
    proj = with_export(project)
    results = as_files(api.run(proj, rundir.new_run_dir(proj.runs_dir)))
    parity = next(g for g in results["gate"]["gates"] if g["kind"] == "parity")
    assert parity["verdict"] == "pass", parity["reason"]
    assert results["gate"]["verdict"] == "pass"
    version = results["register"]
    assert "model.onnx" in version.files and "model.skops" in version.files
    fetched = open_registry(".ci-ml/registry", root=project).fetch(
        version.version, project / "fetched"
    )
    assert fetched["model.onnx"].stat().st_size > 0


def test_an_export_that_answers_differently_blocks_the_run(project: Path) -> None:
    # a float32 graph moves rows across tree thresholds (see docs/export.md)
    proj = with_export(project, numeric_dtype="float32")
    results = as_files(api.run(proj, rundir.new_run_dir(proj.runs_dir)))
    parity = next(g for g in results["gate"]["gates"] if g["kind"] == "parity")
    assert parity["verdict"] == "fail"
    assert results["gate"]["verdict"] == "fail"
    assert "register" not in results


def test_the_service_serves_the_onnx_export(project: Path) -> None:
    proj = with_export(project)
    results = as_files(api.run(proj, rundir.new_run_dir(proj.runs_dir)))
    registry = open_registry(".ci-ml/registry", root=project)
    registry.promote(results["register"].version, None, by="test")
    from ci_ml.serve.model import load_version

    loaded = load_version(registry, registry.get(results["register"].version), [])
    assert loaded.runtime == "onnx"
    sample = rundir.read_json(project / ".ci-ml/runs/latest", rundir.SMOKE)
    import pandas as pd

    answers = loaded.predict(pd.DataFrame(sample["records"]))
    got = [a["probability"] for a in answers]
    assert got == pytest.approx(sample["expected"], abs=1e-4)
