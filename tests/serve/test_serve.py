"""Tests for ci-ml serve (ci_ml/serve/: service.py, routes.py, input.py, prometheus.py,
cli_serve.py): a real uvicorn server on a loopback port, real requests, real scikit-learn fits
saved with skops in a real directory registry. Reload and request logging: test_serve_reload.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from ci_ml.config import ModelConfig
from ci_ml.models import save_model
from ci_ml.registry import ModelVersion, Registry
from ci_ml.registry.local import LocalRegistry
from ci_ml.serve.batch import Batcher
from ci_ml.serve.input import FeatureSchema, InvalidRequest, to_columns
from ci_ml.serve.model import LoadedModel
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.server import serve_in_thread
from ci_ml.serve.service import ServeSettings
from ci_ml.training import build_pipeline, feature_schema
from tests.conftest import REPO, run_cli

TOKEN = "test-admin-token-0123456789"
HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
ROWS: list[dict[str, Any]] = [
    {"income": 41.5, "age": 70, "home": "rent"},
    {"income": None, "age": 22, "home": "owner"},
    {"income": 63.0, "age": None, "home": None},
    {"income": 55.0, "age": 35, "home": "castle"},  # a category the model never saw
    {"income": None, "age": None, "home": None},
]


# -- helpers shared with test_serve_reload.py ------------------------------------------------------


def make_data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric and categorical columns with missing values, and a good/bad target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "age": rng.integers(18, 80, n),
            "home": rng.choice(["rent", "owner", "parents"], n).astype(object),
        }
    )
    frame.loc[::9, "income"] = np.nan
    frame.loc[::11, "home"] = np.nan
    score = frame["age"] / 10 - frame["income"].fillna(50) / 25 + rng.normal(size=n)
    return frame, np.where(score > 3, "bad", "good")


def fit(frame: pd.DataFrame, y: np.ndarray, estimator: str = HGB, **params: Any) -> Any:
    """The built-in trainer's pipeline, fitted (on one thread: quick on a busy machine too)."""
    from threadpoolctl import threadpool_limits

    config = ModelConfig(estimator=estimator, params=params or {"max_iter": 15})
    pipeline = build_pipeline(config, feature_schema(frame, list(frame.columns)))
    with threadpool_limits(1):
        return pipeline.fit(frame, y)


def register(
    registry: Registry,
    model: Any,
    frame: pd.DataFrame,
    workdir: Path,
    *,
    task: str = "classification",
    card: dict[str, Any] | None = None,
    reference: bool = True,
    onnx: bool = False,
) -> ModelVersion:
    """Save ``model`` with skops and register it with model.json (and reference.parquet, and
    its ONNX export model.onnx)."""
    workdir.mkdir(parents=True, exist_ok=True)
    digest = save_model(model, workdir / "model.skops")
    schema = feature_schema(frame, list(frame.columns))
    record = {
        "task": task,
        "positive_class": "bad" if task == "classification" else None,
        "feature_schema": schema,
        "digest": digest,
        **(card or {}),
    }
    (workdir / "model.json").write_text(json.dumps(record), encoding="utf-8")
    names = ["model.skops", "model.json"]
    if reference:
        frame.to_parquet(workdir / "reference.parquet", index=False)
        names.append("reference.parquet")
    if onnx:
        from ci_ml.export.convert import export_onnx

        export_onnx(model, schema, task, workdir / "model.onnx")
        names.append("model.onnx")
    return registry.register({n: workdir / n for n in names}, {}, by="tests")


def own_answers(model: Any, rows: list[dict[str, Any]], threshold: float = 0.5) -> list[dict]:
    """What ``model`` itself says for ``rows`` (the frame built here, not by the service)."""
    frame = pd.DataFrame(
        {
            "income": np.array([_num(r["income"]) for r in rows], dtype=float),
            "age": np.array([_num(r["age"]) for r in rows], dtype=float),
            "home": np.array(
                [r["home"] if r["home"] is not None else np.nan for r in rows], dtype=object
            ),
        }
    )
    column = list(model.classes_).index("bad")
    proba = model.predict_proba(frame)[:, column]
    return [{"label": "bad" if p >= threshold else "good", "probability": p} for p in proba]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def same_answers(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    return len(got) == len(want) and all(
        g["label"] == w["label"] and math.isclose(g["probability"], w["probability"], abs_tol=1e-12)
        for g, w in zip(got, want, strict=True)
    )


@contextmanager
def running(registry: Registry, trusted: tuple[str, ...] = (), **settings: Any) -> Iterator[str]:
    """The service over ``registry`` on a free loopback port; yields its base URL."""
    holder = ModelHolder(registry, trusted)
    with serve_in_thread(holder, ServeSettings(port=0, **settings)) as url:
        yield url


def predict(url: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{url}/predict", json=body, timeout=30, **kwargs)


def reload(url: str, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{url}/admin/reload", headers=headers, timeout=60)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_data()


@pytest.fixture(scope="module")
def model(data: tuple[pd.DataFrame, np.ndarray]) -> Any:
    return fit(*data)


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "registry")


@pytest.fixture
def served(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> Iterator[tuple[str, ModelVersion]]:
    """The service with ``model`` in production; yields (url, version)."""
    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    with running(registry, admin_token=TOKEN, max_body_bytes=4096, max_rows=20) as url:
        yield url, version


# -- predictions ----------------------------------------------------------------------------------


def test_predicts_many_rows_with_the_models_own_answers(
    served: tuple[str, ModelVersion], model: Any
) -> None:
    url, version = served
    response = predict(url, {"records": ROWS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["X-Model-Version"] == version.version
    assert (body["model_version"], body["model_digest"]) == (version.version, version.digest)
    assert same_answers(body["predictions"], own_answers(model, ROWS))
    assert {p["label"] for p in body["predictions"]} <= {"bad", "good"}


def test_one_row_alone_gets_the_same_answer_as_in_a_batch(served: tuple[str, ModelVersion]) -> None:
    url, _ = served
    batch = predict(url, {"records": ROWS}).json()["predictions"]
    for row, in_batch in zip(ROWS, batch, strict=True):  # nulls and an unseen category included
        assert predict(url, {"record": row}).json()["predictions"] == [in_batch]
        assert predict(url, {"records": [row]}).json()["predictions"] == [in_batch]


def test_a_regression_model_answers_values(
    registry: LocalRegistry, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    frame, _ = data
    target = frame["age"] * 2.0
    ridge = fit(frame, target.to_numpy(), "sklearn.linear_model.Ridge", alpha=1.0)
    version = register(registry, ridge, frame, tmp_path / "ridge", task="regression")
    registry.promote(version.version, None, by="tests")
    with running(registry) as url:
        body = predict(url, {"records": ROWS[:2]}).json()
    assert [set(p) for p in body["predictions"]] == [{"value"}, {"value"}]
    assert body["predictions"][0]["value"] == pytest.approx(140.0, abs=2.0)


def test_the_threshold_of_model_json_labels_the_rows(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    version = register(registry, model, data[0], tmp_path / "t", card={"threshold": 0.05})
    registry.promote(version.version, None, by="tests")
    with running(registry) as url:
        got = predict(url, {"records": ROWS}).json()["predictions"]
        assert requests.get(f"{url}/version", timeout=10).json()["threshold"] == 0.05
    assert same_answers(got, own_answers(model, ROWS, threshold=0.05))


def test_the_onnx_export_is_served_with_the_models_answers_alone_and_in_a_batch(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    version = register(registry, model, data[0], tmp_path / "onnx", onnx=True)
    registry.promote(version.version, None, by="tests")
    with running(registry, max_rows=20) as url:
        assert requests.get(f"{url}/version", timeout=10).json()["runtime"] == "onnx"
        response = predict(url, {"records": ROWS})
        assert response.headers["X-Model-Version"] == version.version
        batch = response.json()["predictions"]
        for row, in_batch in zip(ROWS, batch, strict=True):  # nulls, an unseen category
            assert predict(url, {"record": row}).json()["predictions"] == [in_batch]
        wrong = predict(url, {"records": [ROWS[0], {**ROWS[1], "age": "old"}]})
        too_many = predict(url, {"records": [ROWS[1]] * 21})
    for got, want in zip(batch, own_answers(model, ROWS), strict=True):
        assert got["label"] == want["label"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)  # float32
    assert wrong.status_code == 422
    assert wrong.json()["detail"].startswith("row 1, column 'age': expected a number")
    assert too_many.status_code == 413


def test_the_onnx_model_takes_checked_columns_as_it_takes_a_frame(
    model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    # the service feeds ONNX Runtime the checked values column by column, without a DataFrame
    from ci_ml.export.convert import export_onnx
    from ci_ml.models.runtime import OnnxPredictor
    from ci_ml.serve.input import frame_of

    schema = feature_schema(data[0], list(data[0].columns))
    path = export_onnx(model, schema, "classification", tmp_path / "m.onnx")
    predictor = OnnxPredictor(path, schema, "classification", positive_class="bad")
    features = FeatureSchema.from_card(schema)
    parts = [to_columns(ROWS[:2], features), to_columns(ROWS[2:], features)]
    merged = {name: [v for p in parts for v in p[name]] for name in features.names}
    by_columns, by_frame = predictor.feed(merged), predictor.feed(frame_of(parts, features))
    assert by_columns.keys() == by_frame.keys()
    for name, tensor in by_columns.items():
        assert tensor.dtype == by_frame[name].dtype and tensor.shape == (len(ROWS), 1)
        assert pd.Series(tensor[:, 0]).equals(pd.Series(by_frame[name][:, 0]))
    loaded = _loaded(predictor.as_estimator(), data[0])
    assert loaded.predict_columns(parts, len(ROWS)) == loaded.predict(frame_of(parts, features))


BAD_BODIES = [
    ({"records": [{**ROWS[0], "colour": "red"}]}, r"^row 0 has unknown column\(s\) 'colour'"),
    ({"records": [ROWS[0], {"income": 1.0, "home": "rent"}]}, r"^row 1 lacks column\(s\) 'age'"),
    ({"records": [{**ROWS[0], "age": "old"}]}, r"^row 0, column 'age': expected a number"),
    ({"records": [{**ROWS[0], "age": True}]}, r"^row 0, column 'age': expected a number"),
    ({"records": [{**ROWS[0], "home": 3}]}, r"^row 0, column 'home': expected a string"),
    ({"records": [{**ROWS[0], "home": ["rent"]}]}, r"^row 0, column 'home': expected a string"),
    ({"records": [ROWS[0], ROWS[1], 7]}, r"^row 2 is a JSON number; each row must be an object"),
    ({"records": []}, r'^"records" is empty'),
    ({"records": {"income": 1}}, r'^"records" is a JSON object; it must be a list'),
    ({"rows": [ROWS[0]]}, r'takes exactly one key: "records"'),
    ({"record": ROWS[0], "records": [ROWS[0]]}, r"takes exactly one key"),
    ([ROWS[0]], r"^the body is a JSON array, not an object"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_rows_that_do_not_fit_the_schema_get_422_naming_row_and_column(
    served: tuple[str, ModelVersion], body: Any, message: str
) -> None:
    response = predict(served[0], body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert re.search(message, detail), detail
    assert "\n" not in detail


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400]
)
def test_non_finite_numbers_get_422(served: tuple[str, ModelVersion], number: str) -> None:
    text = json.dumps({"records": [ROWS[0]]}).replace("41.5", number)
    response = requests.post(
        f"{served[0]}/predict", data=text, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 422
    assert re.match(r"row 0, column 'income': .* is not a finite number", response.json()["detail"])


def test_malformed_json_gets_400_and_other_content_types_415(
    served: tuple[str, ModelVersion],
) -> None:
    url = served[0]
    bad = requests.post(
        f"{url}/predict",
        data=b'{"records": [',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("the body is not valid JSON")
    form = requests.post(f"{url}/predict", data={"records": "x"}, timeout=10)
    assert form.status_code == 415
    assert "Content-Type: application/json" in form.json()["detail"]


def test_a_body_over_the_size_limit_gets_413(served: tuple[str, ModelVersion]) -> None:
    url = served[0]
    big = {"records": [{**ROWS[0], "home": "x" * 5000}]}
    response = predict(url, big)
    assert response.status_code == 413
    assert "over the limit of 4096 bytes" in response.json()["detail"]
    chunked = requests.post(  # no Content-Length: the limit applies while reading
        f"{url}/predict",
        data=iter([json.dumps(big).encode()[i : i + 1000] for i in range(0, 6000, 1000)]),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert chunked.status_code == 413
    assert predict(url, {"records": ROWS}).status_code == 200  # and it keeps serving


def test_too_many_rows_get_413(served: tuple[str, ModelVersion]) -> None:
    response = predict(served[0], {"records": [ROWS[1]] * 21})
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "the request has 21 rows, more than the limit of 20"
    )


# -- health, version, docs, metrics ---------------------------------------------------------------


def test_not_ready_before_a_model_is_in_production(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    with running(registry, admin_token=TOKEN) as url:
        health = requests.get(f"{url}/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["ready"] is False
        assert "nothing is in production" in health.json()["reason"]
        assert requests.get(f"{url}/health/live", timeout=10).json() == {"status": "ok"}
        assert requests.get(f"{url}/version", timeout=10).status_code == 503
        assert predict(url, {"records": ROWS}).status_code == 503
        assert reload(url).status_code == 409
        version = register(registry, model, data[0], tmp_path / "v1")
        registry.promote(version.version, None, by="tests")
        assert reload(url).json()["new_version"] == version.version
        assert requests.get(f"{url}/health", timeout=10).json() == {
            "status": "ok",
            "ready": True,
            "model_version": version.version,
        }


def test_version_names_the_served_model(served: tuple[str, ModelVersion]) -> None:
    url, version = served
    body = requests.get(f"{url}/version", timeout=10).json()
    assert (body["model_version"], body["model_digest"]) == (version.version, version.digest)
    assert body["features"] == ["income", "age", "home"]
    assert body["threshold"] == 0.5  # model.json has none
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", body["loaded_at"])


def test_openapi_docs_describe_the_routes(served: tuple[str, ModelVersion]) -> None:
    url = served[0]
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/predict", "/health", "/version", "/metrics", "/admin/reload"} <= set(spec["paths"])
    assert (
        "example" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    )
    assert requests.get(f"{url}/docs", timeout=10).status_code == 200


def test_metrics_parse_as_prometheus_text_and_count_requests(
    served: tuple[str, ModelVersion],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    url, version = served
    for _ in range(3):
        predict(url, {"records": ROWS})
    predict(url, {"records": []})
    requests.get(f"{url}/no/such/page", timeout=10)
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    ok = {"route": "/predict", "method": "POST"}
    assert value("ci_ml_http_requests_total", **ok, status="200") == 3
    assert value("ci_ml_http_requests_total", **ok, status="422") == 1
    assert value("ci_ml_http_request_errors_total", route="/predict", status="422") == 1
    assert value("ci_ml_http_requests_total", route="other", method="GET", status="404") == 1
    assert value("ci_ml_http_request_duration_seconds_count", route="/predict") == 4
    assert value("ci_ml_http_request_duration_seconds_bucket", route="/predict", le="+Inf") == 4
    assert value("ci_ml_predicted_rows_total") == 3 * len(ROWS)
    assert 1 <= value("ci_ml_model_calls_total") <= 3
    assert value("ci_ml_model_info", version=version.version, digest=version.digest) == 1
    assert value("ci_ml_model_loaded") == 1
    assert value("ci_ml_model_reloads_total", outcome="swapped") == 1


def test_admin_reload_needs_the_token(served: tuple[str, ModelVersion]) -> None:
    url = served[0]
    missing = reload(url, token=None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in missing.text
    for wrong in ("nope", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        response = reload(url, token=wrong)
        assert response.status_code == 403
        assert TOKEN not in response.text
    basic = requests.post(
        f"{url}/admin/reload", headers={"Authorization": f"Basic {TOKEN}"}, timeout=10
    )
    assert basic.status_code == 401
    assert reload(url).json()["outcome"] == "unchanged"


def test_a_reload_that_fails_unexpectedly_says_why_and_keeps_serving(
    served: tuple[str, ModelVersion],
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, version = served
    frame, y = make_data(seed=3)
    other = register(registry, fit(frame, y), frame, tmp_path / "v2")
    registry.promote(other.version, version.version, by="tests")

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("ci_ml.serve.reload.load_version", broken)
    with caplog.at_level("ERROR", logger="ci_ml.serve.admin"):
        answer = reload(url)
    assert answer.status_code == 500
    assert answer.json() == {
        "detail": "the reload failed (RuntimeError: disk on fire); the log has the traceback",
        "serving": version.version,
    }
    assert "disk on fire" in caplog.text and "Traceback" in caplog.text
    assert requests.get(f"{url}/version", timeout=10).json()["model_version"] == version.version


def test_admin_reload_is_absent_without_a_token(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    with running(registry) as url:
        assert reload(url).status_code == 404
        assert (
            "/admin/reload" not in requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]
        )


def test_the_documented_predict_route_answers_like_the_service(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    # the server answers POST /predict before FastAPI; the FastAPI route that documents it
    # answers the same way when it is reached (the app alone, without serve.asgi_app)
    import asyncio

    from ci_ml.serve.server import create_app
    from ci_ml.serve.service import Service

    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    body = json.dumps({"records": ROWS}).encode()
    service = Service(ModelHolder(registry, ()), ServeSettings())
    app = create_app(service)
    service.start()
    try:
        routed = asyncio.run(_asgi_post(app, "/predict", body, "req-1"))
        routed_error = asyncio.run(_asgi_post(app, "/predict", b"[1]", "req-2"))
    finally:
        service.stop()
    with running(registry) as url:
        answered = predict(url, {"records": ROWS}, headers={"X-Request-ID": "req-1"})
        error = requests.post(
            f"{url}/predict", data=b"[1]", headers={"X-Request-ID": "req-2"}, timeout=10
        )
    for got, want in ((routed, answered), (routed_error, error)):
        status, headers, content = got
        assert status == want.status_code
        assert json.loads(content) == want.json()
        assert headers[b"content-type"] == want.headers["Content-Type"].encode()
        assert headers[b"x-request-id"] == want.headers["X-Request-ID"].encode()
    assert routed[1][b"x-model-version"] == version.version.encode()


def test_every_answer_carries_a_request_id(served: tuple[str, ModelVersion]) -> None:
    url, _ = served
    answers = [
        predict(url, {"records": ROWS}),
        predict(url, {"records": [{"income": "x", "age": 1, "home": None}]}),  # 422
        requests.post(f"{url}/predict", data=b"{not json", timeout=10),  # 400
        requests.get(f"{url}/health", timeout=10),
        requests.get(f"{url}/version", timeout=10),
        requests.get(f"{url}/metrics", timeout=10),
        requests.get(f"{url}/nowhere", timeout=10),  # 404 from FastAPI
        reload(url, token=None),  # 401 from FastAPI
    ]
    ids = [r.headers.get("X-Request-ID") for r in answers]  # one header each: no ", " joins

    assert [r.status_code for r in answers] == [200, 422, 400, 200, 200, 200, 404, 401]
    assert all(i and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert [r.json()["request_id"] for r in answers[:3]] == ids[:3]  # predict: in the JSON too


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("3f2c9a70-5d1e-4b7a-9a51-0c2f3e4d5a6b", True),
        ("loan-2024-05-01:17_a.b", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("-starts-with-a-dash", False),
        ("ünïcode", False),
        ("", False),
    ],
)
def test_a_sane_request_id_of_the_client_is_kept(
    served: tuple[str, ModelVersion], given: str, kept: bool
) -> None:
    url, _ = served
    response = predict(url, {"record": ROWS[0]}, headers={"X-Request-ID": given.encode()})

    assert response.status_code == 200
    rid = response.json()["request_id"]
    assert response.headers["X-Request-ID"] == rid
    assert (rid == given) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)


def test_the_request_log_names_each_row_by_request_id_and_place(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    from ci_ml.serve.service import RequestLogSettings

    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    logs = RequestLogSettings(tmp_path / "logs", sample=1.0)
    with running(registry, request_log=logs) as url:
        one = predict(url, {"record": ROWS[0]}, headers={"X-Request-ID": "loan-7"})
        many = predict(url, {"records": ROWS[1:4]})
    (log,) = sorted((tmp_path / "logs").glob("requests-*.jsonl"))
    lines = [json.loads(line) for line in log.read_text().splitlines()]

    assert one.json()["request_id"] == "loan-7"
    generated = many.json()["request_id"]
    assert [(x["request_id"], x["row_index"]) for x in lines] == [
        ("loan-7", 0),
        (generated, 0),
        (generated, 1),
        (generated, 2),
    ]
    assert [x["row"] for x in lines] == ROWS[:4]


async def _asgi_post(
    app: Any, path: str, body: bytes, request_id: str
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST ``body`` to the ASGI ``app`` directly; (status, headers, body) of the answer."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.append((b"x-request-id", request_id.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    await app(scope, receive, send)
    start, *parts = sent
    return start["status"], dict(start["headers"]), b"".join(p.get("body", b"") for p in parts)


def test_only_the_service_process_freezes_the_heap_after_a_swap(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    import gc

    from ci_ml.serve.service import Service

    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    gc.unfreeze()
    try:
        assert Service(ModelHolder(registry, ()), ServeSettings()).reload().outcome == "swapped"
        assert gc.get_freeze_count() == 0  # a test's or a tool's process is left as it is
        service = Service(ModelHolder(registry, ()), ServeSettings(), freeze_heap=True)
        assert service.reload().outcome == "swapped"
        assert gc.get_freeze_count() > 0  # `ci-ml serve` itself: out of the collector's sight
    finally:
        gc.unfreeze()


# -- merging concurrent requests into one model call -----------------------------------------------


def _loaded(model: Any, frame: pd.DataFrame, version: str = "v1") -> LoadedModel:
    schema = FeatureSchema.from_card(feature_schema(frame, list(frame.columns)))
    index = list(model.classes_).index("bad")
    return LoadedModel(
        version,
        version * 8,
        "now",
        model,
        schema,
        "classification",
        0.5,
        tuple(model.classes_),
        index,
    )


def _batched(jobs: list[tuple[LoadedModel, list[dict[str, Any]]]], max_rows: int = 100) -> Any:
    """Queue every job before the worker starts (so they wait together); the futures and calls."""
    calls: list[int] = []
    batcher = Batcher(1, max_rows, calls.append)
    futures = [batcher.submit(m, to_columns(rows, m.schema), len(rows)) for m, rows in jobs]
    batcher.start()
    done = [f.exception(timeout=60) or f.result() for f in futures]
    batcher.close()
    return done, calls


def test_requests_waiting_together_are_predicted_in_one_call(
    model: Any, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    loaded = _loaded(model, data[0])
    jobs = [(loaded, ROWS[:1]), (loaded, ROWS[1:3]), (loaded, ROWS[3:])]
    done, calls = _batched(jobs)
    assert calls == [len(ROWS)]
    for answers, (_, rows) in zip(done, jobs, strict=True):
        assert same_answers(answers, own_answers(model, rows))


def test_requests_for_two_models_are_never_merged(
    model: Any, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    other = fit(*data, max_iter=30, learning_rate=0.2)
    first, second = _loaded(model, data[0], "a"), _loaded(other, data[0], "b")
    done, calls = _batched([(first, ROWS), (second, ROWS), (first, ROWS[:2])])
    assert calls == [len(ROWS) + 2, len(ROWS)]
    assert same_answers(done[0], own_answers(model, ROWS))
    assert same_answers(done[1], own_answers(other, ROWS))
    assert same_answers(done[2], own_answers(model, ROWS[:2]))


def test_a_request_that_fails_the_model_does_not_fail_the_others(
    data: tuple[pd.DataFrame, np.ndarray],
) -> None:
    frame, y = data
    filled = frame.fillna({"income": 50.0, "home": "rent"})
    # no imputer: a null makes this model raise
    plain = make_pipeline(
        ColumnTransformer(
            [
                ("n", "passthrough", ["income", "age"]),
                ("c", OneHotEncoder(handle_unknown="ignore"), ["home"]),
            ]
        ),
        LogisticRegression(),
    ).fit(filled, y)
    loaded = _loaded(plain, frame)
    good = [{"income": 40.0, "age": 30, "home": "rent"}]
    done, calls = _batched([(loaded, good), (loaded, [ROWS[1]]), (loaded, good)])
    assert isinstance(done[1], InvalidRequest)
    assert "the model cannot predict these rows" in str(done[1])
    assert done[0] == done[2] and done[0][0]["label"] in ("bad", "good")
    assert calls == [1, 1]  # the merged call failed: each request was predicted alone


def test_a_merged_call_takes_at_most_max_rows_and_skips_cancelled_requests(
    model: Any, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    loaded = _loaded(model, data[0])
    calls: list[int] = []
    batcher = Batcher(1, 4, calls.append)
    futures = [batcher.submit(loaded, to_columns(ROWS[:2], loaded.schema), 2) for _ in range(4)]
    futures[1].cancel()  # its client went away
    batcher.start()
    assert [len(f.result(timeout=60)) for f in (futures[0], futures[2], futures[3])] == [2, 2, 2]
    batcher.close()
    assert calls == [2, 4]


# -- the command line -----------------------------------------------------------------------------


def test_serve_has_help() -> None:
    done = run_cli("serve", "--help", cwd=REPO)
    assert done.returncode == 0
    for flag in ("--registry", "--poll", "--max-body", "--log-requests", "--log-max-files"):
        assert flag in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-body", "lots"], {}, "--max-body is 'lots'; give a positive size"),
        (["--port", "70000"], {}, "--port is 70000; give a whole number from 0 to 65535"),
        (["--poll", "0"], {}, "--poll is 0.0; give a number of seconds"),
        (["--log-sample", "0.5"], {}, "--log-sample needs --log-requests DIR"),
        (["--log-requests", "logs", "--log-sample", "2"], {}, "--log-sample is 2.0"),
        (["--log-requests", "logs", "--log-max-bytes", "-1"], {}, "--log-max-bytes is '-1'"),
        ([], {"CI_ML_ADMIN_TOKEN": "short"}, "CI_ML_ADMIN_TOKEN has 5 characters"),
        (["--config", "nowhere.yaml"], {}, "nowhere.yaml"),
        (["--log-requests", "a-file/logs", "--port", "0"], {}, "cannot log requests in a-file"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    args: list[str],
    env: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from ci_ml.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_ML_ADMIN_TOKEN", raising=False)
    (tmp_path / "a-file").write_text("not a directory")
    result = CliRunner().invoke(app, ["serve", "--registry", str(tmp_path / "r"), *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.startswith("ci-ml: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_serve_command_end_to_end(
    registry: LocalRegistry, model: Any, data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    process = subprocess.Popen(
        [sys.executable, "-m", "ci_ml", "serve", "--registry", str(registry.path), "--port", "0"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "CI_ML_ADMIN_TOKEN": ""},
    )
    try:
        url = _listening_url(process)
        assert _wait_ready(url).json()["model_version"] == version.version
        assert predict(url, {"record": ROWS[0]}).json()["model_version"] == version.version
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then ends by the signal it caught, as servers do
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert process.stderr is not None
        assert "Application shutdown complete" in process.stderr.read()
    finally:
        process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _listening_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the service exited without listening")


def _wait_ready(url: str, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return response
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or still loading the model
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")
