"""``ci-ml serve --workers N``: N worker processes behind one port, and the supervisor that
keeps them running and serving one model version.

The supervisor (the process ``ci-ml serve`` started) binds the port, makes the shared
:class:`~ci_ml.serve.cluster.WorkerTable` and forks the workers. Each runs the service one
process would run (uvicorn on the inherited socket; the kernel gives each connection to one of
them), but takes its model from the supervisor, which loads none itself: its one thread waits
on the workers' pipes and processes (the messages are listed in :mod:`ci_ml.serve.cluster`).

A reload (a worker's ``POST /admin/reload``, a poll, the start) runs in two phases:

1. **prepare**: read production from the registry; every worker loads and smoke-tests it
   beside the model it serves, and says whether it can serve it;
2. **commit**: when every worker staged it, each is told to swap it in (one reference
   assignment), and the reload is answered once every worker has swapped. If any worker
   refused it, died or took too long, every worker drops it and keeps the old version (fail
   closed), and the answer says which worker refused and why.

Workers answer with different versions only while the commit messages reach them (a pipe
write each, well under a millisecond); a request still takes one model once, so no answer
mixes two. A worker starts answering only after it serves the version the others serve (or,
with nothing to serve, knows why). A worker that exits is restarted, after a pause that
grows while it keeps exiting at once; restarts and reloads wait for each other.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import time
from collections import Counter
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

from ci_ml.errors import BadInputError, CiMlError
from ci_ml.serve.cluster import WorkerLink, WorkerTable
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.rollout import RELOAD_SECONDS, Rollout, Worker
from ci_ml.serve.server import _server, asgi_app, base_url, bind
from ci_ml.serve.service import ServeSettings, Service
from ci_ml.serve.shadow import SampleRate

log = logging.getLogger("ci_ml.serve")

STOP_SECONDS = 40.0  # uvicorn's graceful shutdown takes up to 30 s
TICK = 0.1


class Supervisor(Rollout):
    """Starts, restarts and stops the workers, and reloads them together (module docstring)."""

    def __init__(
        self,
        holder: ModelHolder,
        settings: ServeSettings,
        workers: int,
        sock: socket.socket,
        shadow: str | None = None,
    ) -> None:
        super().__init__(holder, settings, workers)
        self.size = workers
        self.sock = sock
        self.shadow = shadow
        # one sample for every worker, which POST /admin/shadow on any of them changes
        self.shadow_rate = SampleRate(settings.shadow_sample, shared=True) if shadow else None
        self.restart_at: dict[int, float] = {}
        self.quick_exits: Counter[int] = Counter()
        self.fatal: CiMlError | None = None
        self.stopping = False
        self.begun = False  # the first reload was started
        poll = settings.poll_seconds
        self.next_poll = time.monotonic() + poll if poll else None

    def run(self) -> None:
        """Run the workers until SIGTERM or SIGINT, then stop them gracefully."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.size):
                self._spawn(slot)
            self.begun = True
            self._begin(polled=False, initial=True)
            while not self.stopping:
                self._step()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_workers()
        if self.fatal is not None:
            raise self.fatal

    def _stop(self, _sig: int, _frame: Any) -> None:
        self.stopping = True

    # -- the workers ----------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        ours, theirs = get_context("fork").Pipe()
        others = [w.conn for w in self.workers.values()]
        process = get_context("fork").Process(
            target=_worker_main,
            args=(
                slot,
                theirs,
                self.sock,
                self.holder,
                self.settings,
                self.table,
                self.shadow,
                self.shadow_rate,
            ),
            kwargs={"others": [*others, ours]},
            name=f"ci-ml-worker-{slot + 1}",
            daemon=False,
        )
        process.start()
        theirs.close()
        worker = Worker(slot, process, ours, time.monotonic())
        self.workers[slot] = worker
        log.info("worker %d started (pid %s)", slot + 1, process.pid)
        if self.committed is not None:  # a restart: serve what the others serve, then answer
            worker.boot_gen = next(self._ids)
            self._send(worker, "prepare", worker.boot_gen, self.committed.version)
        elif self.begun:  # a restart with nothing to serve: say why, and answer
            worker.ready = True
            self._send(worker, "problem", self.problem)

    def _exited(self, worker: Worker) -> None:
        """A worker exited: forget it, fail what waited for it, restart it after a pause."""
        del self.workers[worker.slot]
        worker.conn.close()
        self.table.clear(worker.slot)
        code = worker.process.exitcode
        if self.stopping or self.fatal is not None:
            return
        lived = time.monotonic() - worker.started
        self.quick_exits[worker.slot] = self.quick_exits[worker.slot] + 1 if lived < 5 else 0
        pause = min(30.0, 0.5 * 2 ** self.quick_exits[worker.slot]) if lived < 5 else 0.1
        log.warning(
            "worker %d (pid %s) exited with code %s; restarting it in %.1f s",
            worker.slot + 1,
            worker.process.pid,
            code,
            pause,
        )
        self.restart_at[worker.slot] = time.monotonic() + pause
        if self.cycle is not None and worker.slot in self.cycle.slots:
            self.cycle.slots.discard(worker.slot)
            self.cycle.waiting.discard(worker.slot)
            if self.cycle.phase == "prepare":
                why = f"worker {worker.slot + 1} exited (code {code}) while loading it"
                self.cycle.refused.append((worker.slot, why, "failed"))
            self._advance()
        for gather in list(self.gathers.values()):
            gather.waiting.discard(worker.slot)
        self._finish_gathers()

    def _stop_workers(self) -> None:
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: uvicorn finishes what it answers
        deadline = time.monotonic() + STOP_SECONDS
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker %d did not stop in time; killing it", worker.slot + 1)
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers.clear()

    # -- the loop -------------------------------------------------------------------------

    def _step(self) -> None:
        conns = {w.conn: w for w in self.workers.values()}
        sentinels = [w.process.sentinel for w in self.workers.values()]
        for ready in wait([*conns, *sentinels], timeout=TICK):
            worker = conns.get(ready)  # type: ignore[call-overload]
            if worker is None:
                continue
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                continue  # it exited: its sentinel says so
            self._handle(worker, message)
        for worker in list(self.workers.values()):
            if not worker.process.is_alive():
                self._exited(worker)
        self._timers()

    def _timers(self) -> None:
        now = time.monotonic()
        if self.cycle is not None and now > self.cycle.deadline:
            late = ", ".join(str(s + 1) for s in sorted(self.cycle.waiting))
            why = f"worker(s) {late} did not answer within {RELOAD_SECONDS:g} s"
            self.cycle.refused.append((min(self.cycle.waiting), why, "failed"))
            self.cycle.waiting.clear()
            self._advance()
        for gather in self.gathers.values():
            if now > gather.deadline:
                gather.waiting.clear()
        self._finish_gathers()
        if self.cycle is None and not self._booting():
            for slot, when in list(self.restart_at.items()):
                if now >= when:
                    del self.restart_at[slot]
                    self._spawn(slot)
        if self.next_poll is not None and now >= self.next_poll:
            self.next_poll = now + (self.settings.poll_seconds or 0)
            if self.cycle is None and not self._booting():
                self._begin(polled=True)

    def _handle(self, worker: Worker, message: tuple[Any, ...]) -> None:
        kind, *args = message
        if kind == "reload":
            self.requests.append((worker.slot, args[0]))
            if self.cycle is None and not self._booting():
                self._begin(polled=False)
        elif kind == "staged" and args[0] == worker.boot_gen:
            self._booted(worker, args[1])
        elif kind == "staged" and self.cycle is not None and args[0] == self.cycle.gen:
            self.cycle.waiting.discard(worker.slot)
            if args[1] is not None:
                self.cycle.refused.append((worker.slot, args[1], args[2]))
            self._advance()
        elif kind == "swapped" and args[0] == worker.boot_gen:
            worker.ready, worker.boot_gen = True, None
            self._after_cycle()
        elif kind == "swapped" and self.cycle is not None and args[0] == self.cycle.gen:
            worker.ready = True
            self.cycle.waiting.discard(worker.slot)
            self._advance()
        elif kind == "gather":
            self._gather(worker, args[0])
        elif kind == "state" and args[0] in self.gathers:
            self.gathers[args[0]].states.append(args[1])
            self.gathers[args[0]].waiting.discard(worker.slot)
            self._finish_gathers()
        elif kind == "fatal":
            self.fatal = _error(args[0], args[1])
            self.stopping = True

    def _booted(self, worker: Worker, problem: str | None) -> None:
        if problem is None:
            self._send(worker, "commit", worker.boot_gen)
            return
        log.warning("worker %d cannot serve what the others serve: %s", worker.slot + 1, problem)
        worker.ready, worker.boot_gen = True, None
        self._send(worker, "problem", problem)
        self._after_cycle()


def _error(text: str, code: int) -> CiMlError:
    error = BadInputError(text) if code == 2 else CiMlError(text)
    error.exit_code = code
    return error


def _worker_main(
    slot: int,
    conn: Connection,
    sock: socket.socket,
    holder: ModelHolder,
    settings: ServeSettings,
    table: WorkerTable,
    shadow: str | None,
    shadow_rate: SampleRate | None,
    others: list[Connection],
) -> None:
    """One worker: the service, its link to the supervisor, uvicorn once it serves."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the supervisor's handlers are not ours
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for other in others:
        other.close()
    if settings.request_log is not None:  # its own files: requests-w1-000001.jsonl, ...
        own = dataclasses.replace(settings.request_log, prefix=f"requests-w{slot + 1}-")
        settings = dataclasses.replace(settings, request_log=own)
    try:
        if shadow is not None:
            holder.load_shadow(shadow)
        service = Service(holder, settings, freeze_heap=True, shadow_rate=shadow_rate)
    except CiMlError as err:
        conn.send(("fatal", str(err), err.exit_code))
        raise SystemExit(err.exit_code) from None
    link = WorkerLink(conn, slot, table, service)
    service.link = link
    link.start()
    link.ready.wait()
    server = _server(asgi_app(service), settings)
    server.run(sockets=[sock])
    raise SystemExit(0 if server.started else 1)


def serve_workers(
    holder: ModelHolder, settings: ServeSettings, workers: int, shadow: str | None = None
) -> None:
    """Run ``workers`` worker processes on one port until SIGTERM or SIGINT (``shadow``: the
    version each worker loads and shadows its own sample with)."""
    sock = bind(settings.host, settings.port)
    log.info(
        "listening on %s with %d workers (model registry: %s)",
        base_url(sock),
        workers,
        holder.registry.url,
    )
    with sock:
        Supervisor(holder, settings, workers, sock, shadow).run()
