"""The routes that say how ``ci-ml serve`` is: ``GET /health``, ``/health/live``, ``/version``
and ``/metrics`` (see :mod:`ci_ml.serve.routes` for the others and the error answers)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from ci_ml import __version__
from ci_ml.errors import CiMlError
from ci_ml.serve.model import LoadedModel
from ci_ml.serve.prometheus import CONTENT_TYPE

if TYPE_CHECKING:
    from ci_ml.serve.service import Service


def add_status_routes(app: FastAPI, service: Service) -> None:
    """Add readiness, liveness, version and metrics to ``app``."""

    @app.get("/health", summary="Readiness: 200 when a model is served, else 503")
    async def health() -> Response:
        """200 with the served version, or 503 with the reason no model is served."""
        model = service.holder.current
        if model is None:
            reason = service.not_ready_reason()
            return JSONResponse({"status": "unavailable", "ready": False, "reason": reason}, 503)
        return JSONResponse({"status": "ok", "ready": True, "model_version": model.version})

    @app.get("/health/live", summary="Liveness: 200 while the process answers")
    async def live() -> dict[str, str]:
        """Always ``{"status": "ok"}`` while the process answers."""
        return {"status": "ok"}

    @app.get("/version", summary="The served model version, digest and load time")
    async def version() -> Response:
        """The served model's version, digest, load time, task, threshold and features."""
        model = service.holder.current
        if model is None:
            return error(503, f"not ready: {service.not_ready_reason()}")
        found = _describe(model)
        if service.link is not None:  # ci-ml serve --workers N: what each one serves
            found["worker"] = service.link.slot + 1
            found["workers"] = service.link.table.rows()
        return JSONResponse(found)

    @app.get("/metrics", summary="Prometheus metrics (text format 0.0.4)")
    async def metrics() -> Response:
        """Requests, errors, latency, reloads and the served version, for Prometheus."""
        try:  # with workers, the supervisor sums theirs (a wait: off the event loop)
            text = (
                service.metrics_text()
                if service.link is None
                else await asyncio.get_running_loop().run_in_executor(None, service.metrics_text)
            )
        except CiMlError as err:
            return error(503, str(err))
        return Response(text, media_type=CONTENT_TYPE)


def error(status: int, detail: str) -> Response:
    """An error answer: ``{"detail": "<one sentence>"}``."""
    return JSONResponse({"detail": detail}, status)


def _describe(model: LoadedModel) -> dict[str, Any]:
    return {
        "model_version": model.version,
        "model_digest": model.digest,
        "loaded_at": model.loaded_at,
        "task": model.task,
        "runtime": model.runtime,
        "threshold": model.threshold if model.positive_index is not None else None,
        "features": list(model.schema.names),
        "classes": [str(c) for c in model.classes],
        "ci_ml_version": __version__,
    }
