"""Real races and real crashes against every registry backend.

Worker processes are separate Python interpreters (``python -c``) that import ci_ml like any
caller. Races start together on a signal; crashes are SIGKILL after random delays.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import ci_ml
from ci_ml.registry import Registry, open_registry
from tests.registry.test_registry import make_model, moto_endpoint, registry_url, s3_admin  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = 8
ROUNDS = 2
CYCLES = 3

RACER = """
import sys
from pathlib import Path
from ci_ml.errors import ConflictError
from ci_ml.registry import open_registry

registry, name = open_registry(sys.argv[1]), sys.argv[2]
registry.get_production()  # connect before the races start
print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "register":
        files = {"model.skops": Path(args[0]), "model.json": Path(args[1])}
        print(registry.register(files, {"worker": name}, by=name).digest, flush=True)
        continue
    expected, candidate = args
    try:
        registry.promote(candidate, None if expected == "-" else expected, by=name)
        print("won", flush=True)
    except ConflictError:
        print("lost", flush=True)
"""

CHURNER = """
import os, random, sys
from pathlib import Path
from ci_ml.errors import ConflictError
from ci_ml.registry import open_registry

registry, work = open_registry(sys.argv[1]), Path(sys.argv[2])
registry.get_production()
print("ready", flush=True)
for n in range(1_000_000):
    model = work / f"model-{n}.skops"
    model.write_bytes(os.urandom(random.choice([100, 10_000, 500_000])))
    (work / "model.json").write_text('{"n": %d}' % n)
    files = {"model.skops": model, "model.json": work / "model.json"}
    version = registry.register(files, {"n": n}, by=f"churner-{os.getpid()}")
    current = registry.get_production()
    try:
        registry.promote(version.version, current and current.version, by=str(os.getpid()))
    except ConflictError:
        pass
    model.unlink()
"""


@contextmanager
def workers(source: str, *argvs: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start one worker per argv, wait until each says "ready"; kill any left at the end."""
    env = {**os.environ, "PYTHONPATH": str(Path(ci_ml.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", source, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


def say(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def answer(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def assert_consistent(registry: Registry, scratch: Path) -> None:
    """Every listed version verifies; history is gapless and chained; the head is readable."""
    versions = registry.list_versions()
    for version in versions:
        assert version.digest.startswith(version.version)
        registry.fetch(version.version, scratch / version.version)  # raises unless sha256 match
    known = {v.version for v in versions}
    history = registry.history()
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    for before, event in zip([None, *history], history, strict=False):
        assert event.previous == (None if before is None else before.version)
        assert event.version in known
    production = registry.get_production()
    assert (production and production.version) == (history[-1].version if history else None)


def test_racing_writers_agree_and_exactly_one_promotion_wins(
    registry_url: str,  # noqa: F811
    tmp_path: Path,
):
    registry = open_registry(registry_url)
    with workers(RACER, *([registry_url, f"worker-{i}"] for i in range(WORKERS))) as procs:
        base = race_registrations(procs, registry, tmp_path)
        registry.promote(base, None, by="setup")
        for round_ in range(ROUNDS):
            race_promotions(procs, registry, tmp_path / f"round-{round_}")
    assert_consistent(registry, tmp_path / "check")
    assert len(registry.history()) == ROUNDS + 1


def race_registrations(procs: list[subprocess.Popen[str]], registry: Registry, tmp: Path) -> str:
    """All workers register one model, each with its own side file; all get the same version."""
    model = tmp / "model.skops"
    model.write_bytes(os.urandom(300_000))
    for i, proc in enumerate(procs):
        side = tmp / f"model-{i}.json"
        side.write_text(f'{{"worker": {i}}}')
        say(proc, f"register {model} {side}")
    digests = {answer(proc) for proc in procs}
    [version] = registry.list_versions()
    assert digests == {version.digest}
    files = registry.fetch(version.version, tmp / "fetched")
    # The side file is the one the record names: the winner's, never a mix of writers.
    winner = version.registered_by.removeprefix("worker-")
    assert files["model.json"].read_text() == f'{{"worker": {winner}}}'
    return version.version


def race_promotions(procs: list[subprocess.Popen[str]], registry: Registry, tmp: Path) -> None:
    """All workers promote their own candidate over the same production: exactly one wins."""
    current = registry.get_production()
    assert current is not None
    candidates = [
        registry.register(make_model(tmp / str(i), os.urandom(64)), {}, by="setup").version
        for i in range(len(procs))
    ]
    for proc, candidate in zip(procs, candidates, strict=True):
        say(proc, f"promote {current.version} {candidate}")
    results = [answer(proc) for proc in procs]
    assert sorted(results) == ["lost"] * (len(procs) - 1) + ["won"]
    won = results.index("won")
    last = registry.history()[-1]
    assert (last.version, last.previous, last.by) == (
        candidates[won],
        current.version,
        f"worker-{won}",
    )


def test_killed_writers_leave_a_consistent_registry(
    registry_url: str,  # noqa: F811
    tmp_path: Path,
):
    rng = random.Random(20240501)
    for cycle in range(CYCLES):
        work = [tmp_path / f"work-{cycle}-{i}" for i in range(2)]
        for folder in work:
            folder.mkdir()
        with workers(CHURNER, *([registry_url, str(w)] for w in work)) as procs:
            time.sleep(rng.uniform(0.2, 0.8))
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
                time.sleep(rng.uniform(0.0, 0.1))
        assert_consistent(open_registry(registry_url), tmp_path / f"check-{cycle}")
    registry = open_registry(registry_url)
    assert len(registry.history()) > 0, "the workers never got to promote: give them more time"
