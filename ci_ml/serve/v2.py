"""The Open Inference Protocol (KServe V2, REST) beside the JSON records API.

``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``
(metadata), ``/v2/models/{name}/ready`` and ``POST /v2/models/{name}[/versions/{v}]/infer``,
so that KServe, Seldon MLServer and Triton clients work against ``ci-ml serve``.

An infer request sends one tensor per feature column (``shape`` [n] or [n, 1]; ``FP64`` or
another number type for a numeric column, ``BYTES`` for a categorical one); its rows are
checked exactly as the JSON API checks records (:func:`~ci_ml.serve.input.to_columns`), with
one difference that tensors force: a NaN in a number tensor is a missing value, as ``null``
is (JSON ``null`` in ``data`` is one too). The answer has the tensors ``label`` (BYTES) and
``probability`` (FP64; of the positive class, or of the most probable class for multiclass)
and ``probabilities`` (FP64 [n, K], classes in the order ``/version`` lists) for a
classifier, ``value`` (FP64) for a regressor. Errors are ``{"error": "<one sentence>"}``, as
the protocol has them.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ci_ml import __version__
from ci_ml.serve.input import (
    CATEGORICAL,
    TOO_LARGE_HINT,
    InvalidRequest,
    read_body,
    to_columns,
)
from ci_ml.serve.model import LoadedModel, PredictionFailed

if TYPE_CHECKING:
    from ci_ml.serve.service import Service

NUMBER_TYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}


def add_v2_routes(app: FastAPI, service: Service, request_id: Callable[[Any], str]) -> None:
    """The protocol's routes on ``app`` (model name: ``ServeSettings.model_name``); each
    answer's request id is ``request_id(scope)``, as the JSON API's."""
    name = service.settings.model_name

    @app.get("/v2", summary="Open Inference Protocol: server metadata")
    async def server() -> dict[str, Any]:
        return {"name": "ci-ml", "version": __version__, "extensions": []}

    @app.get("/v2/health/live", summary="Open Inference Protocol: liveness")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="Open Inference Protocol: readiness")
    async def ready() -> Response:
        up = service.holder.current is not None
        return JSONResponse({"ready": up}, 200 if up else 503)

    @app.get("/v2/models/{model}/ready", summary="Open Inference Protocol: model readiness")
    @app.get("/v2/models/{model}/versions/{version}/ready", include_in_schema=False)
    async def model_ready(model: str, version: str | None = None) -> Response:
        found = _served(service, name, model, version)
        if isinstance(found, Response):
            return found
        return JSONResponse({"name": name, "ready": True})

    @app.get("/v2/models/{model}", summary="Open Inference Protocol: model metadata")
    @app.get("/v2/models/{model}/versions/{version}", include_in_schema=False)
    async def metadata(model: str, version: str | None = None) -> Response:
        found = _served(service, name, model, version)
        if isinstance(found, Response):
            return found
        return JSONResponse(model_metadata(found, name))

    @app.post("/v2/models/{model}/infer", summary="Open Inference Protocol: predict")
    @app.post("/v2/models/{model}/versions/{version}/infer", include_in_schema=False)
    async def infer(model: str, request: Request, version: str | None = None) -> Response:
        found = _served(service, name, model, version)
        if isinstance(found, Response):
            return found
        return await _infer(service, found, name, request, request_id(request.scope))


def _served(service: Service, name: str, model: str, version: str | None) -> Any:
    """The served model, or the protocol's error answer (404 unknown, 503 not ready)."""
    if model != name:
        return _error(404, f"no model {model!r}; this service serves {name!r}")
    found = service.holder.current
    if found is None:
        return _error(503, f"not ready: {service.not_ready_reason()}")
    if version is not None and version != found.version:
        return _error(404, f"model {name!r} has no version {version!r}; it serves {found.version}")
    return found


def model_metadata(model: LoadedModel, name: str) -> dict[str, Any]:
    """Inputs (one tensor per feature column) and outputs, with datatypes and shapes."""
    inputs = [
        {
            "name": f.name,
            "datatype": "BYTES" if f.kind == CATEGORICAL else "FP64",
            "shape": [-1],
        }
        for f in model.schema.features
    ]
    if model.task == "classification":
        outputs = [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]},
        ]
    else:
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    return {
        "name": name,
        "versions": [model.version],
        "platform": f"ci-ml_{model.runtime}",
        "inputs": inputs,
        "outputs": outputs,
    }


async def _infer(
    service: Service, model: LoadedModel, name: str, request: Request, rid: str
) -> Response:
    try:
        if "inference-header-content-length" in request.headers:
            raise InvalidRequest(
                "binary tensor data (the protocol's binary extension) is not supported; send "
                "the tensors as JSON (tritonclient: set_data_from_numpy(..., binary_data=False))",
                status=400,
            )
        limit = service.settings.max_body_bytes
        body = await read_body(request.scope, request.receive, limit, TOO_LARGE_HINT)
        payload = _json(body)
        rows = rows_of_tensors(payload, model, service.settings.max_rows)
        columns = to_columns(rows, model.schema)
        answers = await asyncio.wrap_future(service.batcher.submit(model, columns, len(rows)))
    except InvalidRequest as err:
        return _error(err.status if err.status != 422 else 400, str(err))
    except PredictionFailed as err:
        return _error(500, f"the model failed to predict: {err}")
    service.after_answer(model, rows, answers, rid)
    answer = {
        "model_name": name,
        "model_version": model.version,
        "outputs": output_tensors(model, answers),
        "parameters": {"request_id": rid, "model_digest": model.digest},
    }
    if isinstance(payload.get("id"), str):
        answer["id"] = payload["id"]
    return JSONResponse(answer, headers={"x-model-version": model.version})


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body, parse_constant=float)
    except (ValueError, RecursionError) as err:
        raise InvalidRequest(f"the body is not valid JSON ({err})", status=400) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise InvalidRequest('the body must be an object with "inputs", a list of tensors')
    return payload


def rows_of_tensors(payload: dict[str, Any], model: LoadedModel, max_rows: int) -> list[Any]:
    """The request's tensors as records ``{column: value}``, checked for the protocol's own
    rules (names, datatypes, shapes); the JSON API's row checks come after."""
    tensors: dict[str, list[Any]] = {}
    kinds = {f.name: f.kind for f in model.schema.features}
    for i, tensor in enumerate(payload["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidRequest(f"input {i} is not a tensor with a name")
        column = tensor["name"]
        if column in tensors:
            raise InvalidRequest(f"input {column!r} is sent twice")
        if column in kinds:
            tensors[column] = _values(tensor, kinds[column])
    missing = [n for n in model.schema.names if n not in tensors]
    unknown = [t.get("name") for t in payload["inputs"] if t.get("name") not in kinds]
    if unknown or missing:
        what = f"unknown input(s) {unknown}" if unknown else f"no input for {missing}"
        raise InvalidRequest(f"{what}; the model takes one tensor per column: {model.schema.names}")
    sizes = {len(v) for v in tensors.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise InvalidRequest(f"the inputs have different or no rows ({sorted(sizes)})")
    n = sizes.pop()
    if n > max_rows:
        raise InvalidRequest(f"the request has {n} rows, more than the limit of {max_rows}", 413)
    return [{name: values[r] for name, values in tensors.items()} for r in range(n)]


def _values(tensor: dict[str, Any], kind: str) -> list[Any]:
    """A tensor's data as one value per row, by its declared shape and datatype."""
    name, datatype, shape = tensor["name"], tensor.get("datatype"), tensor.get("shape")
    wanted = "BYTES" if kind == CATEGORICAL else "a number type such as FP64"
    if (datatype == "BYTES") != (kind == CATEGORICAL) or (
        kind != CATEGORICAL and datatype not in NUMBER_TYPES
    ):
        raise InvalidRequest(f"input {name!r} is {datatype}; this column takes {wanted}")
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) for s in shape)):
        raise InvalidRequest(f"input {name!r} has no shape [rows] or [rows, 1]")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise InvalidRequest(f"input {name!r} has shape {shape}; a column is [rows] or [rows, 1]")
    data = _flat(tensor.get("data"))
    if len(data) != shape[0]:
        raise InvalidRequest(f"input {name!r} has {len(data)} values for shape {shape}")
    if datatype == "BOOL":
        return data
    return [None if isinstance(v, float) and math.isnan(v) else v for v in data]


def _flat(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequest('each input needs "data", a list of values')
    flat: list[Any] = []
    for value in data:
        flat.extend(_flat(value) if isinstance(value, list) else [value])
    return flat


def output_tensors(model: LoadedModel, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers as the protocol's output tensors (see the module docstring)."""
    n = len(answers)
    if model.task != "classification":
        return [_tensor("value", "FP64", [n], [a["value"] for a in answers])]
    classes = [str(c) for c in model.classes]
    every = [_every_class(a, classes, model.positive_index) for a in answers]
    return [
        _tensor("label", "BYTES", [n], [str(a["label"]) for a in answers]),
        _tensor("probability", "FP64", [n], [a["probability"] for a in answers]),
        _tensor("probabilities", "FP64", [n, len(classes)], [p for row in every for p in row]),
    ]


def _every_class(answer: dict[str, Any], classes: list[str], positive: int | None) -> list[float]:
    found = answer.get("probabilities")
    if found is not None:
        return [float(found[c]) for c in classes]
    p = float(answer["probability"])  # binary: the positive class's, at ``positive``
    return [p, 1.0 - p] if positive == 0 else [1.0 - p, p]


def _tensor(name: str, datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)
