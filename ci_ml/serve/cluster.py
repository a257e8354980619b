"""A worker's side of ``ci-ml serve --workers N``: its pipe to the supervisor, and the table
of what every worker serves.

The supervisor (:mod:`ci_ml.serve.workers`) drives reloads; a worker's :class:`WorkerLink`
answers it on one thread (messages below), stages a version on another (loading takes seconds,
and the link keeps answering meanwhile), and forwards its own ``POST /admin/reload`` and
``GET /metrics`` to the supervisor, waiting for the answer.

    supervisor -> worker                      worker -> supervisor
    ("prepare", gen, version)                 ("staged", gen, problem | None, kind)
    ("commit", gen)                           ("swapped", gen, version)
    ("abort", gen)
    ("problem", text)                         (why nothing is served yet)
    ("snapshot", gid)                         ("state", gid, MetricsState)
                                              ("reload", rid) / ("gather", rid)
    ("result", rid, status, body)             (the answer to a reload)
    ("gathered", rid, MetricsState)           (the sum over the workers)
                                              ("fatal", text, exit code)

:class:`WorkerTable` is shared memory the supervisor makes before it starts the workers: one
slot per worker with its pid, version and digest, written by the worker when it swaps and
cleared by the supervisor when the worker exits, so that any worker's ``GET /version`` lists
them all.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import struct
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

from ci_ml.errors import CiMlError, ServiceError
from ci_ml.serve.model import ModelRefused

if TYPE_CHECKING:
    from ci_ml.serve.prometheus import MetricsState
    from ci_ml.serve.reload import ModelHolder

log = logging.getLogger("ci_ml.serve")

_SLOT = struct.Struct("q128s72s")  # pid, version, digest (sha256 in hex: 64)
ANSWER_SECONDS = 900.0  # longest wait for the supervisor's answer to a reload
GATHER_SECONDS = 10.0


class WorkerTable:
    """What each worker serves, in memory shared by the supervisor and its forked workers."""

    def __init__(self, workers: int) -> None:
        self.size = workers
        context = multiprocessing.get_context("fork")
        self._array: Any = context.Array(ctypes.c_char, workers * _SLOT.size)

    def set(self, slot: int, pid: int, version: str, digest: str) -> None:
        """Note that worker ``slot`` (process ``pid``) serves ``version``."""
        packed = _SLOT.pack(pid, version.encode()[:128], digest.encode()[:72])
        with self._array.get_lock():
            self._array[slot * _SLOT.size : (slot + 1) * _SLOT.size] = packed

    def clear(self, slot: int) -> None:
        """Worker ``slot`` exited: it serves nothing."""
        self.set(slot, 0, "", "")

    def rows(self) -> list[dict[str, Any]]:
        """Each worker: ``{"worker", "pid", "version", "digest"}`` (None while it serves
        nothing, pid None while it is restarted)."""
        with self._array.get_lock():
            raw = bytes(self._array.raw)
        found = []
        for slot in range(self.size):
            pid, version, digest = _SLOT.unpack_from(raw, slot * _SLOT.size)
            found.append(
                {
                    "worker": slot + 1,
                    "pid": pid or None,
                    "model_version": version.rstrip(b"\0").decode() or None,
                    "model_digest": digest.rstrip(b"\0").decode() or None,
                }
            )
        return found


class Served(Protocol):
    """What the link needs of the worker's service (:class:`ci_ml.serve.service.Service`)."""

    holder: ModelHolder

    def metrics_state(self) -> MetricsState: ...

    def swapped(self) -> None: ...


class WorkerLink:
    """A worker's end of its pipe to the supervisor (see the module's docstring)."""

    def __init__(self, conn: Connection, slot: int, table: WorkerTable, service: Served) -> None:
        self.conn = conn
        self.slot = slot
        self.table = table
        self.service = service
        self._send_lock = threading.Lock()
        self._waiting: dict[str, Future[Any]] = {}
        self._ids = itertools.count()
        self.ready = threading.Event()  # it serves the others' version, or knows why not
        self.answering = False  # its app has started
        self._thread = threading.Thread(target=self._run, name="ci-ml-link", daemon=True)

    def start(self) -> None:
        """Answer the supervisor on a daemon thread."""
        self._thread.start()

    def answer(self) -> None:
        """The worker's app has started: note what it serves in the table from now on."""
        self.answering = True
        model = self.service.holder.current
        if model is not None:
            self.table.set(self.slot, os.getpid(), model.version, model.digest)

    def send(self, *message: Any) -> None:
        with self._send_lock:
            self.conn.send(message)

    def reload(self) -> tuple[int, dict[str, Any]]:
        """Ask the supervisor to reload every worker; its status and JSON answer."""
        status, body = self._ask("reload", ANSWER_SECONDS)
        return int(status), dict(body)

    def metrics(self) -> MetricsState:
        """Every worker's metrics, summed by the supervisor."""
        state: MetricsState = self._ask("gather", GATHER_SECONDS)
        return state

    def _ask(self, kind: str, timeout: float) -> Any:
        rid = f"{os.getpid()}-{next(self._ids)}"
        future: Future[Any] = Future()
        self._waiting[rid] = future
        try:
            self.send(kind, rid)
            return future.result(timeout=timeout)
        except TimeoutError:
            raise ServiceError(
                f"the supervisor did not answer the {kind} within {timeout:g} s"
            ) from None
        finally:
            self._waiting.pop(rid, None)

    def _run(self) -> None:
        try:
            while True:
                self._handle(self.conn.recv())
        except (EOFError, OSError):
            # the supervisor is gone: stop as if told to (uvicorn shuts down gracefully)
            log.warning("worker %d: the supervisor is gone; stopping", self.slot + 1)
            os.kill(os.getpid(), signal.SIGTERM)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, *args = message
        holder = self.service.holder
        if kind == "prepare":
            gen, version = args
            threading.Thread(target=self._stage, args=(gen, version), daemon=True).start()
        elif kind == "commit":
            model = holder.commit()
            if self.answering:  # before that, answering() notes it
                self.table.set(self.slot, os.getpid(), model.version, model.digest)
            self.send("swapped", args[0], model.version)
            self.ready.set()
            self.service.swapped()
        elif kind == "abort":
            holder.abort()
        elif kind == "problem":
            holder.problem = args[0]
            self.ready.set()
        elif kind == "snapshot":
            self.send("state", args[0], self.service.metrics_state())
        elif kind == "result":
            self._resolve(args[0], (args[1], args[2]))
        elif kind == "gathered":
            self._resolve(args[0], args[1])

    def _resolve(self, rid: str, value: Any) -> None:
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(value)

    def _stage(self, gen: int, version: str) -> None:
        try:
            self.service.holder.stage(version)
        except ModelRefused as err:
            self.send("staged", gen, str(err), "refused")
        except CiMlError as err:
            self.send("staged", gen, str(err), "failed")
        except Exception as err:  # a bug: logged whole here, refused everywhere
            log.exception("worker %d: staging %s failed", self.slot + 1, version)
            self.send("staged", gen, f"{type(err).__name__}: {err}", "failed")
        else:
            self.send("staged", gen, None, "")
