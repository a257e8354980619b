"""The Open Inference Protocol (KServe V2) of ``ci-ml serve`` (``ci_ml/serve/v2.py``), spoken
by a real client of that protocol (``tritonclient[http]``) and by hand for the errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from ci_ml.registry import ModelVersion
from ci_ml.registry.local import LocalRegistry
from tests.serve.test_serve import ROWS, fit, make_data, predict, register, running

tritonclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def data() -> Any:
    return make_data()


@pytest.fixture(scope="module")
def model(data: Any) -> Any:
    return fit(*data)


@pytest.fixture
def served(model: Any, data: Any, tmp_path: Path) -> Iterator[tuple[str, ModelVersion]]:
    registry = LocalRegistry(tmp_path / "registry")
    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    with running(registry, max_rows=20) as url:
        yield url, version


def client(url: str) -> Any:
    return tritonclient.InferenceServerClient(url=url.removeprefix("http://"))


def tensors(rows: list[dict[str, Any]]) -> list[Any]:
    """The rows as the client's input tensors: numbers as FP64 (NaN: missing), text as BYTES."""
    income = np.array([np.nan if r["income"] is None else r["income"] for r in rows])
    age = np.array([np.nan if r["age"] is None else r["age"] for r in rows], dtype=np.float64)
    home = np.array([r["home"].encode() for r in rows], dtype=np.object_)
    inputs = []
    for name, values, datatype in (("income", income, "FP64"), ("age", age, "FP64")):
        tensor = tritonclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    tensor = tritonclient.InferInput("home", [len(rows)], "BYTES")
    tensor.set_data_from_numpy(home, binary_data=False)
    return [*inputs, tensor]


def test_a_v2_client_reads_the_metadata(served: tuple[str, ModelVersion]) -> None:
    url, version = served
    triton = client(url)
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("model")
    meta = triton.get_model_metadata("model")
    assert meta["versions"] == [version.version]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("income", "FP64", [-1]),
        ("age", "FP64", [-1]),
        ("home", "BYTES", [-1]),
    ]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "label": [-1],
        "probability": [-1],
        "probabilities": [-1, 2],
    }
    assert not triton.is_model_ready("other")


def test_a_v2_client_gets_the_json_apis_probabilities(served: tuple[str, ModelVersion]) -> None:
    url, version = served
    rows = [r for r in ROWS if r["home"] is not None]  # BYTES tensors hold no null
    json_api = predict(url, {"records": rows}).json()["predictions"]
    outputs = [
        tritonclient.InferRequestedOutput(n, binary_data=False)
        for n in ("label", "probability", "probabilities")
    ]
    result = client(url).infer("model", tensors(rows), outputs=outputs)
    probability = result.as_numpy("probability")
    assert probability.tolist() == pytest.approx([p["probability"] for p in json_api], abs=1e-12)
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == [
        p["label"] for p in json_api
    ]
    every = result.as_numpy("probabilities").reshape(len(rows), 2)
    classes = requests.get(f"{url}/version", timeout=10).json()["classes"]
    bad = classes.index("bad")
    assert every[:, bad].tolist() == pytest.approx(probability.tolist(), abs=1e-12)
    assert every.sum(axis=1).tolist() == pytest.approx([1.0] * len(rows))
    assert result.get_response()["model_version"] == version.version


def test_binary_tensors_are_refused_naming_the_json_way(served: tuple[str, ModelVersion]) -> None:
    url, _version = served
    rows = [r for r in ROWS if r["home"] is not None]
    inputs = tensors(rows)
    inputs[0].set_data_from_numpy(np.array([1.0] * len(rows)), binary_data=True)
    with pytest.raises(tritonclient.InferenceServerException, match="binary_data=False"):
        client(url).infer("model", inputs)


def v2(url: str, body: Any, name: str = "model") -> requests.Response:
    return requests.post(f"{url}/v2/models/{name}/infer", json=body, timeout=30)


def tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> Any:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


GOOD = [
    tensor("income", "FP64", [41.5, None]),
    tensor("age", "INT64", [70, 22]),
    tensor("home", "BYTES", ["rent", None]),
]


def test_nulls_and_nan_are_missing_values_as_in_the_json_api(
    served: tuple[str, ModelVersion],
) -> None:
    url, _version = served
    answer = v2(url, {"id": "r1", "inputs": GOOD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "r1" and answer.headers["x-request-id"]
    records = [
        {"income": 41.5, "age": 70, "home": "rent"},
        {"income": None, "age": 22, "home": None},
    ]
    expected = [p["probability"] for p in predict(url, {"records": records}).json()["predictions"]]
    (probability,) = [o for o in body["outputs"] if o["name"] == "probability"]
    assert probability["data"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("inputs", "status", "says"),
    [
        (GOOD[:2], 400, "no input for ['home']"),
        ([*GOOD, tensor("colour", "BYTES", ["red", "blue"])], 400, "unknown input(s) ['colour']"),
        ([GOOD[0], tensor("age", "BYTES", ["70", "22"]), GOOD[2]], 400, "'age' is BYTES"),
        ([tensor("income", "FP64", [1.0, 2.0], [2, 2]), *GOOD[1:]], 400, "has shape [2, 2]"),
        ([tensor("income", "FP64", [1.0], [2]), *GOOD[1:]], 400, "has 1 values for shape [2]"),
        ([tensor("income", "FP64", [1.0, 2.0, 3.0]), *GOOD[1:]], 400, "different or no rows"),
        ([tensor("income", "FP64", ["a", 2.0]), *GOOD[1:]], 400, "row 0, column 'income'"),
        (
            [
                tensor("income", "FP64", [1.0] * 21),
                *[
                    tensor(n, d, v * 21)
                    for n, d, v in (("age", "INT64", [3]), ("home", "BYTES", ["rent"]))
                ],
            ],
            413,
            "more than the limit of 20",
        ),
    ],
)
def test_a_bad_infer_request_is_one_sentence(
    served: tuple[str, ModelVersion], inputs: list[Any], status: int, says: str
) -> None:
    url, _version = served
    answer = v2(url, {"inputs": inputs})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_unknown_model_or_version_and_not_json(served: tuple[str, ModelVersion]) -> None:
    url, version = served
    assert v2(url, {"inputs": GOOD}, name="other").status_code == 404
    old = requests.post(
        f"{url}/v2/models/model/versions/nope/infer", json={"inputs": GOOD}, timeout=10
    )
    assert old.status_code == 404 and version.version in old.json()["error"]
    same = requests.post(
        f"{url}/v2/models/model/versions/{version.version}/infer", json={"inputs": GOOD}, timeout=10
    )
    assert same.status_code == 200
    broken = requests.post(f"{url}/v2/models/model/infer", data=b"{", timeout=10)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]


def test_not_ready_without_a_production_model(tmp_path: Path) -> None:
    with running(LocalRegistry(tmp_path / "empty")) as url:
        assert requests.get(f"{url}/v2/health/live", timeout=10).json() == {"live": True}
        ready = requests.get(f"{url}/v2/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert v2(url, {"inputs": GOOD}).status_code == 503


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(
    model: Any, data: Any, tmp_path: Path
) -> None:
    registry = LocalRegistry(tmp_path / "registry")
    version = register(registry, model, data[0], tmp_path / "v1")
    registry.promote(version.version, None, by="tests")
    body = json.dumps({"inputs": GOOD, "pad": "x" * 5000}).encode()
    url_of = "{}/v2/models/model/infer".format
    headers = {"Content-Type": "application/json"}
    with running(registry, max_body_bytes=2048) as url:
        sized = requests.post(url_of(url), data=body, headers=headers, timeout=30)
        assert sized.status_code == 413
        assert f"the body has {len(body)} bytes, over the limit of 2048" in sized.json()["error"]
        # no Content-Length (chunked): refused once 2048 bytes have arrived
        chunks = (body[i : i + 512] for i in range(0, len(body), 512))
        chunked = requests.post(url_of(url), data=chunks, headers=headers, timeout=30)
        assert chunked.status_code == 413
        assert "the body has over 2048 bytes, the limit" in chunked.json()["error"]
        assert v2(url, {"inputs": GOOD}).status_code == 200  # and the service answers on
