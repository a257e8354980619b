"""The shadow's own process: it loads the shadow version, predicts what it is sent, logs it.

:class:`ci_ml.serve.shadow.ShadowScorer` starts this process with :func:`start` (a fresh
interpreter, not a fork of a process with threads; nor :mod:`multiprocessing`'s spawn, whose
resource-tracker process nobody here needs) and talks to it over a socket pair, so the
shadow's work — checking the rows against its schema, the model call, encoding the
request-log lines — holds this process's GIL, never that of the process that answers
requests. Its CPU priority is the lowest: Linux's idle scheduling class (``SCHED_IDLE``: it
runs on a core only when no other thread wants that core, and any that wakes takes it back at
once), and niceness 19 where that class is missing. On a busy machine it gets what the answers
leave; on one busy all the time it falls behind, and the scorer drops and counts. It loads
the version at the usual priority, since the service's start waits for that, and then lowers
every thread it has (the request log's writer among them).

Every message both ways is JSON (:func:`encode`), never pickle. The conversation, after the
settings (:class:`SidecarSettings`, the first message), is one batch at a time: the process
never holds more than one, so the scorer's bounded queue stays the bound (the scorer makes
the pauses between batches):

    child  -> ["ready", problem]           loaded (problem null), or why it cannot score
    parent -> batch (see :func:`encode`)   requests to score: [[request_id, version, rows,
                                           answers], ...], at most ``max_rows`` rows
    child  -> ["scored", rows, problem, seconds, log_written, log_dropped]
                                           problem: None, or why the batch was not predicted
    parent -> b"stop"                      finish the log and exit

The process also exits when the pipe closes (its parent died). It ignores SIGINT and SIGTERM:
a Ctrl-C or a ``kill`` of the process group reaches the parent, which stops it in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ci_ml.registry import open_registry
from ci_ml.serve.input import to_columns
from ci_ml.serve.model import limit_threads, load_version
from ci_ml.serve.requestlog import RequestLog

NICENESS = 19
STOP = b"stop"
_JSON, _PLAIN_JSON = b"j", b"s"  # orjson, or Python's json


@dataclass(frozen=True)
class SidecarSettings:
    """What the shadow's process needs: where the version is, and where to log."""

    registry_url: str
    version: str
    trusted: tuple[str, ...]
    log_directory: Path
    log_prefix: str
    log_max_bytes: int
    log_max_files: int


def encode(message: Any) -> bytes:
    """A message as bytes: JSON by orjson (about 3x faster than Python's json), or by Python's
    json for what orjson refuses (an integer beyond 64 bits, which Python's json read). Never
    pickle: the rows are what clients sent."""
    try:
        import orjson

        return _JSON + orjson.dumps(message)
    except (ImportError, TypeError):
        return _PLAIN_JSON + json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> Any:
    """The message :func:`encode` made."""
    if data[:1] == _JSON:
        import orjson

        return orjson.loads(data[1:])
    return json.loads(data[1:])


def send(conn: Connection, message: Any) -> None:
    conn.send_bytes(encode(message))


def receive(conn: Connection) -> Any:
    return decode(conn.recv_bytes())


def start(settings: SidecarSettings) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start the shadow's process; it and the connection to it."""
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    # the interpreter's own path, as multiprocessing's spawn gives it, then this module
    code = f"import sys; sys.path[:] = {sys.path!r}; from {__name__} import main; main({fd})"
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=[fd], stdin=subprocess.DEVNULL
        )
    conn = Connection(ours.detach())
    send(conn, {**asdict(settings), "log_directory": str(settings.log_directory)})
    return process, conn


def main(fd: int) -> None:
    """The process: load, then score batches until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        given = receive(conn)
    except (EOFError, OSError):
        return
    try:
        settings = SidecarSettings(
            **{
                **given,
                "trusted": tuple(given["trusted"]),
                "log_directory": Path(given["log_directory"]),
            }
        )
        scorer = _Scorer(settings)
    except Exception as err:  # any reason it cannot score goes to the parent, as one line
        send(conn, ["ready", f"{type(err).__name__}: {err}".splitlines()[0]])
        return
    send(conn, ["ready", None])
    # loaded at the usual priority (the service's start waits for it), scoring at the lowest
    _lower_priority()
    try:
        while (data := conn.recv_bytes()) != STOP:
            rows, problem, seconds = scorer.score(decode(data))
            log = scorer.request_log
            send(conn, ["scored", rows, problem, seconds, log.written, log.dropped])
    except (EOFError, OSError):  # the parent is gone
        pass
    finally:
        scorer.request_log.close()


class _Scorer:
    """The loaded shadow version and the request log it writes both answers to."""

    def __init__(self, settings: SidecarSettings) -> None:
        limit_threads()
        registry = open_registry(settings.registry_url)
        self.model = load_version(registry, registry.get(settings.version), settings.trusted)
        self._names = set(self.model.schema.names)
        self.request_log = RequestLog(
            settings.log_directory,
            sample=1.0,
            max_bytes=settings.log_max_bytes,
            max_files=settings.log_max_files,
            prefix=settings.log_prefix,
        )

    def _own(self, rows: list[Any]) -> list[Any]:
        """The rows as the shadow takes them. They hold production's columns (its checks
        passed), and a shadow may use fewer (a candidate that dropped a feature): only its
        own are kept. A column it needs that production's rows lack is a ValueError naming
        it (the rows count as failed)."""
        names = self.model.schema.names
        if not rows or rows[0].keys() == self._names:  # a request's rows share their columns
            return rows
        missing = [name for name in names if name not in rows[0]]
        if missing:
            raise ValueError(
                f"it takes column(s) {', '.join(repr(m) for m in missing)} that production's "
                "requests do not carry"
            )
        return [{name: row[name] for name in names} for row in rows]

    def score(self, batch: list[list[Any]]) -> tuple[int, str | None, float]:
        """Predict and log the batch: (rows, why it failed or None, seconds of the call)."""
        rows = sum(len(item[2]) for item in batch)
        start = time.perf_counter()
        try:
            parts = [to_columns(self._own(item[2]), self.model.schema) for item in batch]
            answers = self.model.predict_columns(parts, rows)
        except Exception as err:  # the shadow's problem, never the request's; the parent warns
            return rows, str(err) or type(err).__name__, time.perf_counter() - start
        seconds = time.perf_counter() - start
        per_row_ms = seconds * 1000 / rows
        at = 0
        for request_id, version, mine, theirs in batch:
            shadow = [
                {"model_version": self.model.version, "prediction": a, "latency_ms": per_row_ms}
                for a in answers[at : at + len(mine)]
            ]
            at += len(mine)
            self.request_log.log_all(version, mine, theirs, request_id, shadow)
        return rows, None, seconds


def _lower_priority() -> None:
    """The lowest CPU priority for every thread of the process (Linux sets both per thread,
    and a thread inherits them only when it starts): the idle scheduling class where there is
    one (it runs on a core only when nothing else would), and niceness 19 besides; best effort
    where neither is."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the calling thread, or the process where that is the same
        threads = [0]
    for tid in threads:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, tid, NICENESS)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
