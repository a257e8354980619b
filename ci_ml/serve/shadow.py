"""Shadow scoring: a second model version answers a sample of the requests, off the request path.

``ci-ml serve --shadow VERSION --shadow-sample 0.2`` loads VERSION with the same checks as the
production model (:func:`ci_ml.serve.model.load_version`: trusted types, smoke test) and, for a
random ``sample`` of the answered requests (whole requests, on ``/predict`` and ``/v2``
infer alike), queues the rows with production's answers. The shadow's own process (see
:mod:`ci_ml.serve.sidecar`: its own GIL, the idle scheduling class, one OpenMP/BLAS thread) loads
VERSION again and predicts what is queued in merged calls (at most ``max_rows`` rows, one call
every ``linger`` seconds at most, its calls taking at most ``budget`` of the time), and writes
each row to its own request-log files (``requests-shadow-000001.jsonl``, ...) with both answers
under the request's id (see :mod:`ci_ml.serve.requestlog`).

The answer never waits for the shadow: the request path only draws the sample and puts the
request on a bounded queue; one thread of this process sends the queued requests to the
shadow's process, a batch at a time. A request that finds the queue full is dropped from
shadowing and counted (``ci_ml_shadow_rows_total{result="dropped"}``), and its rows go to the
request log as usual; a shadow that fails to predict is counted as ``failed`` and logged once,
and once its process is known to be gone (or could not load the version), every sampled
request is counted as ``failed`` and goes to the request log as usual.

The sample can change while the service runs (``POST /admin/shadow``, see
:mod:`ci_ml.serve.admin`): it is a :class:`SampleRate`, which the workers of ``ci-ml serve
--workers N`` share, so that one request changes it for all of them (and for a worker started
again later).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import logging
import multiprocessing
import queue
import random
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ci_ml.serve import sidecar
from ci_ml.serve.model import LoadedModel
from ci_ml.serve.requestlog import RequestLog

log = logging.getLogger("ci_ml.serve")

QUEUE_REQUESTS = 1000
LINGER_S = 0.25  # fewer, larger calls: the shadow's answers wait for no one
BUDGET = 0.05  # the share of wall time the shadow's calls may take; the rest it waits
START_TIMEOUT_S = 300.0
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOG_PREFIX = "shadow-"  # after the request log's own: requests-shadow-, requests-w1-shadow-
_STOP = object()


class SampleRate:
    """The share of answered requests the shadow scores, in [0, 1] (0: shadowing paused).

    ``shared``: kept in memory that processes forked afterwards share (the workers of ``ci-ml
    serve --workers N``), so a change made in one is seen by all; else a plain number.
    """

    def __init__(self, value: float, shared: bool = False) -> None:
        # one aligned double either way: read and written whole, no lock needed
        self._cell: Any = (
            multiprocessing.get_context("fork").RawValue("d", value)
            if shared
            else ctypes.c_double(value)
        )

    @property
    def value(self) -> float:
        return float(self._cell.value)

    @value.setter
    def value(self, value: float) -> None:
        self._cell.value = float(value)


@dataclass(frozen=True)
class _Sampled:
    """One answered request, waiting for the shadow."""

    version: str
    rows: Sequence[Any]
    answers: Sequence[dict[str, Any]]
    request_id: str


class ShadowScorer:
    """Predicts a ``sample`` of the answered requests with ``model``, in its own process.

    ``model`` is the shadow version as loaded here (its checks passed); the process loads it
    again from ``registry_url`` with the ``trusted`` types, and logs beside ``request_log``.
    """

    def __init__(
        self,
        model: LoadedModel,
        request_log: RequestLog,
        *,
        sample: float,
        max_rows: int,
        registry_url: str,
        trusted: Sequence[str] = (),
        queue_requests: int = QUEUE_REQUESTS,
        linger: float = LINGER_S,
        budget: float = BUDGET,
        seed: int | None = None,
        rate: SampleRate | None = None,
    ) -> None:
        self.model = model
        self.rate = rate if rate is not None else SampleRate(sample)
        self.max_rows = max_rows
        self.linger = linger
        self.budget = budget
        self.counts = {"scored": 0, "dropped": 0, "failed": 0}  # rows
        self.pending = 0  # sampled requests queued or being scored
        self.log_counts = {"written": 0, "dropped": 0}  # rows of the shadow's request log
        self.bounds = BUCKETS
        self.buckets = [0] * (len(BUCKETS) + 1)  # seconds per shadow call
        self.seconds = 0.0
        self.settings = sidecar.SidecarSettings(
            registry_url=registry_url,
            version=model.version,
            trusted=tuple(trusted),
            log_directory=request_log.directory,
            log_prefix=request_log.prefix + LOG_PREFIX,
            log_max_bytes=request_log.max_bytes,
            log_max_files=request_log.max_files,
        )
        self._random = random.Random(seed)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_requests)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._problem: str | None = None  # why the shadow's process cannot score
        self._warned = False
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._run, name="ci-ml-shadow", daemon=True)

    @property
    def sample(self) -> float:
        """The share of answered requests scored now (see :class:`SampleRate`)."""
        return self.rate.value

    def start(self) -> None:
        """Start the shadow's process and the thread that feeds it; return once it has loaded
        the version (or failed to: then every sampled row is counted as failed)."""
        self._process, self._conn = sidecar.start(self.settings)
        self._thread.start()
        self._ready.wait(START_TIMEOUT_S)

    def offer(
        self,
        production: LoadedModel,
        rows: Sequence[Any],
        answers: Sequence[dict[str, Any]],
        request_id: str,
    ) -> bool:
        """Queue a request ``production`` answered, if sampled (never blocks); True when the
        shadow took it."""
        if self._random.random() >= self.rate.value:
            return False
        if self._problem is not None:  # it cannot score: the request log samples it as usual
            with self.lock:
                self.counts["failed"] += len(rows)
            return False
        with self.lock:  # counted first: the feeding thread may be done with it at once
            self.pending += 1
        try:
            self._queue.put_nowait(_Sampled(production.version, rows, answers, request_id))
        except queue.Full:
            with self.lock:
                self.pending -= 1
                self.counts["dropped"] += len(rows)
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the thread and the shadow's process."""
        if self._thread.is_alive():
            self._stop.set()
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout=timeout)
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=timeout)

    # -- the feeding thread -----------------------------------------------------------------

    def _run(self) -> None:
        self._answer("ready")
        self._ready.set()
        carry: _Sampled | None = None
        stop = False
        while not stop:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                break
            batch, carry, stop = self._gather(first)
            seconds = self._score(batch)
            with self.lock:
                self.pending -= len(batch)
            if not stop and not self._stop.is_set():
                # fewer, larger calls, and at most `budget` of the time: under load the
                # shadow drops (and counts) what it cannot take
                self._stop.wait(max(self.linger, seconds * (1 / self.budget - 1)))
        self._finish()

    def _gather(self, first: _Sampled) -> tuple[list[_Sampled], _Sampled | None, bool]:
        """``first`` and the requests queued behind it, up to ``max_rows`` rows."""
        batch, rows = [first], len(first.rows)
        while rows < self.max_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, None, True
            if rows + len(item.rows) > self.max_rows:
                return batch, item, False
            batch.append(item)
            rows += len(item.rows)
        return batch, None, False

    def _score(self, batch: list[_Sampled]) -> float:
        """Have the shadow's process predict and log the batch; the seconds its call took."""
        rows = sum(len(item.rows) for item in batch)
        if self._conn is None or self._problem is not None:
            self._failed(rows, self._problem or "its process is not running")
            return 0.0
        try:
            sidecar.send(self._conn, [[i.request_id, i.version, i.rows, i.answers] for i in batch])
        except OSError:
            self._lost()
            self._failed(rows, self._problem or "its process is not running")
            return 0.0
        return self._answer("scored", rows)

    def _answer(self, kind: str, rows: int = 0) -> float:
        """Read the process's answer of ``kind``; the seconds of its call."""
        try:
            assert self._conn is not None
            message = sidecar.receive(self._conn)
        except (EOFError, OSError):
            self._lost()
            self._failed(rows, self._problem or "its process is not running")
            return 0.0
        if kind == "ready":
            self._problem = message[1]
            if self._problem is not None:
                self._failed(0, self._problem)  # warn now, not at the first sampled request
            return 0.0
        _kind, rows, problem, seconds, written, dropped = message
        with self.lock:
            self.log_counts = {"written": written, "dropped": dropped}
            if problem is None:
                self.counts["scored"] += rows
                self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
                self.seconds += seconds
        if problem is not None:
            self._failed(rows, problem)
        return float(seconds)

    def _lost(self) -> None:
        """The process exited (or its pipe broke): nothing more is sent to it."""
        code = self._process.poll() if self._process is not None else None
        self._problem = f"its process exited (code {code})"
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _finish(self) -> None:
        """Tell the process to finish its log and exit, and wait for it."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(sidecar.STOP)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10.0)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, rows: int, problem: str) -> None:
        with self.lock:
            self.counts["failed"] += rows
        if not self._warned:
            log.warning("shadow %s failed to predict (%s); counting", self.model.version, problem)
            self._warned = True
