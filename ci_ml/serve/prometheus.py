"""The service's metrics in the Prometheus text exposition format (version 0.0.4).

    ci_ml_http_requests_total{route,method,status}        counter
    ci_ml_http_request_errors_total{route,status}         counter   responses with status >= 400
    ci_ml_http_request_duration_seconds{route}            histogram
    ci_ml_predicted_rows_total                            counter
    ci_ml_model_calls_total                               counter   (requests merge into calls)
    ci_ml_model_reloads_total{outcome}                    counter   swapped/unchanged/refused/failed
    ci_ml_model_loaded                                    gauge     1 when a model is served
    ci_ml_model_info{version,digest}                      gauge     1 for the served version
    ci_ml_model_loaded_timestamp_seconds                  gauge
    ci_ml_request_log_rows_total{result}                  counter   written / dropped (when logging)
    ci_ml_shadow_info{version,digest}                     gauge     1 for the shadow version
    ci_ml_shadow_rows_total{result}                       counter   scored / dropped / failed
    ci_ml_shadow_sample                                   gauge     the share of requests shadowed
    ci_ml_shadow_pending_requests                         gauge     queued or being scored
    ci_ml_shadow_call_duration_seconds                    histogram the shadow's model calls
    ci_ml_workers                                         gauge     with --workers N > 1

With several workers (``ci-ml serve --workers N``) every value is the sum over the workers
(:func:`merge`): counters and histograms add up, ``model_loaded`` is 1 when every worker serves
a model, ``model_info`` counts the workers serving each version, and ``shadow_sample`` (one
value the workers share) is the largest of theirs.

Routes are the service's own paths; anything else is counted as ``other``, so a scan of random
URLs cannot blow up the number of series.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ci_ml.serve.model import LoadedModel
    from ci_ml.serve.requestlog import RequestLog
    from ci_ml.serve.shadow import ShadowScorer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "ci_ml_"
OTHER_ROUTE = "other"


@dataclass
class ShadowState:
    """The shadow's counts, as :class:`MetricsState` holds them (summed over workers)."""

    models: Counter[tuple[str, str]]
    counts: Counter[str]
    bounds: tuple[float, ...]
    buckets: list[int]
    seconds: float
    sample: float = 0.0
    pending: int = 0


@dataclass
class MetricsState:
    """Every metric's values at one moment, picklable: one process's, or the sum over the
    workers of ``ci-ml serve --workers N`` (see :func:`merge`)."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    calls: int = 0
    reloads: Counter[str] = field(default_factory=Counter)
    workers: int = 1  # processes summed
    loaded: int = 0  # of them, those serving a model
    models: Counter[tuple[str, str]] = field(default_factory=Counter)  # (version, digest)
    loaded_at: float | None = None  # the latest load
    request_log: Counter[str] | None = None  # written / dropped
    shadow: ShadowState | None = None


class Metrics:
    """Thread-safe counters and latency histograms, rendered on demand."""

    def __init__(self, routes: Iterable[str]) -> None:
        self.routes = frozenset(routes)
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._rows = 0
        self._calls = 0
        self._reloads: Counter[str] = Counter()

    def route(self, path: str) -> str:
        """The route label for a request path."""
        return path if path in self.routes else OTHER_ROUTE

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request and its latency."""
        route = self.route(path)
        with self._lock:
            self._requests[(route, method, str(status))] += 1
            if status >= 400:
                self._errors[(route, str(status))] += 1
            counts = self._buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[route] = self._sums.get(route, 0.0) + seconds

    def count_call(self, rows: int) -> None:
        """Count one model call that predicted ``rows`` rows."""
        with self._lock:
            self._calls += 1
            self._rows += rows

    def count_reload(self, outcome: str) -> None:
        with self._lock:
            self._reloads[outcome] += 1

    def state(
        self,
        model: LoadedModel | None,
        request_log: RequestLog | None = None,
        shadow: ShadowScorer | None = None,
    ) -> MetricsState:
        """A copy of every value now, with the served model's, the log's and the shadow's."""
        with self._lock:
            found = MetricsState(
                requests=Counter(self._requests),
                errors=Counter(self._errors),
                buckets={k: list(v) for k, v in self._buckets.items()},
                sums=dict(self._sums),
                rows=self._rows,
                calls=self._calls,
                reloads=Counter(self._reloads),
            )
        if model is not None:
            found.loaded = 1
            found.models[(model.version, model.digest)] = 1
            found.loaded_at = _timestamp(model.loaded_at)
        if request_log is not None:
            found.request_log = Counter(written=request_log.written, dropped=request_log.dropped)
        if shadow is not None:
            with shadow.lock:
                found.request_log = (found.request_log or Counter()) + Counter(shadow.log_counts)
                found.shadow = ShadowState(
                    Counter({(shadow.model.version, shadow.model.digest): 1}),
                    Counter(shadow.counts),
                    tuple(shadow.bounds),
                    list(shadow.buckets),
                    shadow.seconds,
                    shadow.sample,
                    shadow.pending,
                )
        return found

    def render(
        self,
        model: LoadedModel | None,
        request_log: RequestLog | None = None,
        shadow: ShadowScorer | None = None,
    ) -> str:
        """The exposition text of every metric."""
        return render(self.state(model, request_log, shadow))


def merge(states: Sequence[MetricsState]) -> MetricsState:
    """The sum of several processes' metrics: counters and histograms add up; the model gauges
    are counted (``loaded``: workers serving a model, ``models``: workers per version) and the
    load time is the latest."""
    total = MetricsState(workers=0)
    for one in states:
        total.requests.update(one.requests)
        total.errors.update(one.errors)
        for route, counts in one.buckets.items():
            mine = total.buckets.setdefault(route, [0] * len(counts))
            total.buckets[route] = [a + b for a, b in zip(mine, counts, strict=True)]
            total.sums[route] = total.sums.get(route, 0.0) + one.sums[route]
        total.rows += one.rows
        total.calls += one.calls
        total.reloads.update(one.reloads)
        total.workers += one.workers
        total.loaded += one.loaded
        total.models.update(one.models)
        if one.loaded_at is not None:
            total.loaded_at = max(total.loaded_at or 0.0, one.loaded_at)
        if one.request_log is not None:
            total.request_log = (total.request_log or Counter()) + one.request_log
        if one.shadow is not None:
            total.shadow = _merge_shadow(total.shadow, one.shadow)
    return total


def _merge_shadow(total: ShadowState | None, one: ShadowState) -> ShadowState:
    if total is None:
        return ShadowState(
            Counter(one.models),
            Counter(one.counts),
            one.bounds,
            list(one.buckets),
            one.seconds,
            one.sample,
            one.pending,
        )
    total.sample = max(total.sample, one.sample)
    total.pending += one.pending
    total.models.update(one.models)
    total.counts.update(one.counts)
    total.buckets = [a + b for a, b in zip(total.buckets, one.buckets, strict=True)]
    total.seconds += one.seconds
    return total


def render(state: MetricsState) -> str:
    """The exposition text of ``state``; the workers' count is shown when there are several
    (one process renders as it always has)."""
    lines = [
        *_request_lines(state),
        *_family("predicted_rows_total", "counter", "Rows predicted.", [("", state.rows)]),
        *_family(
            "model_calls_total",
            "counter",
            "Calls of the model; concurrent requests are merged into one call.",
            [("", state.calls)],
        ),
        *_family(
            "model_reloads_total",
            "counter",
            "Reload attempts by outcome.",
            [(_labels(outcome=k), v) for k, v in sorted(state.reloads.items())],
        ),
        *_model_lines(state),
    ]
    if state.request_log is not None:
        counts = [(k, state.request_log[k]) for k in ("written", "dropped")]
        lines += _family(
            "request_log_rows_total",
            "counter",
            "Sampled rows written to the request log, or dropped (queue full, disk error).",
            [(_labels(result=k), v) for k, v in counts],
        )
    if state.shadow is not None:
        lines += _shadow_lines(state.shadow)
    return "\n".join(lines) + "\n"


def _request_lines(state: MetricsState) -> list[str]:
    requests = [
        (_labels(route=r, method=m, status=s), n) for (r, m, s), n in sorted(state.requests.items())
    ]
    errors = [(_labels(route=r, status=s), n) for (r, s), n in sorted(state.errors.items())]
    return [
        *_family("http_requests_total", "counter", "HTTP requests answered.", requests),
        *_family("http_request_errors_total", "counter", "Responses with status >= 400.", errors),
        *_histogram_lines(state),
    ]


def _histogram_lines(state: MetricsState) -> list[str]:
    name = PREFIX + "http_request_duration_seconds"
    lines = [
        f"# HELP {name} Time from request start to the end of the response.",
        f"# TYPE {name} histogram",
    ]
    for route in sorted(state.buckets):
        cumulative = 0
        for bound, count in zip((*BUCKETS, math.inf), state.buckets[route], strict=True):
            cumulative += count
            labels = _labels(route=route, le=_number(bound))
            lines.append(f"{name}_bucket{labels} {cumulative}")
        lines.append(f"{name}_sum{_labels(route=route)} {_number(state.sums[route])}")
        lines.append(f"{name}_count{_labels(route=route)} {cumulative}")
    return lines


def _shadow_lines(shadow: ShadowState) -> list[str]:
    info = [(_labels(version=v, digest=d), n) for (v, d), n in sorted(shadow.models.items())]
    name = PREFIX + "shadow_call_duration_seconds"
    lines = [
        *_family("shadow_info", "gauge", "The shadow model version.", info),
        *_family(
            "shadow_rows_total",
            "counter",
            "Rows the shadow scored, dropped (its queue was full) or failed to predict.",
            [(_labels(result=k), v) for k, v in shadow.counts.items()],
        ),
        *_family(
            "shadow_sample",
            "gauge",
            "The share of answered requests the shadow scores (0: paused).",
            [("", shadow.sample)],
        ),
        *_family(
            "shadow_pending_requests",
            "gauge",
            "Sampled requests queued for the shadow or being scored by it.",
            [("", shadow.pending)],
        ),
        f"# HELP {name} Time of one call of the shadow model (merged requests).",
        f"# TYPE {name} histogram",
    ]
    cumulative = 0
    for bound, count in zip((*shadow.bounds, math.inf), shadow.buckets, strict=True):
        cumulative += count
        lines.append(f"{name}_bucket{_labels(le=_number(bound))} {cumulative}")
    lines += [f"{name}_sum {_number(shadow.seconds)}", f"{name}_count {cumulative}"]
    return lines


def _model_lines(state: MetricsState) -> list[str]:
    """``model_loaded`` is 1 when every worker serves a model; ``model_info`` has one series
    per version served, valued the number of workers serving it (1 with one process)."""
    info = [(_labels(version=v, digest=d), n) for (v, d), n in sorted(state.models.items())]
    loaded_at = [] if state.loaded_at is None else [("", state.loaded_at)]
    every = int(state.workers > 0 and state.loaded == state.workers)
    lines = [
        *_family("model_loaded", "gauge", "1 when a model is served, else 0.", [("", every)]),
        *_family("model_info", "gauge", "The model version being served.", info),
        *_family("model_loaded_timestamp_seconds", "gauge", "When it was loaded.", loaded_at),
    ]
    if state.workers > 1:
        lines += _family("workers", "gauge", "Worker processes answering.", [("", state.workers)])
    return lines


def _family(
    name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]
) -> list[str]:
    full = PREFIX + name
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    lines += [f"{full}{labels} {_number(value)}" for labels, value in samples]
    return lines


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
