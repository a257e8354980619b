"""Tests for ``ci-ml serve --workers N`` (ci_ml/serve/workers.py, cluster.py): the command run
as a real subprocess with real worker processes on a loopback port, real requests, a real
directory registry; and the deploy smoke test's check of every worker (ci_ml/deploy/smoke.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_ml.deploy.smoke import wait_for_digest
from ci_ml.errors import ServiceError
from ci_ml.registry.local import LocalRegistry
from tests.conftest import REPO
from tests.serve.conftest import Versions
from tests.serve.test_serve import ROWS, TOKEN, make_data, register, reload, same_answers
from tests.serve.test_shadow import children


class Service:
    """A running ``ci-ml serve`` process: its URL, and its stderr so far."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        listening = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                self.lines.append(line)
                found = re.search(r"listening on (http://\S+)", line)
                if found:
                    self.url = found.group(1)
                    listening.set()
            listening.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        listening.wait(timeout=120)
        assert self.url, "".join(self.lines)

    def log(self) -> str:
        return "".join(self.lines)


@contextmanager
def serving(registry: LocalRegistry, *args: str, cwd: Path) -> Iterator[Service]:
    """``ci-ml serve --registry ... ARGS --port 0`` until the block ends (SIGTERM)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ci_ml", "serve", "--registry", str(registry.path), *args],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "CI_ML_ADMIN_TOKEN": TOKEN},
    )
    service = Service(process)
    try:
        _wait_for(lambda: _all_ready(service.url))
        yield service
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            process.wait()
            service.reader.join(timeout=30)
            assert process.stderr is not None
            process.stderr.close()


def _all_ready(url: str) -> bool:
    try:
        answer = requests.get(f"{url}/version", timeout=5)
    except requests.RequestException:
        return False
    workers = answer.json().get("workers") if answer.ok else None
    return bool(workers) and all(w["model_digest"] for w in workers)


def _version(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/version", timeout=30).json()


def _wait_for_restart(url: str, pid: int) -> None:
    """Until worker 1, which had ``pid``, runs again in another process and serves a model."""

    def restarted() -> bool:
        workers = _version(url)["workers"]
        return workers[0]["pid"] not in (None, pid) and bool(workers[0]["model_digest"])

    _wait_for(restarted)


def _wait_for(condition: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_answer_and_each_gets_requests(versions: Versions, tmp_path: Path) -> None:
    registry, v1, _, answers = versions
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        workers = _version(service.url)["workers"]
        assert [w["worker"] for w in workers] == [1, 2]
        assert len({w["pid"] for w in workers}) == 2
        assert {w["model_digest"] for w in workers} == {v1.digest}
        seen = set()
        for _ in range(60):  # a new connection each: the kernel spreads them over the workers
            seen.add(_version(service.url)["worker"])
            body = requests.post(f"{service.url}/predict", json={"records": ROWS}, timeout=30)
            assert same_answers(body.json()["predictions"], answers[v1.version])
            if seen == {1, 2}:
                break
        assert seen == {1, 2}


@pytest.mark.slow
def test_a_reload_under_load_switches_every_worker_with_no_failed_or_mixed_answer(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, v2, answers = versions
    stop = threading.Event()
    results: list[tuple[float, float, int, str, dict[str, Any]]] = []  # sent, got, answer

    def hammer(url: str, keep_alive: bool) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                sent = time.monotonic()
                post = session.post if keep_alive else requests.post
                r = post(f"{url}/predict", json={"records": ROWS}, timeout=60)
                got = time.monotonic()
                version = r.headers.get("X-Model-Version", "")
                results.append((sent, got, r.status_code, version, r.json()))

    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        clients = [
            threading.Thread(target=hammer, args=(service.url, i % 2 == 0)) for i in range(4)
        ]
        for client in clients:
            client.start()
        switched: list[tuple[float, float, str]] = []  # each reload's start, end, version
        current, other = v1, v2
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline or len(switched) < 4:
            registry.promote(other.version, current.version, by="tests")
            started = time.monotonic()
            answer = reload(service.url)
            assert answer.status_code == 200, answer.text
            assert answer.json()["outcome"] == "swapped"
            assert {w["model_version"] for w in answer.json()["workers"]} == {other.version}
            switched.append((started, time.monotonic(), other.version))
            current, other = other, current
            time.sleep(0.3)
        stop.set()
        for client in clients:
            client.join(timeout=120)
    assert len(results) > 50
    assert {status for _, _, status, _, _ in results} == {200}
    for sent, got, _, header, body in results:
        assert header == body["model_version"]
        assert same_answers(body["predictions"], answers[header])  # never a mixed answer
        before = [version for _, end, version in switched if end <= sent]
        if before:  # sent after a reload answered: its version, or that of one under way
            later = {version for start, end, version in switched if start < got and end > sent}
            assert header in {before[-1], *later}, (sent, got, switched)
    assert {header for _, _, _, header, _ in results} == {v1.version, v2.version}


def test_a_refused_version_leaves_every_worker_on_the_old_one(
    versions: Versions, tmp_path: Path, broken_models: dict[str, Any]
) -> None:
    registry, v1, _, _ = versions
    broken = register(registry, broken_models["failed"], make_data()[0], tmp_path / "broken")
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        registry.promote(broken.version, v1.version, by="tests")
        answer = reload(service.url)
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert detail.startswith(f"version {broken.version} cannot be served: ")
        assert "2 of 2 refused it, so every worker keeps serving" in detail
        assert answer.json()["serving"] == v1.version
        assert {w["model_digest"] for w in _version(service.url)["workers"]} == {v1.digest}
        assert requests.get(f"{service.url}/health", timeout=30).status_code == 200
        metrics = requests.get(f"{service.url}/metrics", timeout=30).text
        assert 'ci_ml_model_reloads_total{outcome="refused"} 1\n' in metrics


@pytest.mark.slow
def test_a_worker_that_dies_while_preparing_leaves_every_worker_on_the_old_version(
    versions: Versions, tmp_path: Path
) -> None:
    """One worker of two cannot load the new version (it dies while it should be loading it):
    the other, which staged it, drops it too, and the dead one comes back on the old one."""
    registry, v1, v2, answers = versions
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        registry.promote(v2.version, v1.version, by="tests")
        doomed = _version(service.url)["workers"][0]["pid"]
        os.kill(doomed, signal.SIGSTOP)  # it gets the "prepare" message but cannot answer it
        try:
            answered: list[requests.Response] = []
            asking = threading.Thread(target=lambda: answered.append(reload(service.url)))
            asking.start()  # reaches the other worker: the stopped one accepts nothing
            time.sleep(2.0)  # the supervisor has sent both workers "prepare" by now
        finally:
            os.kill(doomed, signal.SIGKILL)
        asking.join(timeout=120)
        answer = answered[0]
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("worker 1 exited (code -9) while loading it")
        assert "1 of 2 refused it, so every worker keeps serving" in detail
        assert answer.json()["serving"] == v1.version

        _wait_for_restart(service.url, doomed)
        assert {w["model_digest"] for w in _version(service.url)["workers"]} == {v1.digest}
        for _ in range(10):  # a new connection each: no worker answers with the dropped version
            body = requests.post(f"{service.url}/predict", json={"records": ROWS}, timeout=30)
            assert body.json()["model_version"] == v1.version
            assert same_answers(body.json()["predictions"], answers[v1.version])
        metrics = requests.get(f"{service.url}/metrics", timeout=30).text
        assert 'ci_ml_model_reloads_total{outcome="failed"} 1\n' in metrics
        # nothing of the dropped attempt lingers: the next reload switches both workers
        again = reload(service.url)
        assert again.status_code == 200, again.text
        assert {w["model_version"] for w in again.json()["workers"]} == {v2.version}


def test_polling_switches_every_worker_when_production_changes(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, v2, _ = versions
    args = ("--workers", "2", "--poll", "0.2", "--port", "0")
    with serving(registry, *args, cwd=tmp_path) as service:
        registry.promote(v2.version, v1.version, by="tests")

        def switched() -> bool:
            workers = _version(service.url)["workers"]
            return {w["model_digest"] for w in workers} == {v2.digest} and len(workers) == 2

        _wait_for(switched)
        metrics = requests.get(f"{service.url}/metrics", timeout=30).text
        assert 'ci_ml_model_reloads_total{outcome="swapped"} 2\n' in metrics  # start, poll
        assert f'ci_ml_model_info{{version="{v2.version}",digest="{v2.digest}"}} 2\n' in metrics
    assert "now serving " + v2.version + " on every worker" in service.log()


@pytest.mark.slow
def test_each_worker_shadows_its_own_requests_and_the_metrics_sum(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, v2, answers = versions
    logs = tmp_path / "logs"
    args = ("--workers", "2", "--log-requests", str(logs), "--shadow", v2.version)
    with serving(registry, *args, "--shadow-sample", "1", "--port", "0", cwd=tmp_path) as service:
        seen = set()
        for i in range(40):  # a new connection each: the kernel spreads them over the workers
            headers = {"X-Request-ID": f"r{i}"}
            body = {"records": ROWS}
            got = requests.post(f"{service.url}/predict", json=body, headers=headers, timeout=30)
            assert got.json()["model_version"] == v1.version
            seen.add(_version(service.url)["worker"])
        assert seen == {1, 2}
        scored = f'ci_ml_shadow_rows_total{{result="scored"}} {40 * len(ROWS)}\n'
        _wait_for(lambda: scored in requests.get(f"{service.url}/metrics", timeout=30).text)
        metrics = requests.get(f"{service.url}/metrics", timeout=30).text
        assert f'ci_ml_shadow_info{{version="{v2.version}",digest="{v2.digest}"}} 2\n' in metrics
        found = [children(w["pid"]) for w in _version(service.url)["workers"]]
        shadows = [[p for p, line in mine if "ci_ml.serve.sidecar" in line] for mine in found]
        assert all(len(mine) == 1 for mine in shadows)  # each worker's own shadow process
    for pid, _ in (p for mine in found for p in mine):  # stopped with the workers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    logged = [
        json.loads(line)
        for path in logs.glob("requests-w[12]-shadow-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {p.name[:19] for p in logs.glob("*shadow*")} == {
        "requests-w1-shadow-",
        "requests-w2-shadow-",
    }
    assert sorted((e["request_id"], e["row_index"]) for e in logged) == sorted(
        (f"r{i}", j) for i in range(40) for j in range(len(ROWS))
    )
    assert {e["shadow"]["model_version"] for e in logged} == {v2.version}
    by_row = sorted((e for e in logged if e["request_id"] == "r0"), key=lambda e: e["row_index"])
    assert same_answers([e["shadow"]["prediction"] for e in by_row], answers[v2.version])


def test_a_killed_worker_is_restarted_on_the_version_the_others_serve(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, v2, _ = versions
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        registry.promote(v2.version, v1.version, by="tests")
        assert reload(service.url).json()["new_version"] == v2.version
        registry.promote(v1.version, v2.version, by="tests")  # production moved; not reloaded
        killed = _version(service.url)["workers"][0]["pid"]
        os.kill(killed, signal.SIGKILL)

        _wait_for_restart(service.url, killed)
        assert {w["model_version"] for w in _version(service.url)["workers"]} == {v2.version}
        assert f"(pid {killed}) exited with code -9; restarting it" in service.log()


def test_metrics_sum_the_requests_of_every_worker(versions: Versions, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    registry, v1, _, _ = versions
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        for _ in range(30):  # a new connection each
            assert requests.post(f"{service.url}/predict", json={"records": ROWS}, timeout=30).ok
        text = requests.get(f"{service.url}/metrics", timeout=30).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ok = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    assert samples[("ci_ml_http_requests_total", ok)] == 30
    assert samples[("ci_ml_http_request_duration_seconds_count", (("route", "/predict"),))] == 30
    assert samples[("ci_ml_predicted_rows_total", ())] == 30 * len(ROWS)
    info = (("digest", v1.digest), ("version", v1.version))
    assert samples[("ci_ml_model_info", info)] == 2  # both workers serve it
    assert samples[("ci_ml_model_loaded", ())] == 1
    assert samples[("ci_ml_workers", ())] == 2
    assert samples[("ci_ml_model_reloads_total", (("outcome", "swapped"),))] == 1


def test_each_worker_logs_requests_in_its_own_files(versions: Versions, tmp_path: Path) -> None:
    registry = versions[0]
    logs = tmp_path / "logs"
    args = ("--workers", "2", "--log-requests", str(logs), "--log-sample", "1")
    with serving(registry, *args, "--port", "0", cwd=tmp_path) as service:
        for _ in range(40):
            assert requests.post(f"{service.url}/predict", json={"records": ROWS}, timeout=30).ok
        metrics = f'ci_ml_request_log_rows_total{{result="written"}} {40 * len(ROWS)}\n'
        _wait_for(lambda: metrics in requests.get(f"{service.url}/metrics", timeout=30).text)
    names = sorted(p.name for p in logs.iterdir())
    assert {n[:12] for n in names} == {"requests-w1-", "requests-w2-"}
    lines = [line for p in logs.iterdir() for line in p.read_text().splitlines()]
    assert len(lines) == 40 * len(ROWS)  # whole lines, none lost or torn


def test_the_deploy_smoke_test_waits_for_every_worker(versions: Versions, tmp_path: Path) -> None:
    registry, v1, v2, _ = versions
    with serving(registry, "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        wait_for_digest(service.url, v1.digest, timeout=10)
        with pytest.raises(ServiceError, match=f"{v2.digest[:12]} on 0 of 2 workers"):
            wait_for_digest(service.url, v2.digest, timeout=1)


def test_sigterm_stops_every_worker(versions: Versions, tmp_path: Path) -> None:
    with serving(versions[0], "--workers", "2", "--port", "0", cwd=tmp_path) as service:
        pids = [w["pid"] for w in _version(service.url)["workers"]]
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert service.log().count("Application shutdown complete") == 2  # read to the end


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--workers is 0; give a whole number from 1 to 64"),
        ("65", "--workers is 65; give a whole number from 1 to 64"),
        ("many", "Invalid value for '--workers'"),
    ],
)
def test_bad_workers_exit_2_with_one_line(
    value: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ci_ml.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_ML_ADMIN_TOKEN", raising=False)
    args = ["serve", "--registry", str(tmp_path / "r"), "--workers", value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("ci-ml: ") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_one_request_changes_the_shadow_sample_of_every_worker_and_a_restarted_one(
    versions: Versions, tmp_path: Path
) -> None:
    registry, v1, v2, _answers = versions
    logs = tmp_path / "logs"
    args = ("--workers", "2", "--log-requests", str(logs), "--log-sample", "0.01")
    args += ("--shadow", v2.version, "--shadow-sample", "1", "--port", "0")
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def spread(count: int) -> set[int]:
        """``count`` requests, a new connection each (the kernel spreads them): the workers."""
        seen = set()
        for _ in range(count):
            got = requests.post(f"{service.url}/predict", json={"records": ROWS}, timeout=30)
            assert got.json()["model_version"] == v1.version
            seen.add(_version(service.url)["worker"])
        return seen

    def scored() -> float:
        text = requests.get(f"{service.url}/metrics", timeout=30).text
        found = re.search(r'^ci_ml_shadow_rows_total\{result="scored"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    with serving(registry, *args, cwd=tmp_path) as service:
        paused = requests.post(
            f"{service.url}/admin/shadow", json={"sample": 0}, headers=auth, timeout=30
        )
        assert paused.json()["previous_sample"] == 1.0
        assert spread(30) == {1, 2}  # both workers answered, neither shadowed
        doomed = _version(service.url)["workers"][0]["pid"]
        os.kill(doomed, signal.SIGKILL)

        _wait_for_restart(service.url, doomed)
        assert spread(30) == {1, 2}
        time.sleep(1.0)  # what was queued would have been scored by now
        assert scored() == 0
        metrics = requests.get(f"{service.url}/metrics", timeout=30).text
        assert "\nci_ml_shadow_sample 0.0\n" in metrics
        resumed = requests.post(
            f"{service.url}/admin/shadow", json={"sample": 1}, headers=auth, timeout=30
        )
        assert resumed.json()["previous_sample"] == 0.0
        assert spread(20) == {1, 2}
        _wait_for(lambda: scored() == 20 * len(ROWS))
