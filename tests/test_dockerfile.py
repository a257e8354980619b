"""The Dockerfile of ``ci-ml serve``: built by no test here (these machines have no Docker
daemon), so what can be checked without one is: its instructions (pinned base, not root, a
health check, the extras it installs exist), and its ENTRYPOINT + CMD run as they are, with
this checkout's ci-ml, against a registry with a production model — the health check it
declares passes and the service predicts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import requests
from dockerfile_parse import DockerfileParser

from tests.conftest import REPO, free_port

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return list(parser.structure)


def final_stage() -> list[dict[str, Any]]:
    found = instructions()
    last = max(i for i, ins in enumerate(found) if ins["instruction"] == "FROM")
    return found[last:]


def exec_form(name: str) -> list[str]:
    (value,) = [i["value"] for i in final_stage() if i["instruction"] == name]
    return list(json.loads(value))


def test_bases_are_pinned_and_the_service_never_runs_as_root() -> None:
    bases = [i["value"].split(" ")[0] for i in instructions() if i["instruction"] == "FROM"]
    for base in bases:
        image, _, tag = base.partition(":")
        assert image == "python" and re.fullmatch(r"3\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", tag)
    users = [i["value"] for i in final_stage() if i["instruction"] == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert not any(i["instruction"] == "ADD" for i in instructions())  # no remote fetches
    secrets = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
    for ins in instructions():
        if ins["instruction"] in ("ENV", "ARG"):
            assert not secrets.search(ins["value"].split("=")[0]), ins["value"]


def test_the_extras_it_installs_exist() -> None:
    (arg,) = [i["value"] for i in instructions() if i["instruction"] == "ARG"]
    name, _, default = arg.partition("=")
    assert name == "EXTRAS"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(default.split(",")) <= set(extras) and "serve" in default.split(",")
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    # the build context is only what the image needs: no data, runs, registry or tests
    assert "*" in ignored and "!ci_ml/" in ignored
    assert not [line for line in ignored if line.startswith("!") and "test" in line]


@pytest.fixture
def production(tmp_path: Path) -> Path:
    """A registry with a production model (the serve tests' small pipeline)."""
    from ci_ml.registry.local import LocalRegistry
    from tests.serve.test_serve import fit, make_data, register

    registry = LocalRegistry(tmp_path / "registry")
    frame, y = make_data()
    version = register(registry, fit(frame, y), frame, tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    return tmp_path / "registry"


def test_its_command_serves_and_its_health_check_passes(production: Path, tmp_path: Path) -> None:
    port = str(free_port())
    command = [*exec_form("ENTRYPOINT"), *exec_form("CMD")]
    assert command[:2] == ["ci-ml", "serve"] and command[-2:] == ["--registry", "/registry"]
    # as the container runs it, but on a free port, on loopback, with this checkout's ci-ml
    # and a local registry in place of the mounted /registry
    swap = {"8000": port, "0.0.0.0": "127.0.0.1", "/registry": str(production)}
    args = [swap.get(a, a) for a in command[2:]]
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ci_ml", "serve", *args],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    try:
        healthy = _health_check_passes(port)
        assert healthy, (tmp_path / "serve.log").read_text()
        answer = requests.post(
            f"http://127.0.0.1:{port}/predict",
            json={"record": {"income": 41.5, "age": 70, "home": "rent"}},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["predictions"][0]["label"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _health_check_passes(port: str) -> bool:
    """The Dockerfile's HEALTHCHECK command, run as Docker would (on our port), until it
    passes or 60 s go by."""
    (value,) = [i["value"] for i in final_stage() if i["instruction"] == "HEALTHCHECK"]
    check = json.loads(value[value.index("CMD") + 3 :].strip())
    check = [part.replace(":8000/", f":{port}/") for part in check]
    assert check[0] == "python"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, *check[1:]], capture_output=True, check=False)
        if done.returncode == 0:
            return True
        time.sleep(0.5)
    return False
