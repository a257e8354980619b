"""When to try a GitHub request again, and how long to wait first.

Pure functions over an answer's status, headers and message, so the rules are
easy to read and to test:

* 5xx: wait ``retry-after`` if given, else exponential backoff;
* 403/429 with ``retry-after`` (a secondary rate limit): wait that long;
* 403/429 with ``x-ratelimit-remaining: 0`` (the primary limit is spent): wait until
  ``x-ratelimit-reset``, plus one second because the reset is given in whole seconds;
* a secondary rate limit without ``retry-after``: at least a minute, as GitHub asks;
* 429 without more: exponential backoff; any other 4xx is final.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries: attempts after the first, waits and timeouts (seconds).

    ``max_wait`` is the longest single wait; a rate limit that asks for more fails at once.
    """

    retries: int = 3
    backoff: float = 1.0
    max_wait: float = 300.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def backoff_for(self, attempt: int) -> float:
        """The exponential wait after failed attempt number ``attempt`` (1-based)."""
        return float(self.backoff * 2 ** (attempt - 1))


def retry_delay(
    status: int,
    headers: Mapping[str, str],
    message: str,
    attempt: int,
    policy: RetryPolicy,
    now: float,
) -> float | None:
    """Seconds to wait before trying again, or None if this failure is final.

    ``headers`` must look names up case-insensitively (as ``requests`` does).
    """
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status in RETRY_STATUSES:
        return retry_after if retry_after is not None else policy.backoff_for(attempt)
    if status not in (403, 429):
        return None
    if retry_after is not None:
        return retry_after
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset:
        return max(float(reset) - now, 0.0) + 1.0
    if "secondary rate limit" in message.lower():
        return max(60.0, policy.backoff_for(attempt))
    return policy.backoff_for(attempt) if status == 429 else None


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
