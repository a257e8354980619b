"""Shadow scoring: a second model version answers a sample of the requests, off the request path.

``ci-ml serve --shadow VERSION --shadow-sample 0.2`` loads VERSION with the same checks as the
production model (:func:`ci_ml.serve.model.load_version`: trusted types, smoke test) and, for a
random ``sample`` of the answered requests (whole requests, on ``/predict`` and ``/v2``
infer alike), queues the rows with production's answers. One thread, its OpenMP/BLAS limited to
one thread and its CPU priority lowered, predicts what is queued in merged calls (at most
``max_rows`` rows, one call every ``linger`` seconds at most, its calls taking at most
``budget`` of the time), and writes each row to the
request log with both answers under the request's id (see :mod:`ci_ml.serve.requestlog`).

The answer never waits for the shadow: the request path only draws the sample and puts the
request on a bounded queue. A request that finds the queue full is dropped from shadowing and
counted (``ci_ml_shadow_rows_total{result="dropped"}``), and its rows go to the request log
as usual; a shadow that fails to predict is counted as ``failed`` and logged once.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ci_ml.serve.input import Columns, to_columns
from ci_ml.serve.model import LoadedModel, limit_threads
from ci_ml.serve.requestlog import RequestLog

log = logging.getLogger("ci_ml.serve")

QUEUE_REQUESTS = 1000
LINGER_S = 0.05
BUDGET = 0.1  # the share of wall time the shadow's calls may take; the rest it waits
NICENESS = 10
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STOP = object()


@dataclass(frozen=True)
class _Sampled:
    """One answered request, waiting for the shadow."""

    production: LoadedModel
    columns: Columns
    rows: Sequence[Any]
    answers: Sequence[dict[str, Any]]
    request_id: str


class ShadowScorer:
    """Predicts a ``sample`` of the answered requests with ``model`` in its own thread."""

    def __init__(
        self,
        model: LoadedModel,
        request_log: RequestLog,
        *,
        sample: float,
        max_rows: int,
        queue_requests: int = QUEUE_REQUESTS,
        linger: float = LINGER_S,
        budget: float = BUDGET,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.request_log = request_log
        self.sample = sample
        self.max_rows = max_rows
        self.linger = linger
        self.budget = budget
        self.counts = {"scored": 0, "dropped": 0, "failed": 0}  # rows
        self.bounds = BUCKETS
        self.buckets = [0] * (len(BUCKETS) + 1)  # seconds per shadow call
        self.seconds = 0.0
        self._random = random.Random(seed)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_requests)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="ci-ml-shadow", daemon=True)

    def start(self) -> None:
        """Start the shadow's thread."""
        self._thread.start()

    def offer(
        self,
        production: LoadedModel,
        columns: Columns,
        rows: Sequence[Any],
        answers: Sequence[dict[str, Any]],
        request_id: str,
    ) -> bool:
        """Queue a request ``production`` answered, if sampled (never blocks); True when the
        shadow took it."""
        if self._random.random() >= self.sample:
            return False
        try:
            self._queue.put_nowait(_Sampled(production, columns, rows, answers, request_id))
        except queue.Full:
            with self.lock:
                self.counts["dropped"] += len(rows)
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the thread."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout=timeout)

    # -- the shadow's thread ----------------------------------------------------------------

    def _run(self) -> None:
        limit_threads()
        _lower_priority()
        carry: _Sampled | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                return
            batch, carry, stop = self._gather(first)
            seconds = self._score(batch)
            if stop:
                return
            if not self._stop.is_set():
                # fewer, larger calls, and at most `budget` of the time: under load the
                # answers keep their CPU and the shadow drops (and counts) what it cannot take
                self._stop.wait(max(self.linger, seconds * (1 / self.budget - 1)))

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
        """Predict and log the batch; the seconds its call took."""
        rows = sum(len(item.rows) for item in batch)
        start = time.perf_counter()
        try:
            parts = [self._columns(item) for item in batch]
            answers = self.model.predict_columns(parts, rows)
        except Exception as err:  # the shadow's problem, never the request's
            self._failed(rows, err)
            return time.perf_counter() - start
        seconds = time.perf_counter() - start
        per_row_ms = seconds * 1000 / rows
        with self.lock:
            self.counts["scored"] += rows
            self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.seconds += seconds
        at = 0
        for item in batch:
            mine = answers[at : at + len(item.rows)]
            at += len(item.rows)
            shadow = [
                {"model_version": self.model.version, "prediction": a, "latency_ms": per_row_ms}
                for a in mine
            ]
            self.request_log.log_all(
                item.production.version, item.rows, item.answers, item.request_id, shadow
            )
        return seconds

    def _columns(self, item: _Sampled) -> Columns:
        """The request's checked values, checked again when the shadow's schema differs."""
        if item.production.schema == self.model.schema:
            return item.columns
        return to_columns(item.rows, self.model.schema)

    def _failed(self, rows: int, err: Exception) -> None:
        with self.lock:
            self.counts["failed"] += rows
        if not self._warned:
            log.warning("shadow %s failed to predict (%s); counting", self.model.version, err)
            self._warned = True


def _lower_priority() -> None:
    """Give the shadow's thread a lower CPU priority than the threads that answer (Linux:
    each thread has its own niceness); best effort elsewhere."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
