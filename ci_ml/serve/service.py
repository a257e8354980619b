"""The model service: the served model and everything around it (metrics, request log, threads,
poller), and its settings. :mod:`ci_ml.serve.routes` answers HTTP with it and
:mod:`ci_ml.serve.server` runs it; ``ci-ml serve`` is the model web service (FastAPI on uvicorn)
for the registry's production model.

    POST /predict        {"records": [{column: value}, ...]} -> one prediction per row
    GET  /health         readiness: 200 when a model is served, else 503 with the reason
    GET  /health/live    liveness: always 200 while the process answers
    GET  /version        the served version, digest and when it was loaded
    GET  /metrics        Prometheus text format (see ci_ml.serve.prometheus)
    POST /admin/reload   bearer token; serve the new production version (404 without a token)
    POST /admin/shadow   bearer token; {"sample": 0.05}: the share of requests the shadow scores

With a shadow version (``ci-ml serve --shadow VERSION``), a sample of the answered requests is
also predicted by it off the request path (see ci_ml.serve.shadow).
    GET  /docs           the OpenAPI documentation

Predictions run on a few threads, each limited to one OpenMP/BLAS thread, that merge the
requests waiting together into one model call (see ci_ml.serve.batch). See ``docs/serving.md``
for the reload guarantees, the limits and the security notes.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.errors import BadInputError, CiMlError
from ci_ml.serve.batch import Answers, Batcher
from ci_ml.serve.model import LoadedModel, ModelRefused
from ci_ml.serve.prometheus import Metrics, MetricsState, render
from ci_ml.serve.reload import ModelHolder, Poller, ReloadResult
from ci_ml.serve.requestlog import RequestLog
from ci_ml.serve.shadow import BUDGET, SampleRate, ShadowScorer

if TYPE_CHECKING:
    from ci_ml.serve.cluster import WorkerLink

log = logging.getLogger("ci_ml.serve")

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class RequestLogSettings:
    """Where and how much of the predicted rows to log (see ci_ml.serve.requestlog)."""

    directory: Path
    sample: float = 0.1
    max_bytes: int = 50_000_000
    max_files: int = 5
    prefix: str = "requests-"  # each worker's own: requests-w1-, ...


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
    model_name: str = "model"  # the Open Inference Protocol's name of the served model
    shadow_sample: float = 0.2  # the share of requests the shadow model (if any) scores
    shadow_queue: int = 1000  # requests waiting for the shadow; more are dropped and counted
    shadow_budget: float = BUDGET  # the share of the time the shadow's model calls may take


class Service:
    """The served model and everything around it: metrics, request log, threads, poller.

    With ``freeze_heap`` (the service's own process, not a test's), the objects alive after a
    model is loaded are frozen out of the garbage collector's sight (see :func:`freeze_heap`).
    A worker of ``ci-ml serve --workers N`` has a ``link`` to its supervisor, which then does
    the loading, reloading and polling for every worker (see :mod:`ci_ml.serve.workers`).
    """

    def __init__(
        self,
        holder: ModelHolder,
        settings: ServeSettings,
        freeze_heap: bool = False,
        shadow_rate: SampleRate | None = None,
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.freeze_heap = freeze_heap
        self.metrics = Metrics(ROUTES)
        self.request_log = _request_log(settings.request_log)
        self.batcher = Batcher(settings.threads, settings.max_rows, self.metrics.count_call)
        self.shadow = _shadow(holder, self.request_log, settings, shadow_rate)
        self._poller: Poller | None = None
        self.link: WorkerLink | None = None

    def start(self) -> None:
        """Load the production model (if any), start predicting, logging and polling."""
        self.batcher.start()
        if self.shadow is not None:
            self.shadow.start()
        if self.link is not None:
            self.link.answer()  # the supervisor loads the model
            return
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
        if self.shadow is not None:
            self.shadow.close()
        if self.request_log is not None:
            self.request_log.close()
        self.batcher.close()

    def reload(self) -> ReloadResult:
        """Reload from the registry, counting the outcome."""
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
            self.swapped()
        return result

    def swapped(self) -> None:
        """After a new model is swapped in."""
        if self.freeze_heap:
            freeze_heap()

    def metrics_state(self) -> MetricsState:
        """This process's metrics."""
        return self.metrics.state(self.holder.current, self.request_log, self.shadow)

    def metrics_text(self) -> str:
        """``GET /metrics``: this process's, or every worker's summed by the supervisor."""
        if self.link is not None:
            return render(self.link.metrics())
        return render(self.metrics_state())

    def after_answer(self, model: LoadedModel, rows: list[Any], answers: Answers, rid: str) -> None:
        """What follows an answer (never blocks): the shadow takes a sample of the requests
        (and logs their rows with both answers), the request log a sample of the others."""
        if self.request_log is None:
            return
        if self.shadow is not None and self.shadow.offer(model, rows, answers, rid):
            return
        self.request_log.offer(model.version, rows, answers, rid)

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


def _shadow(
    holder: ModelHolder,
    request_log: RequestLog | None,
    settings: ServeSettings,
    rate: SampleRate | None,
) -> ShadowScorer | None:
    """The shadow scorer of the holder's shadow model, which logs beside the request log
    (``rate``: a sample shared with other workers; else its own, from the settings)."""
    if holder.shadow is None:
        return None
    if request_log is None:
        raise BadInputError(
            "shadow scoring writes both models' answers to the request log; give "
            "--log-requests DIR with --shadow"
        )
    return ShadowScorer(
        holder.shadow,
        request_log,
        sample=settings.shadow_sample,
        max_rows=settings.max_rows,
        registry_url=holder.registry.url,
        trusted=holder.trusted,
        queue_requests=settings.shadow_queue,
        budget=settings.shadow_budget,
        rate=rate,
    )


def _request_log(settings: RequestLogSettings | None) -> RequestLog | None:
    """The request log, or None when logging is off; BadInputError if DIR cannot be used."""
    if settings is None:
        return None

    try:
        return RequestLog(
            settings.directory,
            sample=settings.sample,
            max_bytes=settings.max_bytes,
            max_files=settings.max_files,
            prefix=settings.prefix,
        )
    except OSError as err:
        raise BadInputError(
            f"cannot log requests in {settings.directory} ({err.strerror or err}); "
            "give a writable directory with --log-requests"
        ) from None


ROUTES = (
    "/predict",
    "/health",
    "/health/live",
    "/version",
    "/metrics",
    "/admin/reload",
    "/admin/shadow",
)
