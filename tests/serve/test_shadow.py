"""Tests for shadow scoring (ci_ml/serve/shadow.py, Service.after_answer): a real server on
loopback with a production and a shadow version of a real registry; the request log read back."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from ci_ml.registry import ModelVersion
from ci_ml.registry.local import LocalRegistry
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.server import serve_in_thread
from ci_ml.serve.service import RequestLogSettings, ServeSettings
from tests.conftest import run_cli
from tests.serve.test_serve import (
    ROWS,
    TOKEN,
    fit,
    make_data,
    own_answers,
    predict,
    register,
    running,
)

V2_INPUTS = [
    {"name": "income", "datatype": "FP64", "shape": [2], "data": [41.5, None]},
    {"name": "age", "datatype": "INT64", "shape": [2], "data": [70, 22]},
    {"name": "home", "datatype": "BYTES", "shape": [2], "data": ["rent", None]},
]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_data()


@pytest.fixture(scope="module")
def models(data: tuple[pd.DataFrame, np.ndarray]) -> tuple[Any, Any]:
    """Production and a shadow that answers differently."""
    return fit(*data), fit(*data, max_iter=3)


@pytest.fixture
def versions(
    tmp_path: Path, models: tuple[Any, Any], data: tuple[pd.DataFrame, np.ndarray]
) -> tuple[LocalRegistry, ModelVersion, ModelVersion]:
    registry = LocalRegistry(tmp_path / "registry")
    production = register(registry, models[0], data[0], tmp_path / "v1")
    shadow = register(registry, models[1], data[0], tmp_path / "v2")
    registry.promote(production.version, None, by="tests")
    return registry, production, shadow


@contextmanager
def shadowed(registry: LocalRegistry, shadow: str, logs: Path, **settings: Any) -> Iterator[str]:
    holder = ModelHolder(registry)
    holder.load_shadow(shadow)
    log = RequestLogSettings(logs, sample=settings.pop("log_sample", 1.0))
    with serve_in_thread(holder, ServeSettings(port=0, request_log=log, **settings)) as url:
        yield url


def lines(logs: Path) -> list[dict[str, Any]]:
    text = "".join(p.read_text() for p in sorted(logs.glob("*.jsonl")))
    return [json.loads(line) for line in text.splitlines()]


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in the metrics"
    return float(found.group(1))


def scored_metrics(url: str, timeout: float = 60) -> str:
    """/metrics once the shadow has scored something: its process has the lowest CPU
    priority, so on a busy machine its first call may come seconds after the requests."""
    deadline = time.monotonic() + timeout
    while True:
        text = requests.get(f"{url}/metrics", timeout=10).text
        if metric(text, 'ci_ml_shadow_rows_total{result="scored"}') or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_both_answers_are_logged_under_the_request_id_on_both_protocols(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion],
    models: tuple[Any, Any],
    tmp_path: Path,
) -> None:
    registry, production, shadow = versions
    logs = tmp_path / "logs"
    with shadowed(registry, shadow.version, logs, shadow_sample=1.0) as url:
        answer = predict(url, {"records": ROWS}, headers={"X-Request-ID": "json-1"})
        infer = requests.post(
            f"{url}/v2/models/model/infer",
            json={"inputs": V2_INPUTS},
            headers={"X-Request-ID": "v2-1"},
            timeout=30,
        )
        assert answer.status_code == 200 and infer.status_code == 200, infer.text
        assert answer.json()["model_version"] == production.version  # production answers
    # the service has stopped: the shadow's queue and the log were finished
    found = lines(logs)
    assert sorted((e["request_id"], e["row_index"]) for e in found) == sorted(
        [("json-1", i) for i in range(len(ROWS))] + [("v2-1", 0), ("v2-1", 1)]
    )
    json_rows = sorted(
        (e for e in found if e["request_id"] == "json-1"), key=lambda e: e["row_index"]
    )
    assert [e["prediction"] for e in json_rows] == answer.json()["predictions"]
    theirs = own_answers(models[1], ROWS)
    for entry, want in zip(json_rows, theirs, strict=True):
        assert entry["model_version"] == production.version
        assert entry["shadow"]["model_version"] == shadow.version
        assert entry["shadow"]["prediction"]["label"] == want["label"]
        assert np.isclose(entry["shadow"]["prediction"]["probability"], want["probability"])
        assert entry["shadow"]["latency_ms"] > 0
    assert json_rows[0]["shadow"]["prediction"] != json_rows[0]["prediction"]


def test_a_shadow_that_drops_a_column_scores_the_rows_production_takes(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion],
    data: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
) -> None:
    """A candidate without one of production's columns (feature selection): the requests
    carry production's columns, and the shadow takes the ones it knows."""
    registry, production, _shadow = versions
    frame = data[0].drop(columns=["home"])
    fewer = fit(frame, data[1])
    shadow = register(registry, fewer, frame, tmp_path / "fewer")
    logs = tmp_path / "logs"
    with shadowed(registry, shadow.version, logs, shadow_sample=1.0) as url:
        answer = predict(url, {"records": ROWS}, headers={"X-Request-ID": "fewer-1"})
        assert answer.status_code == 200 and answer.json()["model_version"] == production.version
        metrics = scored_metrics(url)
        assert metric(metrics, 'ci_ml_shadow_rows_total{result="scored"}') == len(ROWS)
        assert metric(metrics, 'ci_ml_shadow_rows_total{result="failed"}') == 0
    found = sorted(lines(logs), key=lambda e: e["row_index"])
    assert [e["row"] for e in found] == ROWS  # logged as production took them
    wanted = fewer.predict_proba(pd.DataFrame(ROWS).drop(columns=["home"]).astype(float))
    column = list(fewer.classes_).index("bad")
    for entry, p in zip(found, wanted[:, column], strict=True):
        assert np.isclose(entry["shadow"]["prediction"]["probability"], p)


def test_a_shadow_that_needs_a_column_production_lacks_fails_its_rows_in_one_warning(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion],
    data: tuple[pd.DataFrame, np.ndarray],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, production, _shadow = versions
    frame = data[0].drop(columns=["home"])
    fewer = register(registry, fit(frame, data[1]), frame, tmp_path / "fewer")
    registry.promote(fewer.version, production.version, by="tests")
    rows = [{k: v for k, v in row.items() if k != "home"} for row in ROWS]
    with shadowed(registry, production.version, tmp_path / "logs", shadow_sample=1.0) as url:
        for _ in range(3):
            answer = predict(url, {"records": rows})
            assert answer.status_code == 200 and answer.json()["model_version"] == fewer.version
        failed = f'ci_ml_shadow_rows_total{{result="failed"}} {3 * len(rows)}\n'
        wait_until(lambda: failed in requests.get(f"{url}/metrics", timeout=10).text, 60)
    warnings = [r.getMessage() for r in caplog.records if "failed to predict" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "it takes column(s) 'home' that production's requests do not carry" in warnings[0]


def test_a_full_shadow_queue_drops_and_counts_and_fails_no_request(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    logs = tmp_path / "logs"
    with shadowed(registry, shadow.version, logs, shadow_sample=1.0, shadow_queue=1) as url:

        def call(i: int) -> int:
            body = {"records": ROWS[:2]}
            return predict(url, body, headers={"X-Request-ID": f"r{i}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(200)))
        text = scored_metrics(url)
    assert statuses == [200] * 200
    dropped = metric(text, 'ci_ml_shadow_rows_total{result="dropped"}')
    scored = metric(text, 'ci_ml_shadow_rows_total{result="scored"}')
    assert dropped > 0 and scored > 0
    assert metric(text, 'ci_ml_shadow_rows_total{result="failed"}') == 0
    assert metric(text, "ci_ml_shadow_call_duration_seconds_count") > 0
    assert f'ci_ml_shadow_info{{version="{shadow.version}"' in text
    # a dropped request is logged as any other (log sample 1): every row once, some shadowed
    found = lines(logs)
    assert len(found) == 400
    assert len({(e["request_id"], e["row_index"]) for e in found}) == 400
    assert 0 < sum("shadow" in e for e in found) < 400


def test_the_monitor_reads_lines_with_a_shadow_as_before(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    from ci_ml.monitor.sources import read_requests

    registry, production, shadow = versions
    logs = tmp_path / "logs"
    with shadowed(registry, shadow.version, logs, shadow_sample=1.0) as url:
        assert predict(url, {"records": ROWS}).status_code == 200
    recent = read_requests(logs)
    assert len(recent.frame) == len(ROWS)
    assert recent.source["model_versions"] == {production.version: len(ROWS)}


def test_shadow_flags_are_checked_in_one_sentence(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    where = ["--registry", str(registry.url), "--port", "0"]
    without_log = run_cli("serve", *where, "--shadow", shadow.version, cwd=tmp_path)
    assert without_log.returncode == 2
    assert "give --log-requests DIR too" in without_log.stderr
    assert len(without_log.stderr.strip().splitlines()) == 1
    logged = [*where, "--log-requests", str(tmp_path / "logs")]
    unknown = run_cli("serve", *logged, "--shadow", "0123456789ab", cwd=tmp_path)
    assert unknown.returncode == 2 and "'0123456789ab' is not in the registry" in unknown.stderr
    alone = run_cli("serve", *where, "--shadow-sample", "0.5", cwd=tmp_path)
    assert alone.returncode == 2 and "needs --shadow VERSION" in alone.stderr
    bad = run_cli(
        "serve", *logged, "--shadow", shadow.version, "--shadow-sample", "0", cwd=tmp_path
    )
    assert bad.returncode == 2 and "--shadow-sample is 0.0" in bad.stderr
    budget = run_cli(
        "serve", *logged, "--shadow", shadow.version, "--shadow-budget", "1.5", cwd=tmp_path
    )
    assert budget.returncode == 2
    assert "--shadow-budget is 1.5; give a fraction in (0, 1]" in budget.stderr
    alone = run_cli("serve", *where, "--shadow-budget", "0.5", cwd=tmp_path)
    assert alone.returncode == 2 and "--shadow-budget needs --shadow VERSION" in alone.stderr


def test_a_shadow_whose_process_dies_counts_failed_rows_and_fails_no_request(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import signal

    registry, production, shadow = versions
    logs = tmp_path / "logs"
    with shadowed(registry, shadow.version, logs, shadow_sample=1.0) as url:
        assert predict(url, {"records": ROWS}, headers={"X-Request-ID": "before"}).ok
        scored_metrics(url)
        mine = [p for p, line in children(os.getpid()) if "ci_ml.serve.sidecar" in line]
        assert len(mine) == 1  # the shadow's own process
        os.kill(mine[0], signal.SIGKILL)

        def failed(rows: int) -> bool:
            text = requests.get(f"{url}/metrics", timeout=10).text
            return metric(text, 'ci_ml_shadow_rows_total{result="failed"}') == rows

        for i in range(5):
            answer = predict(url, {"records": ROWS}, headers={"X-Request-ID": f"after-{i}"})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == production.version
            if i == 0:  # the first one shows it the process is gone
                wait_until(lambda: failed(len(ROWS)))
        wait_until(lambda: failed(5 * len(ROWS)))
    assert f"shadow {shadow.version} failed to predict (its process exited" in caplog.text
    found = lines(logs)
    assert all("shadow" in e for e in found if e["request_id"] == "before")
    # once it is known to be gone, requests are logged as if there were no shadow
    assert all("shadow" not in e for e in found if e["request_id"] != "before")
    assert {f"after-{i}" for i in range(1, 5)} <= {e["request_id"] for e in found}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's idle scheduling class")
def test_the_shadow_scores_in_the_idle_scheduling_class_and_the_service_does_not(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    with shadowed(registry, shadow.version, tmp_path / "logs", shadow_sample=1.0) as url:
        assert predict(url, {"records": ROWS}).ok
        assert metric(scored_metrics(url), 'ci_ml_shadow_rows_total{result="scored"}') > 0
        (pid,) = [p for p, line in children(os.getpid()) if "ci_ml.serve.sidecar" in line]
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        assert len(threads) > 1  # the request log's writer, started while it loaded, too
        assert all(os.sched_getscheduler(t) == os.SCHED_IDLE for t in threads)
        assert all(os.getpriority(os.PRIO_PROCESS, t) == 19 for t in threads)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the answers' process keeps its own


def test_the_shadow_settings_reach_its_scorer(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    from ci_ml.serve.service import Service

    registry, _production, shadow = versions
    holder = ModelHolder(registry)
    holder.load_shadow(shadow.version)
    log = RequestLogSettings(tmp_path / "logs")
    settings = ServeSettings(request_log=log, shadow_sample=0.3, shadow_budget=0.05)
    service = Service(holder, settings)
    try:
        assert service.shadow is not None
        assert (service.shadow.sample, service.shadow.budget) == (0.3, 0.05)
    finally:
        service.stop()


def set_sample(url: str, body: Any, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    return requests.post(f"{url}/admin/shadow", data=data, headers=headers, timeout=30)


def test_the_sample_changes_while_serving_and_zero_pauses_shadowing(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    logs = tmp_path / "logs"
    settings = {"shadow_sample": 1.0, "log_sample": 0.0, "admin_token": TOKEN}
    with shadowed(registry, shadow.version, logs, **settings) as url:
        assert predict(url, {"records": ROWS}, headers={"X-Request-ID": "before"}).ok
        paused = set_sample(url, {"sample": 0})
        assert paused.status_code == 200, paused.text
        assert paused.json() == {
            "shadow_version": shadow.version,
            "sample": 0.0,
            "previous_sample": 1.0,
        }
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "ci_ml_shadow_sample") == 0.0
        for i in range(20):
            assert predict(url, {"records": ROWS}, headers={"X-Request-ID": f"paused-{i}"}).ok
        resumed = set_sample(url, {"sample": 1})
        assert resumed.json()["previous_sample"] == 0.0
        assert predict(url, {"records": ROWS}, headers={"X-Request-ID": "after"}).ok
        metrics = scored_metrics(url)
        assert metric(metrics, "ci_ml_shadow_sample") == 1.0
    # the service has stopped: everything queued was scored and logged
    shadowed_ids = {e["request_id"] for e in lines(logs) if "shadow" in e}
    assert shadowed_ids == {"before", "after"}


def test_the_requests_waiting_for_the_shadow_are_a_gauge(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    settings = {"shadow_sample": 1.0, "shadow_budget": 0.002}  # pauses 499 times each call
    with shadowed(registry, shadow.version, tmp_path / "logs", **settings) as url:
        assert predict(url, {"records": ROWS}).ok
        metrics = scored_metrics(url)  # its first call is done: the pause has begun
        assert metric(metrics, 'ci_ml_shadow_rows_total{result="scored"}') == len(ROWS)
        for _ in range(3):
            assert predict(url, {"records": ROWS}).ok
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "ci_ml_shadow_pending_requests") == 3
        scored = f'ci_ml_shadow_rows_total{{result="scored"}} {4 * len(ROWS)}\n'
        wait_until(lambda: scored in requests.get(f"{url}/metrics", timeout=10).text, 120)
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "ci_ml_shadow_pending_requests") == 0


@pytest.mark.parametrize(
    ("body", "status", "sentence"),
    [
        (b"{not json", 400, "the body is not JSON"),
        (b'{"sample": 0.5, "pad": "' + b"x" * 2000 + b'"}', 413, "over the limit of 1024 bytes"),
        ([0.5], 400, "must be a JSON object"),
        ({"rate": 0.5}, 400, "must be a JSON object"),
        ({"sample": "0.5"}, 422, 'sample "0.5" is not a number from 0 to 1'),
        ({"sample": True}, 422, "sample true is not a number"),
        ({"sample": -0.1}, 422, "sample -0.1 is not a number from 0 to 1"),
        ({"sample": 1.5}, 422, "sample 1.5 is not"),
        (b'{"sample": NaN}', 422, "sample NaN is not"),
        (b'{"sample": 1e999}', 422, "sample Infinity is not"),
        (b'{"sample": 1' + b"0" * 400 + b"}", 422, "sample 1" + "0" * 36 + "... is not"),
    ],
)
def test_a_bad_sample_is_one_sentence_and_changes_nothing(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion],
    tmp_path: Path,
    body: Any,
    status: int,
    sentence: str,
) -> None:
    registry, _production, shadow = versions
    settings = {"shadow_sample": 0.3, "admin_token": TOKEN}
    with shadowed(registry, shadow.version, tmp_path / "logs", **settings) as url:
        answer = set_sample(url, body)
        assert answer.status_code == status
        assert sentence in answer.json()["detail"]
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "ci_ml_shadow_sample") == 0.3


def test_the_sample_needs_the_token_and_a_shadow(
    versions: tuple[LocalRegistry, ModelVersion, ModelVersion], tmp_path: Path
) -> None:
    registry, _production, shadow = versions
    settings = {"shadow_sample": 0.3, "admin_token": TOKEN}
    with shadowed(registry, shadow.version, tmp_path / "logs", **settings) as url:
        assert set_sample(url, {"sample": 0}, token=None).status_code == 401
        assert set_sample(url, {"sample": 0}, token="wrong-token-0123456789").status_code == 403
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert metric(metrics, "ci_ml_shadow_sample") == 0.3
    with running(registry, admin_token=TOKEN) as url:  # no shadow
        answer = set_sample(url, {"sample": 0})
        assert answer.status_code == 409
        assert "has no shadow" in answer.json()["detail"]
    with running(registry) as url:  # no token: no admin routes at all
        assert set_sample(url, {"sample": 0}).status_code == 404


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def children(pid: int) -> list[tuple[int, str]]:
    """The child processes of ``pid`` (any of its threads') and their command lines (Linux)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    found = []
    for child in (int(c) for task in tasks for c in (task / "children").read_text().split()):
        line = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        found.append((child, line))
    return found


def test_a_batch_reaches_the_shadow_process_as_json_whatever_its_values() -> None:
    """What orjson takes and what only Python's json takes (an integer beyond 64 bits, which
    a client may send for a numeric column) both round-trip; no pickle is involved."""
    from ci_ml.serve.sidecar import decode, encode

    batch = [["rid-1", [{"income": 1.5, "home": "rent", "age": None}], [{"score": 0.25}]]]
    big = [["rid-2", [{"income": 10**30, "home": "caf\u00e9", "age": 3}], [{"score": 0.5}]]]
    for sent in (batch, big):
        data = encode(sent)
        assert data[:1] in (b"j", b"s")
        assert decode(data) == sent
    assert encode(big)[:1] == b"s"  # Python's json: orjson refuses 10**30
