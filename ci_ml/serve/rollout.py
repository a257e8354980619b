"""Reloads across the workers of ``ci-ml serve --workers N``, in two phases, and their
metrics summed: the supervisor's half that is about models, not processes (see
:mod:`ci_ml.serve.workers` for the design, :mod:`ci_ml.serve.cluster` for the messages).

:class:`Rollout` holds the state; :class:`~ci_ml.serve.workers.Supervisor` adds the processes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ci_ml.errors import CiMlError
from ci_ml.registry.records import ModelVersion
from ci_ml.serve.cluster import WorkerTable
from ci_ml.serve.model import NoProduction
from ci_ml.serve.prometheus import MetricsState, merge
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.service import ServeSettings

log = logging.getLogger("ci_ml.serve")

RELOAD_SECONDS = 600.0  # longest a worker may take to load a version
GATHER_SECONDS = 5.0  # longest a worker may take to hand over its metrics


@dataclass
class Worker:
    """A worker process as the supervisor sees it."""

    slot: int
    process: BaseProcess
    conn: Connection
    started: float
    ready: bool = False  # it serves the committed version, or knows why nothing
    boot_gen: int | None = None


@dataclass
class _Cycle:
    """A reload across the workers."""

    gen: int
    target: ModelVersion
    old: ModelVersion | None
    slots: set[int]
    waiting: set[int]
    requesters: list[tuple[int, str]]
    polled: bool
    deadline: float
    phase: str = "prepare"
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # worker, why, kind


@dataclass
class _Gather:
    slot: int
    rid: str
    waiting: set[int]
    deadline: float
    states: list[MetricsState] = field(default_factory=list)


class Rollout:
    """The model side of the supervisor: which version every worker serves, the reload under
    way, the reloads and metrics requests waiting."""

    def __init__(self, holder: ModelHolder, settings: ServeSettings, workers: int) -> None:
        self.holder = holder
        self.settings = settings
        self.table = WorkerTable(workers)
        self.workers: dict[int, Worker] = {}
        self.committed: ModelVersion | None = None
        self.cycle: _Cycle | None = None
        self.requests: list[tuple[int, str]] = []  # reloads waiting for the cycle
        self.gathers: dict[int, _Gather] = {}
        self.reloads: Counter[str] = Counter()
        self.problem = "no model is loaded yet"
        self.refused_digest: str | None = None
        self._last_poll_problem: str | None = None
        self._ids = itertools.count(1)

    def _send(self, worker: Worker, *message: Any) -> None:
        with contextlib.suppress(OSError):  # it is exiting: handled on the next step
            worker.conn.send(message)

    def _booting(self) -> bool:
        return any(not w.ready for w in self.workers.values())

    # -- reloads --------------------------------------------------------------------------

    def _begin(self, *, polled: bool, initial: bool = False) -> None:
        """Start a reload to the registry's production version, or answer at once."""
        try:
            target = self._production()
        except CiMlError as err:
            if not polled or str(err) != self._last_poll_problem:  # a poll counts it once
                self.reloads["failed"] += 1
                if polled:
                    log.warning("reload by polling: %s", err)
            self._last_poll_problem = str(err) if polled else None
            if self.committed is None:
                self.problem = str(err)
            status = 409 if isinstance(err, NoProduction) else 503
            self._answer(status, {"detail": str(err), "serving": self._serving()})
            self._tell_why(str(err))
            return
        if self.committed is not None and target.digest == self.committed.digest:
            if not polled:
                self.reloads["unchanged"] += 1
            version = self.committed.version
            body = {"outcome": "unchanged", "old_version": version, "new_version": version}
            self._answer(200, {**body, "model_digest": target.digest})
            return
        if polled and target.digest == self.refused_digest:
            return
        slots = {s for s, w in self.workers.items() if w.ready or initial}
        gen = next(self._ids)
        requesters, self.requests = self.requests, []
        self.cycle = _Cycle(
            gen,
            target,
            self.committed,
            slots,
            set(slots),
            requesters,
            polled,
            time.monotonic() + RELOAD_SECONDS,
        )
        for slot in slots:
            self._send(self.workers[slot], "prepare", gen, target.version)
        self._advance()

    def _production(self) -> ModelVersion:
        production = self.holder.registry.get_production()
        if production is None:
            raise NoProduction(
                f"nothing is in production in the registry at {self.holder.registry.url}; "
                "promote a version with 'ci-ml registry promote'"
            )
        return production

    def _advance(self) -> None:
        """Move the cycle on once every worker in it answered its phase."""
        cycle = self.cycle
        if cycle is None or cycle.waiting:
            return
        if cycle.phase == "prepare" and not cycle.refused and cycle.slots:
            cycle.phase, cycle.waiting = "commit", set(cycle.slots)
            self.committed = cycle.target  # a worker restarted from now on loads it
            for slot in cycle.slots:
                self._send(self.workers[slot], "commit", cycle.gen)
            return
        self.cycle = None
        if cycle.phase == "commit":
            self._swapped(cycle)
        else:
            self._refused(cycle)
        self._after_cycle()

    def _swapped(self, cycle: _Cycle) -> None:
        old = cycle.old.version if cycle.old else None
        log.info("now serving %s on every worker (was %s)", cycle.target.version, old or "none")
        self.reloads["swapped"] += 1
        self.refused_digest = None
        body = {
            "outcome": "swapped",
            "old_version": old,
            "new_version": cycle.target.version,
            "model_digest": cycle.target.digest,
            "workers": self.table.rows(),
        }
        self._answer(200, body, cycle.requesters)

    def _refused(self, cycle: _Cycle) -> None:
        for slot in cycle.slots:
            self._send(self.workers[slot], "abort", cycle.gen)
        serving = cycle.old.version if cycle.old else None
        slot, why, _ = cycle.refused[0] if cycle.refused else (0, "no worker is running", "")
        keeps = f"every worker keeps serving {serving}" if serving else "nothing is served yet"
        asked = len(cycle.slots | {s for s, _, _ in cycle.refused})  # with those that died
        detail = (
            f"{why} (worker {slot + 1}; {len(cycle.refused)} of {asked} refused it, so {keeps})"
            if cycle.refused
            else why
        )
        refused = any(kind == "refused" for _, _, kind in cycle.refused)
        self.reloads["refused" if refused else "failed"] += 1
        self.refused_digest = cycle.target.digest
        if cycle.polled:
            log.warning("reload by polling: %s", detail)
        else:
            log.warning("reload refused: %s", detail)
        if self.committed is None:
            self.problem = detail
        self._answer(
            422 if refused else 503, {"detail": detail, "serving": serving}, cycle.requesters
        )
        self._tell_why(detail)

    def _after_cycle(self) -> None:
        """Reloads that waited for a cycle or a restart start now."""
        if self.requests and self.cycle is None and not self._booting():
            self._begin(polled=False)

    def _tell_why(self, problem: str) -> None:
        """Workers that serve nothing yet say why, and start answering."""
        for worker in self.workers.values():
            if self.committed is None:
                worker.ready = True
                self._send(worker, "problem", problem)

    def _serving(self) -> str | None:
        return self.committed.version if self.committed else None

    def _answer(
        self, status: int, body: dict[str, Any], requesters: list[tuple[int, str]] | None = None
    ) -> None:
        if requesters is None:
            requesters, self.requests = self.requests, []
        for slot, rid in requesters:
            if slot in self.workers:
                self._send(self.workers[slot], "result", rid, status, body)

    # -- metrics ---------------------------------------------------------------------------

    def _gather(self, worker: Worker, rid: str) -> None:
        gid = next(self._ids)
        deadline = time.monotonic() + GATHER_SECONDS
        self.gathers[gid] = _Gather(worker.slot, rid, set(self.workers), deadline)
        for other in self.workers.values():
            self._send(other, "snapshot", gid)

    def _finish_gathers(self) -> None:
        for gid, gather in list(self.gathers.items()):
            if gather.waiting:
                continue
            del self.gathers[gid]
            total = merge(gather.states)
            total.reloads = Counter(self.reloads)  # counted here, once per reload of them all
            if gather.slot in self.workers:
                self._send(self.workers[gather.slot], "gathered", gather.rid, total)
