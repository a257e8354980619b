"""A local GitHub REST API for tests: a real HTTP server on 127.0.0.1 in a thread.

It follows GitHub's published OpenAPI description (``@octokit/openapi``):

* a request is matched to a documented operation by method and templated path
  (an unknown path answers 404, as GitHub does);
* a JSON body is validated against the operation's ``requestBody`` schema
  (a bad one answers 422 with the reasons);
* the answer is the operation's published example for its documented success
  status, or, for the operations a flow needs (comments, statuses, deployments),
  an object from :mod:`.state` built from that example;
* list answers honour ``per_page``/``page`` and carry a ``link`` header.

Every request is recorded (:class:`RecordedRequest`, with the status it was answered
with). Failures can be queued: :meth:`GitHubAPIServer.fail` (5xx),
:meth:`~GitHubAPIServer.secondary_rate_limit` and :meth:`~GitHubAPIServer.primary_rate_limit`;
or drawn at random, seeded: :meth:`~GitHubAPIServer.flaky`.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .handler import handler_for
from .openapi import Match, OpenAPI
from .state import Call, GitHubState, Reply, error

SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PRIMARY_MESSAGE = "API rate limit exceeded for installation."


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    operation_id: str | None
    status: int | None = None  # the answer's, set once it is known


@dataclass
class Fault:
    """A queued failure answer, used ``times`` times for matching requests."""

    reply: Reply
    times: int
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.method is None or self.method.upper() == method
        return method_ok and (self.path is None or re.search(self.path, path) is not None)


@dataclass
class GitHubAPIServer:
    """The server. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    api: OpenAPI
    prefix: str = ""
    token: str | None = None
    clock: Callable[[], float] = time.time
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = self.prefix.rstrip("/")
        self.state = GitHubState(self.api)
        self._lock = threading.Lock()
        self._flaky: tuple[random.Random, float] | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> GitHubAPIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.respond))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> GitHubAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._httpd is None:
            raise RuntimeError("the GitHub API test server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The API base URL, what ``GITHUB_API_URL`` would hold (with the GHES prefix)."""
        return self.origin + self.prefix

    # -- failure injection ----------------------------------------------------------------

    def fail(
        self, times: int = 1, status: int = 500, message: str | None = None, **where: str
    ) -> None:
        """Answer the next ``times`` matching requests (``method=``, ``path=`` regex) with
        an error, by default a 500."""
        said = message or HTTPStatus(status).phrase
        self.faults.append(Fault(error(status, said), times, **where))

    def secondary_rate_limit(
        self, retry_after: int | None = 60, times: int = 1, status: int = 403, **where: str
    ) -> None:
        """A secondary (abuse) rate limit: 403/429 with ``retry-after`` when given."""
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        self.faults.append(Fault(error(status, SECONDARY_MESSAGE, headers), times, **where))

    def primary_rate_limit(
        self, reset_at: int, times: int = 1, status: int = 403, **where: str
    ) -> None:
        """The primary rate limit is spent until ``reset_at`` (epoch seconds)."""
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset_at),
            "x-ratelimit-resource": "core",
        }
        self.faults.append(Fault(error(status, PRIMARY_MESSAGE, headers), times, **where))

    def flaky(self, rate: float, seed: int) -> None:
        """From now on fail each request with probability ``rate``, drawn from a generator
        seeded with ``seed``, so a serial client sees the same faults on every run. A fault is,
        with equal odds: a 502; a 429 secondary rate limit with ``retry-after`` (1 to 60 s); a
        429 without it; a 403 secondary rate limit with ``retry-after``. Queued faults
        (:meth:`fail`...) come first. ``rate=0`` stops it."""
        self._flaky = (random.Random(seed), rate) if rate > 0 else None

    def _random_fault(self) -> Reply | None:
        if self._flaky is None:
            return None
        rng, rate = self._flaky
        with self._lock:
            if rng.random() >= rate:
                return None
            kind, wait = rng.randrange(4), str(rng.randint(1, 60))
        if kind == 0:
            return error(502, "Bad Gateway")
        status = 403 if kind == 3 else 429
        return error(status, SECONDARY_MESSAGE, {} if kind == 2 else {"retry-after": wait})

    def _take_fault(self, method: str, path: str) -> Reply | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    return fault.reply
        return self._random_fault()

    # -- conveniences for tests -----------------------------------------------------------

    def requests_for(self, operation_id: str) -> list[RecordedRequest]:
        """The recorded requests that matched one documented operation."""
        return [r for r in self.requests if r.operation_id == operation_id]

    def add_comment(self, repo: str, issue: int, body: str) -> dict[str, Any]:
        """Seed an issue comment without an HTTP round trip."""
        return self.state.add_comment(self.url, repo, issue, body)

    # -- answering ------------------------------------------------------------------------

    def respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Answer one request (called by the HTTP handler thread)."""
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._finish(error(400, "Problems parsing JSON"), headers, 0)
        path = url.path.removeprefix(self.prefix) if url.path.startswith(self.prefix) else None
        found = self.api.match(method, path) if path is not None else None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method,
                    url.path,
                    query,
                    headers,
                    body,
                    found.operation.operation_id if found else None,
                )
            )
            count = len(self.requests)
        reply = self._take_fault(method, path or url.path) or self._authorize(headers)
        if reply is None:
            reply = self._operate(found, body, query) if found else error(404, "Not Found")
            reply = self._paginate(reply, found, url.path, query)
        with self._lock:
            self.requests[count - 1] = replace(self.requests[count - 1], status=reply.status)
        return self._finish(reply, headers, count)

    def _authorize(self, headers: dict[str, str]) -> Reply | None:
        if self.token is None:
            return None
        given = headers.get("authorization", "")
        if not given:
            return error(401, "Requires authentication")
        scheme, _, value = given.partition(" ")
        ok = scheme.lower() in ("bearer", "token") and value == self.token
        return None if ok else error(401, "Bad credentials")

    def _operate(self, found: Match, body: Any, query: dict[str, str]) -> Reply:
        schema, required = self.api.request_schema(found.operation)
        if schema is not None and (body is not None or required):
            problems = self.api.errors(body, schema)
            if problems:
                return error(422, "Invalid request.\n\n" + "\n".join(problems))
        reply = self.state.handle(Call(found, body, query, self.url))
        if reply is None:
            status = self.api.success_status(found.operation)
            return Reply(status, self.api.example(found.operation, status))
        # Objects are checked when made or changed; lists hold only objects checked so.
        schema = self.api.response_schema(found.operation, reply.status)
        single = reply.status < 300 and not isinstance(reply.body, list)
        problems = self.api.errors(reply.body, schema) if schema and single else []
        if problems:  # the state broke GitHub's shape: a bug in this test server
            return error(500, "test server answer breaks the schema: " + "; ".join(problems))
        return reply

    def _paginate(
        self, reply: Reply, found: Match | None, path: str, query: dict[str, str]
    ) -> Reply:
        if found is None or not isinstance(reply.body, list):
            return reply
        if "per_page" not in self.api.query_parameters(found.operation):
            return reply
        per_page = min(max(_int(query.get("per_page"), 30), 1), 100)
        page = max(_int(query.get("page"), 1), 1)
        last = max((len(reply.body) + per_page - 1) // per_page, 1)
        items = reply.body[(page - 1) * per_page : page * per_page]
        links = _links(self.origin + path, query, page, last)
        headers = {**reply.headers, **({"link": links} if links else {})}
        return Reply(reply.status, items, headers)

    def _finish(self, reply: Reply, request_headers: dict[str, str], count: int) -> Reply:
        common = {
            "x-github-api-version-selected": request_headers.get(
                "x-github-api-version", "2022-11-28"
            ),
            "x-github-request-id": f"CIML:{count:08X}",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(max(5000 - count, 0)),
            "x-ratelimit-used": str(count),
            "x-ratelimit-reset": str(int(self.clock()) + 3600),
            "x-ratelimit-resource": "core",
        }
        return Reply(reply.status, reply.body, {**common, **reply.headers})


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _links(url: str, query: dict[str, str], page: int, last: int) -> str:
    """A GitHub-style ``link`` header for one page of ``last``."""
    wanted = []
    if page > 1:
        wanted += [("prev", page - 1), ("first", 1)]
    if page < last:
        wanted += [("next", page + 1), ("last", last)]
    return ", ".join(
        f'<{url}?{urlencode({**query, "page": number})}>; rel="{rel}"' for rel, number in wanted
    )
