"""A small GitHub REST client on ``requests``.

* Token from the argument or the environment (``GITHUB_TOKEN``, then ``GH_TOKEN``);
  base URL from ``GITHUB_API_URL`` (GitHub Enterprise Server: ``https://HOST/api/v3``).
* Sends ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28``.
* Retries 5xx answers, network failures and rate limits within a time budget per
  request (:class:`~ci_ml.github.retry.RetryPolicy`, 10 minutes by default), not a
  fixed count. The wait is GitHub's ``retry-after`` if it sent one, else the time until
  ``x-ratelimit-reset`` when the primary limit is spent, else exponential backoff with
  jitter (at least a minute for a secondary limit, as GitHub asks). A wait that would
  end past the budget is not slept: the call fails at once.
* Follows ``link: rel="next"`` pages, asking for 100 items a page.
* Failures become :class:`GitHubError` (a :class:`~ci_ml.errors.ServiceError`, exit 3)
  or, for a token GitHub rejects or that lacks permissions,
  :class:`~ci_ml.errors.BadInputError` (exit 2). No message, log line or repr ever
  holds the token.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import requests

from ci_ml import __version__
from ci_ml.errors import BadInputError, CiMlError, ServiceError
from ci_ml.github.retry import Retry, RetryPolicy, github_message

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TOKEN_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN")

log = logging.getLogger(__name__)


class GitHubError(ServiceError):
    """GitHub failed a request after retries (exit 3); ``status`` is None without an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def resolve_token(token: str | None, env: Mapping[str, str]) -> str:
    """The token to send: the argument, else ``GITHUB_TOKEN``, else ``GH_TOKEN``."""
    for candidate in (token, *(env.get(name) for name in TOKEN_VARIABLES)):
        if candidate and candidate.strip():
            value = candidate.strip()
            if any(c.isspace() or ord(c) < 32 for c in value):
                raise BadInputError(
                    "the GitHub token holds whitespace or control characters; "
                    "set GITHUB_TOKEN to the token alone."
                )
            return value
    raise BadInputError(
        "no GitHub token: set GITHUB_TOKEN (in a workflow, "
        "`env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`) or GH_TOKEN."
    )


def resolve_base_url(base_url: str | None, env: Mapping[str, str]) -> str:
    """The API root: the argument, else ``GITHUB_API_URL``, else https://api.github.com."""
    url = (base_url or env.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise BadInputError(
            f"GITHUB_API_URL {url!r} is not an http(s) URL; use https://api.github.com "
            "or, for GitHub Enterprise Server, https://HOST/api/v3."
        )
    return url


class GitHubClient:
    """GitHub's REST API with retries, rate-limit waits and pagination.

    ``sleep`` and ``clock``, when given, replace the policy's (so tests wait no real time).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self._token = resolve_token(token, environ)
        self.base_url = resolve_base_url(base_url, environ)
        self.policy = policy or RetryPolicy()
        if sleep is not None:
            self.policy = replace(self.policy, sleep=sleep)
        if clock is not None:
            self.policy = replace(self.policy, clock=clock)
        self._own_session = session is None
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"GitHubClient(base_url={self.base_url!r}, token='***')"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (only if the client made it)."""
        if self._own_session:
            self._session.close()

    # -- public calls ---------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        """Send one request; the decoded JSON answer (None for an empty one)."""
        return _decode(self._call(method.upper(), path, params, json), method, self._path(path))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, items_key: str | None = None
    ) -> Iterator[Any]:
        """Every item of a list endpoint, page after page (``per_page=100``).

        ``items_key`` names the list in endpoints that wrap it in an object
        (``workflow_runs``, ``artifacts``...).
        """
        url: str | None = path
        query: Mapping[str, Any] | None = {"per_page": 100, **(params or {})}
        while url is not None:
            response = self._call("GET", url, query, None)
            page = _decode(response, "GET", self._path(url))
            yield from page[items_key] if items_key else page
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query

    # -- sending and retrying -------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("https://", "http://")):
            if not path.startswith(self.base_url + "/"):
                # never send the token to a host other than the configured API
                raise GitHubError(
                    f"GitHub linked to {path.split('?')[0]}, outside {self.base_url}."
                )
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _path(self, path: str) -> str:
        """The path as shown in messages: no host, no query."""
        return "/" + path.split("?")[0].removeprefix(self.base_url).lstrip("/")

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {self._token}",
            "User-Agent": f"ci-ml/{__version__}",
        }

    def _call(
        self, method: str, path: str, params: Mapping[str, Any] | None, body: Any
    ) -> requests.Response:
        """Send until success or until the budget is spent; the successful answer, else raise."""
        url, retry = self._url(path), Retry(self.policy)
        while True:
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers=self._headers(),
                    timeout=retry.timeouts(),
                )
            except requests.RequestException as exc:
                delay = retry.after_error()
                if not retry.fits(delay):
                    raise self._unreachable(method, path, exc, retry) from None
                why = type(exc).__name__
            else:
                if response.status_code < 400:
                    return response
                said = github_message(response.text, response.reason)
                wait = retry.after_answer(response.status_code, response.headers, said)
                if wait is None or not retry.fits(wait):
                    raise self._failure(response, method, path, retry, wait)
                delay, why = wait, str(response.status_code)
            log.warning(
                "GitHub %s %s failed (%s, attempt %d); trying again in %.0f s "
                "(%.0f s of its %.0f s budget left after the wait)",
                *(method, self._path(path), why, retry.failures, delay),
                *(retry.left() - delay, self.policy.budget),
            )
            retry.wait(delay)

    # -- errors ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    def _unreachable(
        self, method: str, path: str, exc: requests.RequestException, retry: Retry
    ) -> GitHubError:
        return GitHubError(
            self._scrub(
                f"could not reach GitHub at {self.base_url} for {method} {self._path(path)} "
                f"after {_attempts(retry)} ({type(exc).__name__}); check GITHUB_API_URL "
                "and the network, then re-run the job."
            )
        )

    def _failure(
        self, response: requests.Response, method: str, path: str, retry: Retry, wait: float | None
    ) -> CiMlError:
        status, where = response.status_code, f"{method} {self._path(path)}"
        said = self._scrub(github_message(response.text, response.reason))
        if status == 401:
            return BadInputError(
                f"GitHub rejected the token ({status} on {where}: {said}); "
                "set GITHUB_TOKEN to a valid token."
            )
        if status == 403 and wait is None:
            return BadInputError(
                f"GitHub refused {where} ({status}: {said}); give the token the permission "
                "it needs (in a workflow: `permissions: pull-requests: write, statuses: write`)."
            )
        if wait is not None and status in (403, 429):
            return GitHubError(
                f"GitHub asked ci-ml to wait {wait:.0f} s before trying {where} again "
                f"({status}: {said}), more than the {retry.left():.0f} s left of its "
                f"{self.policy.budget:.0f} s budget{_after(retry)}; re-run the job later.",
                status,
            )
        hint = _HINTS.get(status, _HINTS[500] if status >= 500 else "re-run the job")
        return GitHubError(
            f"GitHub answered {status} to {where}{_after(retry)} ({said}); {hint}.", status
        )


_HINTS = {
    404: "check the repository name, the number or sha, and that the token can see the repository",
    422: "GitHub did not accept what ci-ml sent; please report it with this message",
    500: "GitHub may be having trouble (https://www.githubstatus.com); re-run the job later",
}


def _attempts(retry: Retry) -> str:
    return f"{retry.failures} attempt{'s' if retry.failures != 1 else ''} in {retry.spent():.0f} s"


def _after(retry: Retry) -> str:
    """' after 5 attempts in 312 s', or nothing for a first attempt."""
    return f" after {_attempts(retry)}" if retry.failures > 1 else ""


def _decode(response: requests.Response, method: str, path: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise GitHubError(
            f"GitHub answered {method} {path} with something that is not JSON; "
            "check GITHUB_API_URL points at the REST API.",
            response.status_code,
        ) from None
