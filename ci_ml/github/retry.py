"""When to try a GitHub request again, how long to wait first, and when to stop.

A request may take a time budget (:attr:`RetryPolicy.budget`, 10 minutes by default), not
a fixed number of attempts: with GitHub failing one call in five, four failures in a row
happen, and a budget rides them out. The waits follow GitHub's "Rate limits for the REST
API" and "Best practices for using the REST API":

* 5xx or no answer: ``retry-after`` if given, else exponential backoff with jitter;
* 403/429 with ``retry-after`` (a secondary rate limit): wait that long;
* 403/429 with ``x-ratelimit-remaining: 0`` (the primary limit is spent): wait until
  ``x-ratelimit-reset``, plus one second because the reset is given in whole seconds;
* a secondary rate limit without either header (a 403 whose message says so, or any
  429): at least a minute, doubling while it goes on, as GitHub asks;
* any other 4xx is final.

A wait that would end past the budget is not slept: the request fails at once. Every wait
is at least a second, so no answer makes the client hammer GitHub.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ci_ml.errors import BadInputError

RETRY_STATUSES = frozenset({500, 502, 503, 504})
SHORTEST_WAIT = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries (all times in seconds).

    ``budget`` bounds one request, its attempts and waits together; ``backoff`` is the
    first exponential wait, doubled after each failure up to ``max_backoff``; ``jitter``
    stretches each backoff by up to that fraction at random, so jobs that failed together
    do not come back together; ``secondary_wait`` is the least wait after a secondary rate
    limit that names no time. ``sleep``, ``clock`` and ``random`` are injectable so that
    tests wait no real time and get exact waits.
    """

    budget: float = 600.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.5
    secondary_wait: float = 60.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if not (self.budget >= 0 and self.backoff > 0 and self.max_backoff >= self.backoff):
            raise BadInputError(
                f"RetryPolicy(budget={self.budget}, backoff={self.backoff}, "
                f"max_backoff={self.max_backoff}) is not usable; give a budget >= 0 and "
                "0 < backoff <= max_backoff."
            )

    def backoff_for(self, failures: int) -> float:
        """The exponential wait after ``failures`` failed attempts, with jitter."""
        base = min(self.backoff * 2 ** (failures - 1), self.max_backoff)
        return self._stretch(base)

    def secondary_for(self, times: int) -> float:
        """The wait after the ``times``-th secondary rate limit that named no time."""
        return self._stretch(self.secondary_wait * 2 ** (times - 1))

    def _stretch(self, seconds: float) -> float:
        return float(seconds * (1 + self.jitter * self.random()))


class Retry:
    """The retry state of one request: its failures, its waits, and what is left of its budget."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = policy.clock()
        self.failures = 0
        self.waited = 0.0
        self._secondary = 0

    def spent(self) -> float:
        """Seconds used so far; at least the waits, even if a sleep returned early."""
        return max(self.policy.clock() - self.started, self.waited)

    def left(self) -> float:
        return max(self.policy.budget - self.spent(), 0.0)

    def fits(self, delay: float) -> bool:
        """Whether waiting ``delay`` still ends within the budget."""
        return delay <= self.left()

    def timeouts(self) -> tuple[float, float]:
        """Connect and read timeouts for the next attempt, cut to what is left."""
        room = max(self.left(), SHORTEST_WAIT)
        return min(self.policy.connect_timeout, room), min(self.policy.read_timeout, room)

    def after_error(self) -> float:
        """The wait after an attempt that got no answer (connection error, timeout)."""
        self.failures += 1
        return max(self.policy.backoff_for(self.failures), SHORTEST_WAIT)

    def after_answer(self, status: int, headers: Mapping[str, str], message: str) -> float | None:
        """The wait after a failed answer, or None if the failure is final.

        ``headers`` must look names up case-insensitively (as ``requests`` does).
        """
        self.failures += 1
        delay = self._delay(status, headers, message)
        return None if delay is None else max(delay, SHORTEST_WAIT)

    def wait(self, delay: float) -> None:
        self.policy.sleep(delay)
        self.waited += delay

    def _delay(self, status: int, headers: Mapping[str, str], message: str) -> float | None:
        now = self.policy.clock()
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        if status in RETRY_STATUSES:
            if retry_after is not None:
                return retry_after
            return self.policy.backoff_for(self.failures)
        if status not in (403, 429):
            return None
        if retry_after is not None:
            return retry_after
        reset = headers.get("x-ratelimit-reset")
        if headers.get("x-ratelimit-remaining") == "0" and reset:
            try:
                return max(float(reset) - now, 0.0) + 1.0
            except ValueError:
                pass
        if status == 429 or "secondary rate limit" in message.lower():
            self._secondary += 1
            return self.policy.secondary_for(self._secondary)
        return None  # a 403 that is no rate limit: a missing permission


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``retry-after`` in seconds; GitHub sends seconds, HTTP allows a date too."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None


def github_message(text: str, reason: str | None) -> str:
    """GitHub's own words about a failure: ``message`` plus the first detailed error."""
    fallback = str(reason or "no message")
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200].rstrip(". ") or fallback
    if not isinstance(data, dict):
        return fallback
    message = str(data.get("message") or fallback).rstrip(". ")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        detail = first.get("message") or first.get("code") if isinstance(first, dict) else first
        message += f" ({detail})"
    return " ".join(message.split())
