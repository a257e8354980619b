"""Prediction threads that merge the requests waiting together into one model call.

A scikit-learn pipeline costs about the same per call for 1 row as for 100 (its input checks
dominate), so under concurrent load the service predicts the checked rows of every request that
is waiting — up to ``max_rows`` rows — in one call, and hands each request its own slice of the
answers. Requests are merged only when they hold the same :class:`LoadedModel` object, so a
batch never mixes two models during a reload. If a merged call fails, each request is predicted
alone, so that an error reaches only the request that caused it.

Each worker thread limits OpenMP/BLAS to one thread (see :func:`limit_threads`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ci_ml.serve.input import Columns
from ci_ml.serve.model import LoadedModel, limit_threads

Answers = list[dict[str, Any]]


@dataclass
class _Job:
    model: LoadedModel
    columns: Columns
    rows: int
    future: Future[Answers] = field(default_factory=Future)


class Batcher:
    """``threads`` workers predicting queued requests, merged per model up to ``max_rows``."""

    def __init__(
        self, threads: int, max_rows: int, on_call: Callable[[int], None] = lambda _rows: None
    ) -> None:
        self.max_rows = max_rows
        self.on_call = on_call
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers = [
            threading.Thread(target=self._run, name=f"ci-ml-predict-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        """Start the worker threads."""
        for worker in self._workers:
            worker.start()

    def submit(self, model: LoadedModel, columns: Columns, rows: int) -> Future[Answers]:
        """Queue checked rows for ``model``; the future gets one answer per row."""
        job = _Job(model, columns, rows)
        self._queue.put(job)
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued requests, then stop the workers."""
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout=timeout)

    def _run(self) -> None:
        limit_threads()
        carry: _Job | None = None
        stop = False
        while not stop:
            first = carry if carry is not None else self._queue.get()
            if first is None:
                return
            jobs, carry, stop = self._gather(first)
            # a request whose client went away was cancelled: skip it
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            for group in _by_model(live):
                self._predict(group)

    def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """``first`` and the jobs waiting behind it, up to ``max_rows`` rows in all.

        Also returns a job that did not fit (the next round starts with it) and whether a stop
        was found.
        """
        jobs, rows = [first], first.rows
        while rows < self.max_rows:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, None, True
            if rows + job.rows > self.max_rows:
                return jobs, job, False
            jobs.append(job)
            rows += job.rows
        return jobs, None, False

    def _predict(self, jobs: list[_Job]) -> None:
        model = jobs[0].model
        try:
            answers = model.predict_columns([j.columns for j in jobs], sum(j.rows for j in jobs))
        except Exception as err:  # give each request its own answer or its own error
            if len(jobs) > 1:
                for job in jobs:
                    self._predict([job])
            else:
                jobs[0].future.set_exception(err)
            return
        self.on_call(len(answers))
        start = 0
        for job in jobs:
            job.future.set_result(answers[start : start + job.rows])
            start += job.rows


def _by_model(jobs: list[_Job]) -> list[list[_Job]]:
    """The jobs grouped by the model object they hold, in order of first appearance."""
    groups: dict[int, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(id(job.model), []).append(job)
    return list(groups.values())
