"""Running the model service: its FastAPI app, the listening socket and uvicorn.

:func:`serve` runs it in the foreground (``ci-ml serve``); :func:`serve_in_thread` runs it
in a background thread for tests and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ci_ml import __version__
from ci_ml.errors import BadInputError, CiMlError
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.routes import ASGIApp, add_routes, service_app
from ci_ml.serve.service import ServeSettings, Service, log

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(service: Service) -> FastAPI:
    """The FastAPI application of ``service``: its routes (the server runs :func:`asgi_app`)."""
    from fastapi import FastAPI

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
