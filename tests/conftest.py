"""Shared fixtures: the example project as a real git + DVC repository, and the CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# files of the example project that a copy needs (the package itself is installed)
EXAMPLE_FILES = [
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data.dvc",
    "ci-ml.yaml",
    "expectations",
    "dvc-storage",
]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_example_repo(dest: Path, files: list[str] = EXAMPLE_FILES) -> Path:
    """Copy the example project's tracked files (or ``files`` of this repo) into ``dest`` as a
    fresh git repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        source = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(
        dest,
        "-c",
        "user.name=ci-ml tests",
        "-c",
        "user.email=tests@ci-ml.invalid",
        "commit",
        "-q",
        "-m",
        "example project",
    )
    return dest


@pytest.fixture(scope="session")
def pulled_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project with its data pulled by DVC (read-only template)."""
    repo = make_example_repo(tmp_path_factory.mktemp("template") / "repo")
    subprocess.run([sys.executable, "-m", "dvc", "pull", "-q"], cwd=repo, check=True)
    return repo


@pytest.fixture
def project(pulled_example: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the pulled example project."""
    dest = tmp_path / "project"
    shutil.copytree(pulled_example, dest, symlinks=True)
    return dest


def validated_data_report(checks: list[Any], **fields: Any) -> Any:
    """The data-report.json record of ``checks``, as api.validate writes it."""
    from ci_ml import quality
    from ci_ml.records import DataReport

    extra = {
        "data_version": "md5:0123.dir",
        "task": "classification",
        "rows": {"train": 80, "holdout": 20},
        "suite": None,
        "created_at": "2026-12-01T00:00:00+00:00",
        **fields,
    }
    return DataReport.model_validate(quality.report(list(checks), extra))


def as_files(results: dict[str, Any]) -> dict[str, Any]:
    """The results of ``api.run`` with each run record as its file holds it (JSON)."""
    from pydantic import BaseModel

    return {
        name: found.model_dump(mode="json") if isinstance(found, BaseModel) else found
        for name, found in results.items()
    }


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ci-ml`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "ci_ml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_and_promote(root: Path, config: str) -> None:
    """``ci-ml run`` in ``root`` and the promotion of the version it registered (its first)."""
    done = run_cli("run", "--config", config, cwd=root)
    assert done.returncode == 0, done.stderr
    version = next((root / ".ci-ml/registry/versions").glob("*.json")).stem
    done = run_cli("registry", "promote", version, "--config", config, cwd=root)
    assert done.returncode == 0, done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(registry: Path, cwd: Path, log: Path, admin_token: str) -> Iterator[str]:
    """``ci-ml serve`` on ``registry`` on a free loopback port (one thread, the reload
    endpoint enabled by ``admin_token``); yields its URL once it answers, stops it after."""
    import requests

    port = free_port()
    options = ["--registry", str(registry), "--port", str(port), "--threads", "1"]
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ci_ml", "serve", *options],
            cwd=cwd,
            env={**os.environ, "CI_ML_ADMIN_TOKEN": admin_token},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health/live", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        proc.kill()
        proc.wait()
        pytest.fail(f"ci-ml serve did not start: {log.read_text()}")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


from tests.github_api.fixtures import *  # noqa: E402, F403  (the local GitHub API server)
