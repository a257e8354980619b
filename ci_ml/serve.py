"""``ci-ml serve``: the model web service (FastAPI on uvicorn) for the registry's production model.

    POST /predict        {"records": [{column: value}, ...]} -> one prediction per row
    GET  /health         readiness: 200 when a model is served, else 503 with the reason
    GET  /health/live    liveness: always 200 while the process answers
    GET  /version        the served version, digest and when it was loaded
    GET  /metrics        Prometheus text format (see ci_ml.servemetrics)
    POST /admin/reload   bearer token; serve the new production version (404 without a token)
    GET  /docs           the OpenAPI documentation

Predictions run on a few threads, each limited to one OpenMP/BLAS thread, that merge the
requests waiting together into one model call (see ci_ml.servebatch). See ``docs/serving.md``
for the reload guarantees, the limits and the security notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.errors import BadInputError, CiMlError
from ci_ml.servebatch import Batcher
from ci_ml.servereload import ModelHolder, Poller, ReloadResult

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ci_ml.requestlog import RequestLog
    from ci_ml.serveroutes import ASGIApp

log = logging.getLogger("ci_ml.serve")

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class RequestLogSettings:
    """Where and how much of the predicted rows to log (see ci_ml.requestlog)."""

    directory: Path
    sample: float = 0.1
    max_bytes: int = 50_000_000
    max_files: int = 5


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs; the CLI builds this from its flags."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_rows: int = DEFAULT_MAX_ROWS
    poll_seconds: float | None = None
    admin_token: str | None = None
    threads: int = 1
    request_log: RequestLogSettings | None = None
    access_log: bool = False


class Service:
    """The served model and everything around it: metrics, request log, threads, poller.

    With ``freeze_heap`` (the service's own process, not a test's), the objects alive after a
    model is loaded are frozen out of the garbage collector's sight (see :func:`freeze_heap`).
    """

    def __init__(
        self, holder: ModelHolder, settings: ServeSettings, freeze_heap: bool = False
    ) -> None:
        from ci_ml.servemetrics import Metrics

        self.holder = holder
        self.settings = settings
        self.freeze_heap = freeze_heap
        self.metrics = Metrics(ROUTES)
        self.request_log = _request_log(settings.request_log)
        self.batcher = Batcher(settings.threads, settings.max_rows, self.metrics.count_call)
        self._poller: Poller | None = None

    def start(self) -> None:
        """Load the production model (if any), start predicting, logging and polling."""
        self.batcher.start()
        try:
            self.reload()
        except CiMlError as err:
            log.warning("not ready: %s", err)
        if self.settings.poll_seconds:
            self._poller = Poller(
                self.holder, self.settings.poll_seconds, self.metrics.count_reload
            )
            self._poller.start()

    def stop(self) -> None:
        """Stop polling, finish the request log, release the prediction threads."""
        if self._poller is not None:
            self._poller.stop()
        if self.request_log is not None:
            self.request_log.close()
        self.batcher.close()

    def reload(self) -> ReloadResult:
        """Reload from the registry, counting the outcome."""
        from ci_ml.servemodel import ModelRefused

        try:
            result = self.holder.reload()
        except ModelRefused:
            self.metrics.count_reload("refused")
            raise
        except CiMlError:
            self.metrics.count_reload("failed")
            raise
        self.metrics.count_reload(result.outcome)
        if result.outcome == "swapped":
            log.info("now serving %s (was %s)", result.new_version, result.old_version or "none")
            if self.freeze_heap:
                freeze_heap()
        return result

    def not_ready_reason(self) -> str:
        return self.holder.problem or "no model is loaded yet"


def freeze_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's sight.

    A full collection walks every tracked object: with scikit-learn, pandas, ONNX Runtime and a
    model loaded, 0.05 to 0.2 s in which no request is answered, every few thousand requests
    (the p99 of a busy service); this call takes about as long, once per swap. Frozen objects
    (modules, the loaded model) are still freed when their last reference goes; objects made
    by requests are collected as usual. Each call first unfreezes, so that the leftovers of a
    replaced model are collected then.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _request_log(settings: RequestLogSettings | None) -> RequestLog | None:
    """The request log, or None when logging is off; BadInputError if DIR cannot be used."""
    if settings is None:
        return None
    from ci_ml.requestlog import RequestLog

    try:
        return RequestLog(
            settings.directory,
            sample=settings.sample,
            max_bytes=settings.max_bytes,
            max_files=settings.max_files,
        )
    except OSError as err:
        raise BadInputError(
            f"cannot log requests in {settings.directory} ({err.strerror or err}); "
            "give a writable directory with --log-requests"
        ) from None


ROUTES = ("/predict", "/health", "/health/live", "/version", "/metrics", "/admin/reload")


def create_app(service: Service) -> FastAPI:
    """The FastAPI application of ``service``: its routes (the server runs :func:`asgi_app`)."""
    from fastapi import FastAPI

    from ci_ml import __version__
    from ci_ml.serveroutes import add_routes

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, service.start)
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, service.stop)

    app = FastAPI(
        title="ci-ml model service",
        version=__version__,
        description="Predictions from the registry's production model.",
        lifespan=lifespan,
    )
    add_routes(app, service)
    return app


def asgi_app(service: Service) -> ASGIApp:
    """What the server runs: the FastAPI app behind the metrics and ``POST /predict``."""
    from ci_ml.serveroutes import service_app

    return service_app(create_app(service), service)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); BadInputError if busy."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise BadInputError(f"cannot listen on {host}:{port} ({err}); check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise BadInputError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
            "or stop what uses it"
        ) from None
    sock.set_inheritable(True)
    return sock


def _server(app: ASGIApp, settings: ServeSettings, log_level: str = "info") -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    return uvicorn.Server(config)


def serve(holder: ModelHolder, settings: ServeSettings) -> None:
    """Run the service in the foreground until interrupted (SIGINT/SIGTERM)."""
    service = Service(holder, settings, freeze_heap=True)
    sock = bind(settings.host, settings.port)
    server = _server(asgi_app(service), settings)
    log.info("listening on %s (model registry: %s)", base_url(sock), holder.registry.url)
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        raise CiMlError("the service did not start; see the messages above")


@contextlib.contextmanager
def serve_in_thread(holder: ModelHolder, settings: ServeSettings) -> Iterator[str]:
    """Run the service in a background thread (for tests and tools); yields its base URL.

    ``settings.port`` 0 picks a free port. The server stops when the block ends.
    """
    sock = bind(settings.host, settings.port)
    server = _server(asgi_app(Service(holder, settings)), settings, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise CiMlError("the service did not start; see the log")
            threading.Event().wait(0.01)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
