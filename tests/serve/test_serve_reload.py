"""Tests for reloading the served model (ci_ml/serve/reload.py, servemodel.py) and for the sampled
request log (ci_ml/serve/requestlog.py), against a real service on loopback and a real registry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_ml.registry import ModelVersion
from ci_ml.registry.local import LocalRegistry
from ci_ml.serve.requestlog import RequestLog
from ci_ml.serve.service import RequestLogSettings
from tests.serve.conftest import Versions
from tests.serve.test_serve import (
    ROWS,
    TOKEN,
    make_data,
    predict,
    register,
    reload,
    running,
    same_answers,
)


def _version(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/version", timeout=30).json()


def _switch(registry: LocalRegistry, to: ModelVersion, current: ModelVersion) -> None:
    registry.promote(to.version, current.version, by="tests")


def test_reload_serves_the_new_production_version(versions: Versions) -> None:
    registry, v1, v2, answers = versions
    with running(registry, admin_token=TOKEN) as url:
        assert reload(url).json()["outcome"] == "unchanged"
        _switch(registry, v2, v1)
        response = reload(url)
        assert response.status_code == 200
        assert response.json() == {
            "outcome": "swapped",
            "old_version": v1.version,
            "new_version": v2.version,
            "model_digest": v2.digest,
        }
        assert _version(url)["model_digest"] == v2.digest
        body = predict(url, {"records": ROWS}).json()
        assert body["model_version"] == v2.version
        assert same_answers(body["predictions"], answers[v2.version])


@pytest.mark.parametrize("reason", ["failed", "untrusted type"])
def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    versions: Versions, tmp_path: Path, broken_models: dict[str, Any], reason: str
) -> None:
    registry, v1, _, answers = versions
    frame, _ = make_data()
    broken = register(registry, broken_models[reason], frame, tmp_path / "broken")
    with running(registry, admin_token=TOKEN) as url:
        _switch(registry, broken, v1)
        response = reload(url)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith(f"version {broken.version} cannot be served: ")
        assert reason in detail and f"still serving {v1.version}" in detail
        assert response.json()["serving"] == v1.version
        assert _version(url)["model_digest"] == v1.digest
        body = predict(url, {"records": ROWS}).json()
        assert same_answers(body["predictions"], answers[v1.version])
        health = requests.get(f"{url}/health", timeout=30)
        assert health.status_code == 200  # still ready: it serves the old model


def test_a_file_that_is_not_a_skops_model_is_refused(versions: Versions, tmp_path: Path) -> None:
    registry, v1, _, _ = versions
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "model.skops").write_bytes(b"\x80\x04not a zip file")
    files = {
        "model.skops": tmp_path / "pickle" / "model.skops",
        "model.json": tmp_path / "v1" / "model.json",
    }
    bogus = registry.register(files, {}, by="tests")
    with running(registry, admin_token=TOKEN) as url:
        _switch(registry, bogus, v1)
        response = reload(url)
        assert response.status_code == 422
        assert "not a skops model file" in response.json()["detail"]
        assert _version(url)["model_version"] == v1.version


def test_a_broken_production_model_at_start_is_not_ready_with_the_reason(
    versions: Versions, tmp_path: Path, broken_models: dict[str, Any]
) -> None:
    registry, v1, v2, _ = versions
    broken = register(registry, broken_models["failed"], make_data()[0], tmp_path / "broken")
    _switch(registry, broken, v1)
    with running(registry, admin_token=TOKEN) as url:
        health = requests.get(f"{url}/health", timeout=30)
        assert health.status_code == 503
        assert f"version {broken.version} cannot be served" in health.json()["reason"]
        _switch(registry, v2, broken)
        assert reload(url).json()["new_version"] == v2.version
        assert requests.get(f"{url}/health", timeout=30).status_code == 200


def test_polling_picks_up_new_production_and_skips_a_refused_one(
    versions: Versions, tmp_path: Path, broken_models: dict[str, Any]
) -> None:
    registry, v1, v2, _ = versions
    broken = register(registry, broken_models["failed"], make_data()[0], tmp_path / "broken")
    with running(registry, poll_seconds=0.1) as url:
        _switch(registry, broken, v1)
        _wait_for(lambda: 'outcome="refused"' in _metrics(url))
        time.sleep(0.5)  # several more polls: the refused version is not loaded again
        assert 'ci_ml_model_reloads_total{outcome="refused"} 1\n' in _metrics(url)
        assert _version(url)["model_version"] == v1.version
        _switch(registry, v2, broken)
        _wait_for(lambda: _version(url)["model_version"] == v2.version)


def _metrics(url: str) -> str:
    return requests.get(f"{url}/metrics", timeout=30).text


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_no_failed_or_mixed_response_while_reloading_under_load(versions: Versions) -> None:
    registry, v1, v2, answers = versions
    stop = threading.Event()
    results: list[tuple[int, str, dict[str, Any]]] = []

    def hammer(url: str) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(f"{url}/predict", json={"records": ROWS}, timeout=60)
                results.append((r.status_code, r.headers.get("X-Model-Version", ""), r.json()))

    with running(registry, admin_token=TOKEN) as url:
        workers = [threading.Thread(target=hammer, args=(url,)) for _ in range(4)]
        for w in workers:
            w.start()
        swaps, current, other = 0, v1, v2
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline or swaps < 4:
            _switch(registry, other, current)
            assert reload(url).json()["outcome"] == "swapped"
            swaps, current, other = swaps + 1, other, current
            time.sleep(0.05)
        stop.set()
        for w in workers:
            w.join(timeout=120)
    assert len(results) > 10
    assert {status for status, _, _ in results} == {200}
    seen = set()
    for _, header, body in results:
        assert header == body["model_version"]
        seen.add(header)
        assert same_answers(body["predictions"], answers[header])
    assert seen == {v1.version, v2.version}


# -- the request log ------------------------------------------------------------------------------


def _lines(files: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_sampled_rows_are_logged_and_the_files_are_capped(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, _, answers = versions
    logs = tmp_path / "logs"
    settings = RequestLogSettings(logs, sample=1.0, max_bytes=1500, max_files=3)
    with running(registry, request_log=settings) as url:
        for row in ROWS * 6:
            assert predict(url, {"record": row}).status_code == 200
        _wait_for(lambda: 'ci_ml_request_log_rows_total{result="written"} 30' in _metrics(url))
    files = sorted(logs.iterdir())
    last = int(files[-1].name[9:15])
    assert last >= 4  # 30 lines of ~200 bytes need 4 or more files of 1500 bytes
    assert [f.name for f in files] == [
        f"requests-{i:06d}.jsonl" for i in (last - 2, last - 1, last)
    ]
    assert all(f.stat().st_size <= 1500 for f in files)
    lines = _lines(files)
    assert 10 <= len(lines) < 30  # the oldest files were deleted
    assert {line["model_version"] for line in lines} == {v1.version}
    assert lines[-1]["row"] == ROWS[-1]
    assert same_answers([lines[-1]["prediction"]], answers[v1.version][-1:])
    assert lines[-1]["ts"].endswith("Z")


def test_a_new_log_continues_the_numbering_and_long_lines_get_their_own_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "requests-000007.jsonl").write_text("{}\n")
    log = RequestLog(tmp_path, sample=1.0, max_bytes=300, max_files=10)  # two short lines
    log.offer("v", [{"x": "a" * 300}, {"x": 1}, {"x": 2}], [{"value": 1.0}] * 3)
    log.close()
    names = [f.name for f in log.files()]
    assert names == ["requests-000007.jsonl", "requests-000008.jsonl", "requests-000009.jsonl"]
    assert len(_lines(log.files()[1:2])) == 1  # the long line alone
    assert [line["row"] for line in _lines(log.files()[2:])] == [{"x": 1}, {"x": 2}]


def test_the_sample_fraction_is_honoured(tmp_path: Path) -> None:
    log = RequestLog(tmp_path, sample=0.1, max_bytes=10**6, max_files=2, seed=1)
    log.offer("v", [{"i": i} for i in range(2000)], [{"value": 0.0}] * 2000)
    log.close()
    assert 150 <= log.written <= 250


class _StuckLog(RequestLog):
    """A log whose disk hangs until released."""

    release = threading.Event()

    def _write(self, line: bytes) -> None:
        self.release.wait(timeout=30)
        super()._write(line)


def test_a_full_queue_drops_rows_instead_of_blocking(tmp_path: Path) -> None:
    log = _StuckLog(tmp_path, sample=1.0, max_bytes=10**6, max_files=2, queue_rows=5)
    start = time.monotonic()
    log.offer("v", [{"i": i} for i in range(50)], [{"value": 0.0}] * 50)
    assert time.monotonic() - start < 1.0
    log.release.set()
    log.close()
    assert log.dropped >= 44
    assert log.written + log.dropped == 50


def test_requests_that_do_not_fit_the_queue_are_dropped_whole(tmp_path: Path) -> None:
    _StuckLog.release.clear()  # an earlier test released it
    log = _StuckLog(tmp_path, sample=1.0, max_bytes=10**6, max_files=2, queue_rows=5)
    for request in range(4):  # 3 rows each: the first fits, the others would overflow
        rows = [{"request": request, "i": i} for i in range(3)]
        log.offer("v", rows, [{"value": 0.0}] * 3, f"r{request}")
    log.release.set()
    log.close()
    assert (log.written, log.dropped) == (3, 9)
    assert {line["request_id"] for line in _lines(log.files())} == {"r0"}


def test_a_line_orjson_refuses_is_written_by_json(tmp_path: Path) -> None:
    # an integer beyond 64 bits: the service's json reads it, orjson cannot write it
    rows = [{"x": 2**70, "name": "café"}, {"x": 1.5e-05, "name": None}]
    log = RequestLog(tmp_path, sample=1.0, max_bytes=10**6, max_files=2)
    log.offer("v", rows, [{"value": 1.0}, {"value": 2.0}], "r1")
    log.close()
    lines = _lines(log.files())
    assert [line["row"] for line in lines] == rows
    assert [line["row_index"] for line in lines] == [0, 1]
    assert lines[0]["ts"] == lines[1]["ts"]  # one request, one time


@pytest.fixture(autouse=True)
def _no_stuck_writer() -> Iterator[None]:
    yield
    _StuckLog.release.set()
