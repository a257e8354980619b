"""The HTTP side of ``ci-ml serve``: routes, error answers, request ids, the middleware.

Every error answer is ``{"detail": "<one sentence>"}`` with its status: 400 (not JSON),
401/403 (admin token), 404 (no such route, or admin disabled), 405 (wrong method), 409/422
(reload refused), 413 (too big), 415 (not JSON content), 422 (rows that do not fit the
schema), 503 (no model).

Every answer carries a request id in its ``X-Request-ID`` header (:func:`request_id`: the
client's own ``X-Request-ID`` when it is a sane token, else a new random one); the answers
of ``POST /predict``, errors too, also hold it as ``request_id`` in their JSON, and the
request log logs it with each row, so that outcomes which arrive later can be joined to
the rows by it (``ci-ml monitor --labels``).

:func:`service_app` is the ASGI application the server runs: the metrics middleware around
everything, and ``POST /predict`` answered before FastAPI sees the request, because FastAPI's
middleware, routing and dependency solving cost more than an ONNX model's prediction of one
row (about 0.1 ms). The FastAPI route documents it in OpenAPI and answers the same way
(:func:`answer_predict`) when it is reached, as in an app without :func:`service_app`. The
status routes (health, version, metrics) are in :mod:`ci_ml.serve.status`, the admin route
(reload) in :mod:`ci_ml.serve.admin`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ci_ml.serve.admin import add_admin_routes
from ci_ml.serve.input import TOO_LARGE_HINT, InvalidRequest, parse_body, read_body, to_columns
from ci_ml.serve.model import LoadedModel, PredictionFailed
from ci_ml.serve.status import add_status_routes
from ci_ml.serve.v2 import add_v2_routes

if TYPE_CHECKING:
    from ci_ml.serve.service import Service

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[Scope, Receive, Callable[[Message], Awaitable[None]]], Awaitable[None]]
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]  # status, JSON body, extra headers
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_KEY = "ci_ml.request_id"  # where the id waits in the ASGI scope
# what a client may give: 1 to 128 of letters, digits and . _ : - (UUIDs, ULIDs, hex, ...)
_SANE_ID = re.compile(r"[A-Za-z0-9][\w.:-]{0,127}", re.ASCII)


class Prediction(BaseModel):
    """One row's answer: label and probability of the positive class (multiclass: of the
    most probable class, and every class's probability), or a value."""

    label: str | int | float | bool | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None


class PredictResponse(BaseModel):
    request_id: str
    model_version: str
    model_digest: str
    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    detail: str
    request_id: str | None = None


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "records": {"type": "array", "items": {"type": "object"}},
                        "record": {"type": "object"},
                    },
                    "description": 'Exactly one of "records" (rows) or "record" (one row); each '
                    "row names every feature column; null is a missing value.",
                },
                "example": {"records": [{"Age": 30, "Home": "rent", "Income": None}]},
            }
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503)
}


def add_routes(app: FastAPI, service: Service) -> None:
    """Add the service's routes to ``app``."""
    _add_predict(app, service)
    add_status_routes(app, service)
    add_v2_routes(app, service, request_id)
    if service.settings.admin_token:
        add_admin_routes(app, service, service.settings.admin_token)
    _add_route_errors(app)


ROUTES = (
    "POST /predict, GET /health, /health/live, /version, /metrics, and the Open Inference "
    "Protocol under /v2 (see /docs)"
)


def _add_route_errors(app: FastAPI) -> None:
    """An unknown route or method says which, and what the service answers (not Starlette's
    bare "Not Found")."""

    @app.exception_handler(StarletteHTTPException)
    async def route_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = (
                f"no route {where}: admin routes are off (set CI_ML_ADMIN_TOKEN to enable them)"
                if request.url.path.startswith("/admin/")
                else f"no route {where}; the service answers {ROUTES}"
            )
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.url.path} does not answer the method {request.method}; see /docs"
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)


def _add_predict(app: FastAPI, service: Service) -> None:
    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra=PREDICT_BODY,
        summary="Predict one or many rows with the production model",
    )
    async def predict(request: Request) -> Response:
        """Rows as ``{"records": [...]}`` (or ``{"record": {...}}``); one answer per row."""
        status, body, headers = await answer_predict(service, request.scope, request.receive)
        return Response(body, status, {k.decode(): v.decode() for k, v in headers}, JSON)


JSON = "application/json"


def request_id(scope: Scope) -> str:
    """The id of this request: its ``X-Request-ID`` header when that is a sane token (1 to
    128 letters, digits, ``.``, ``_``, ``:``, ``-``), else a new random one; kept in the
    scope, so every part of the answer gives the same id."""
    found = scope.get(REQUEST_ID_KEY)
    if found is None:
        given = _header(scope, REQUEST_ID_HEADER)
        found = given if given and _SANE_ID.fullmatch(given) else secrets.token_hex(16)
        scope[REQUEST_ID_KEY] = found
    return str(found)


async def answer_predict(service: Service, scope: Scope, receive: Receive) -> Answer:
    """The answer to ``POST /predict``; ClientDisconnect if the client left."""
    rid = request_id(scope)
    model = service.holder.current  # read once: this request uses this model throughout
    if model is None:
        return _error_answer(503, f"not ready: {service.not_ready_reason()}", rid)
    settings = service.settings
    try:
        _check_content_type(_header(scope, b"content-type"))
        body = await read_body(scope, receive, settings.max_body_bytes, TOO_LARGE_HINT)
        rows = parse_body(body, settings.max_rows)
        columns = to_columns(rows, model.schema)
        answers = await asyncio.wrap_future(service.batcher.submit(model, columns, len(rows)))
    except InvalidRequest as err:
        return _error_answer(err.status, str(err), rid)
    except PredictionFailed as err:
        return _error_answer(500, f"the model failed to predict: {err}", rid)
    service.after_answer(model, rows, answers, rid)
    headers = [(b"x-model-version", model.version.encode()), (REQUEST_ID_HEADER, rid.encode())]
    return 200, _predictions(model, answers, rid), headers


def _predictions(model: LoadedModel, answers: list[dict[str, Any]], rid: str) -> bytes:
    """The answer's JSON: by orjson (6 µs for 100 rows instead of json's 90; the model's
    outputs were checked finite, so nothing NaN reaches it), or by Python's json for what
    orjson refuses (a label that is an integer beyond 64 bits) or where it is missing."""
    body = {
        "request_id": rid,
        "model_version": model.version,
        "model_digest": model.digest,
        "predictions": answers,
    }
    try:
        import orjson

        return orjson.dumps(body)
    except (ImportError, TypeError):
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def _error_answer(status: int, detail: str, rid: str) -> Answer:
    # the bytes JSONResponse sends
    body = {"detail": detail, "request_id": rid}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return status, text.encode(), [(REQUEST_ID_HEADER, rid.encode())]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _check_content_type(value: str | None) -> None:
    if value is None:
        return
    kind = value.split(";", 1)[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise InvalidRequest(
            f"the body is sent as {kind or 'nothing'}; send JSON with "
            "Content-Type: application/json",
            status=415,
        )


def service_app(app: FastAPI, service: Service) -> ASGIApp:
    """``app`` behind the request id and metrics middleware, ``POST /predict`` answered
    before it."""
    return _RequestIdMiddleware(_MetricsMiddleware(_PredictMiddleware(app, service), service))


class _RequestIdMiddleware:
    """Puts the request id (:func:`request_id`) in the header of every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if all(key.lower() != REQUEST_ID_HEADER for key, _ in headers):
                    message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, rid)]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class _PredictMiddleware:
    """Answers ``POST /predict`` before FastAPI (see the module's docstring)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            status, body, headers = await answer_predict(self.service, scope, receive)
        except ClientDisconnect:
            return  # nobody to answer
        length = str(len(body)).encode()
        headers += [(b"content-length", length), (b"content-type", JSON.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _MetricsMiddleware:
    """Counts every request by route and status and times it (plain ASGI: cheap)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.metrics = service.metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.observe(scope["path"], scope["method"], status, elapsed)
