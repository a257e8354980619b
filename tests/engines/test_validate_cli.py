"""``ci-ml validate`` with ``data.engine: duckdb`` and ``spark`` (Spark's default master,
local, and a Spark Connect server on loopback), and ``ci-ml run`` on duckdb, end to end on
the DVC pipeline example (its explicit holdout file): the same data report as engine
pandas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port, run_cli
from tests.credit_pipeline import PIPELINE, PIPELINE_CONFIG, pipeline_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = pipeline_project(tmp_path_factory.mktemp("engine") / "repo")
    done = run_cli("pull", "--config", str(PIPELINE_CONFIG), cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def with_engine(root: Path, engine: str, dest: Path, **data: Any) -> Path:
    repo = dest / engine
    shutil.copytree(root, repo, symlinks=True)
    path = repo / PIPELINE_CONFIG
    config = yaml.safe_load(path.read_text())
    config["data"]["engine"] = engine
    config["data"].update(data)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def checks(run_dir: Path) -> list[dict[str, Any]]:
    report = json.loads((run_dir / "data-report.json").read_text())
    keep = ("name", "success", "column", "severity", "unexpected_count", "observed")
    return [{k: c.get(k) for k in keep} for c in report["checks"]]


def validated(repo: Path) -> list[dict[str, Any]]:
    """``ci-ml pull`` and ``ci-ml validate`` in ``repo``: the data report's checks."""
    run_dir = repo / PIPELINE / ".ci-ml/runs/check"
    for step in ("pull", "validate"):
        done = run_cli(step, "--config", str(PIPELINE_CONFIG), "--run-dir", str(run_dir), cwd=repo)
        assert done.returncode == 0, done.stderr
    return checks(run_dir)


def test_validate_on_duckdb_and_spark_reports_what_pandas_reports(
    pulled: Path, tmp_path: Path
) -> None:
    found = {}
    for engine in ("pandas", "duckdb", "spark"):
        repo = with_engine(pulled, engine, tmp_path)
        found[engine] = validated(repo)
    assert found["duckdb"] == found["pandas"]
    assert found["spark"] == found["pandas"]
    assert len(found["pandas"]) > 20  # built-ins and the example's whole suite


def test_a_whole_run_on_duckdb_passes_as_on_pandas(pulled: Path, tmp_path: Path) -> None:
    repo = with_engine(pulled, "duckdb", tmp_path)
    done = run_cli("run", "--config", str(PIPELINE_CONFIG), cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "verdict: PASS" in done.stdout


# a Spark Connect server as start-connect-server.sh runs one (Spark with the Connect plugin),
# local[2], on the port given, until its stdin closes
CONNECT_SERVER = """
import sys
from pyspark.sql import SparkSession
builder = SparkSession.builder.master("local[2]")
for key, value in {
    "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
    "spark.connect.grpc.binding.port": sys.argv[1],
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
}.items():
    builder = builder.config(key, value)
builder.getOrCreate()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def connect_server() -> Iterator[str]:
    """A Spark Connect server on a free loopback port; its ``sc://`` URL."""
    pytest.importorskip("grpc", reason="Spark Connect needs pip install 'pyspark[connect]'")
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-c", CONNECT_SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as server:
        assert server.stdout is not None and server.stdin is not None
        ready = server.stdout.readline().strip()
        assert ready == "ready", "the Spark Connect server did not start"
        yield f"sc://127.0.0.1:{port}"
        server.stdin.close()
        server.wait(timeout=120)


def test_validate_through_spark_connect_reports_what_pandas_reports(
    pulled: Path, tmp_path: Path, connect_server: str
) -> None:
    """``data.spark.remote``: the client in ci-ml's process, the data gates (the suite through
    GX's Spark datasource too) run by the server."""
    found = {}
    for engine, data in (("pandas", {}), ("spark", {"spark": {"remote": connect_server}})):
        repo = with_engine(pulled, engine, tmp_path, **data)
        found[engine] = validated(repo)
    assert found["spark"] == found["pandas"]
