"""pytest fixtures for the local GitHub API server; tests/conftest.py imports them.

github_openapi      session: GitHub's parsed OpenAPI description (parsed once)
github_webhooks     session: GitHub's published webhook payloads, by event and action
github_api          a started server at the api.github.com layout, token TOKEN
github_api_factory  start more servers, e.g. a GHES one: factory(prefix="/api/v3")
github_token        the token the servers expect (and the clients send)
github_sleeps       the waits the client asked for (it never really sleeps in tests)
github_client       a GitHubClient on github_api whose sleeps go to github_sleeps (no jitter)
github_env          an Actions environment: a pull_request event, outputs, summary
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .openapi import MissingPackagesError, OpenAPI, load_description, webhook_example
from .server import GitHubAPIServer

TOKEN = "ghs_cimlTestToken0123456789abcdefABCDEF"

__all__ = [
    "github_api",
    "github_api_factory",
    "github_client",
    "github_env",
    "github_openapi",
    "github_sleeps",
    "github_token",
    "github_webhooks",
]


@pytest.fixture(scope="session")
def github_openapi() -> OpenAPI:
    """GitHub's description, parsed once per session (about half a second)."""
    try:
        return load_description()
    except MissingPackagesError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def github_webhooks() -> Callable[..., dict[str, Any]]:
    """``github_webhooks("pull_request", "opened")``: a fresh copy of GitHub's example."""
    try:
        webhook_example("push")
    except MissingPackagesError as exc:
        pytest.fail(str(exc), pytrace=False)
    return webhook_example


@pytest.fixture
def github_api_factory(github_openapi: OpenAPI) -> Iterator[Callable[..., GitHubAPIServer]]:
    """Start servers (``prefix``, ``token``, ``clock``); all stop after the test."""
    started: list[GitHubAPIServer] = []

    def start(**options: Any) -> GitHubAPIServer:
        options.setdefault("token", TOKEN)
        server = GitHubAPIServer(github_openapi, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def github_api(github_api_factory: Callable[..., GitHubAPIServer]) -> GitHubAPIServer:
    """A started server answering like api.github.com, expecting the token ``TOKEN``."""
    return github_api_factory()


@pytest.fixture
def github_token() -> str:
    return TOKEN


@pytest.fixture
def github_sleeps() -> list[float]:
    return []


@pytest.fixture
def github_client(github_api: GitHubAPIServer, github_sleeps: list[float]) -> Iterator[Any]:
    """A ``GitHubClient`` on ``github_api``; its waits are recorded in ``github_sleeps``,
    without jitter so that they are exact."""
    from ci_ml.github.client import GitHubClient
    from ci_ml.github.retry import RetryPolicy

    policy = RetryPolicy(sleep=github_sleeps.append, random=lambda: 0.0)
    with GitHubClient(TOKEN, base_url=github_api.url, env={}, policy=policy) as c:
        yield c


@pytest.fixture
def github_env(
    github_api: GitHubAPIServer, github_webhooks: Callable[..., dict[str, Any]], tmp_path: Path
) -> dict[str, str]:
    """The variables of a job run for GitHub's published ``pull_request.opened`` example."""
    event = github_webhooks("pull_request", "opened")
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(event), encoding="utf-8")
    (tmp_path / "output").touch()
    (tmp_path / "summary.md").touch()
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github_api.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": event["repository"]["full_name"],
        "GITHUB_SHA": "b" * 40,
        "GITHUB_REF": f"refs/pull/{event['number']}/merge",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW": "ci-ml",
        "GITHUB_JOB": "gate",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
