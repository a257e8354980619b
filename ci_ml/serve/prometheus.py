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
    ci_ml_shadow_call_duration_seconds                    histogram the shadow's model calls

Routes are the service's own paths; anything else is counted as ``other``, so a scan of random
URLs cannot blow up the number of series.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
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

    def render(
        self,
        model: LoadedModel | None,
        request_log: RequestLog | None = None,
        shadow: ShadowScorer | None = None,
    ) -> str:
        """The exposition text of every metric."""
        with self._lock:
            lines = [
                *self._request_lines(),
                *_family("predicted_rows_total", "counter", "Rows predicted.", [("", self._rows)]),
                *_family(
                    "model_calls_total",
                    "counter",
                    "Calls of the model; concurrent requests are merged into one call.",
                    [("", self._calls)],
                ),
                *_family(
                    "model_reloads_total",
                    "counter",
                    "Reload attempts by outcome.",
                    [(_labels(outcome=k), v) for k, v in sorted(self._reloads.items())],
                ),
            ]
        lines += _model_lines(model)
        if request_log is not None:
            counts = [("written", request_log.written), ("dropped", request_log.dropped)]
            lines += _family(
                "request_log_rows_total",
                "counter",
                "Sampled rows written to the request log, or dropped (queue full, disk error).",
                [(_labels(result=k), v) for k, v in counts],
            )
        if shadow is not None:
            lines += _shadow_lines(shadow)
        return "\n".join(lines) + "\n"

    def _request_lines(self) -> list[str]:
        requests = [
            (_labels(route=r, method=m, status=s), n)
            for (r, m, s), n in sorted(self._requests.items())
        ]
        errors = [(_labels(route=r, status=s), n) for (r, s), n in sorted(self._errors.items())]
        return [
            *_family("http_requests_total", "counter", "HTTP requests answered.", requests),
            *_family(
                "http_request_errors_total", "counter", "Responses with status >= 400.", errors
            ),
            *self._histogram_lines(),
        ]

    def _histogram_lines(self) -> list[str]:
        name = PREFIX + "http_request_duration_seconds"
        lines = [
            f"# HELP {name} Time from request start to the end of the response.",
            f"# TYPE {name} histogram",
        ]
        for route in sorted(self._buckets):
            cumulative = 0
            for bound, count in zip((*BUCKETS, math.inf), self._buckets[route], strict=True):
                cumulative += count
                labels = _labels(route=route, le=_number(bound))
                lines.append(f"{name}_bucket{labels} {cumulative}")
            lines.append(f"{name}_sum{_labels(route=route)} {_number(self._sums[route])}")
            lines.append(f"{name}_count{_labels(route=route)} {cumulative}")
        return lines


def _shadow_lines(shadow: ShadowScorer) -> list[str]:
    with shadow.lock:
        counts, buckets, seconds = dict(shadow.counts), list(shadow.buckets), shadow.seconds
    info = [(_labels(version=shadow.model.version, digest=shadow.model.digest), 1)]
    name = PREFIX + "shadow_call_duration_seconds"
    lines = [
        *_family("shadow_info", "gauge", "The shadow model version.", info),
        *_family(
            "shadow_rows_total",
            "counter",
            "Rows the shadow scored, dropped (its queue was full) or failed to predict.",
            [(_labels(result=k), v) for k, v in counts.items()],
        ),
        f"# HELP {name} Time of one call of the shadow model (merged requests).",
        f"# TYPE {name} histogram",
    ]
    cumulative = 0
    for bound, count in zip((*shadow.bounds, math.inf), buckets, strict=True):
        cumulative += count
        lines.append(f"{name}_bucket{_labels(le=_number(bound))} {cumulative}")
    lines += [f"{name}_sum {_number(seconds)}", f"{name}_count {cumulative}"]
    return lines


def _model_lines(model: LoadedModel | None) -> list[str]:
    info = [] if model is None else [(_labels(version=model.version, digest=model.digest), 1)]
    loaded_at = [] if model is None else [("", _timestamp(model.loaded_at))]
    return [
        *_family(
            "model_loaded", "gauge", "1 when a model is served, else 0.", [("", int(bool(info)))]
        ),
        *_family("model_info", "gauge", "The model version being served.", info),
        *_family("model_loaded_timestamp_seconds", "gauge", "When it was loaded.", loaded_at),
    ]


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
