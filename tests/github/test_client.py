"""The GitHub REST client against the local GitHub API server on loopback."""

from __future__ import annotations

import logging

import pytest

from ci_ml.errors import BadInputError, ServiceError
from ci_ml.github.client import API_VERSION, DEFAULT_API_URL, GitHubClient, GitHubError
from ci_ml.github.retry import Retry, RetryPolicy

REPO = "octo-org/models"
NOW = 1_700_000_000.0


def make_client(server, token, sleeps, **policy):
    """A client whose clock stands still at NOW and whose waits go to ``sleeps``, exactly."""
    policy = RetryPolicy(sleep=sleeps.append, clock=lambda: NOW, random=lambda: 0.0, **policy)
    return GitHubClient(token, base_url=server.url, env={}, policy=policy)


def test_sends_github_headers_and_token(github_api, github_client, github_token):
    repo = github_client.get(f"/repos/{REPO}")

    assert repo["full_name"] == "octocat/Hello-World"  # GitHub's published example
    (sent,) = github_api.requests
    assert sent.operation_id == "repos/get"
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == API_VERSION == "2022-11-28"
    assert sent.headers["authorization"] == f"Bearer {github_token}"
    assert sent.headers["user-agent"].startswith("ci-ml/")


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        ("from-argument", {"GITHUB_TOKEN": "from-env"}, "from-argument"),
        (None, {"GITHUB_TOKEN": "github-token\n", "GH_TOKEN": "gh-token"}, "github-token"),
        (None, {"GH_TOKEN": "gh-token"}, "gh-token"),
    ],
)
def test_token_comes_from_argument_then_environment(github_api, argument, env, expected):
    env = {**env, "GITHUB_API_URL": github_api.url}
    # the server expects the fixture's token only
    with GitHubClient(argument, env=env) as client, pytest.raises(BadInputError):
        client.get(f"/repos/{REPO}")
    assert github_api.requests[0].headers["authorization"] == f"Bearer {expected}"


def test_missing_or_malformed_token_is_bad_input():
    with pytest.raises(BadInputError, match="no GitHub token: set GITHUB_TOKEN"):
        GitHubClient(env={"GITHUB_TOKEN": "  "})
    with pytest.raises(BadInputError, match="whitespace") as caught:
        GitHubClient("ghp_secret value", env={})
    assert "ghp_secret" not in str(caught.value)


def test_base_url_default_env_and_validation():
    assert GitHubClient("t", env={}).base_url == DEFAULT_API_URL
    env = {"GITHUB_API_URL": "https://ghe.example.com/api/v3/"}
    assert GitHubClient("t", env=env).base_url == "https://ghe.example.com/api/v3"
    with pytest.raises(BadInputError, match="not an http"):
        GitHubClient("t", env={"GITHUB_API_URL": "ghe.example.com"})


def test_repr_hides_the_token(github_client, github_token):
    assert github_token not in repr(github_client)
    assert "token='***'" in repr(github_client)


def test_ghes_base_url_with_api_v3_prefix(github_api_factory, github_token, github_sleeps):
    ghes = github_api_factory(prefix="/api/v3")
    for number in range(150):
        ghes.add_comment(REPO, 9, f"comment {number}")
    env = {"GITHUB_API_URL": ghes.url, "GITHUB_TOKEN": github_token}
    with GitHubClient(env=env, sleep=github_sleeps.append) as client:
        comments = list(client.paginate(f"/repos/{REPO}/issues/9/comments"))

    assert len(comments) == 150
    assert [r.path for r in ghes.requests] == [f"/api/v3/repos/{REPO}/issues/9/comments"] * 2
    assert [r.query.get("page") for r in ghes.requests] == [None, "2"]


def test_ghes_server_refuses_paths_without_the_prefix(github_api_factory, github_token):
    ghes = github_api_factory(prefix="/api/v3")
    client = GitHubClient(github_token, base_url=ghes.origin, env={})
    with client, pytest.raises(GitHubError, match="404 to GET /repos/octo-org/models") as caught:
        client.get(f"/repos/{REPO}")
    assert caught.value.status == 404


def test_retries_server_errors_with_backoff(github_api, github_client, github_sleeps):
    github_api.fail(times=2, status=502)

    assert github_client.get(f"/repos/{REPO}")["name"] == "Hello-World"
    assert len(github_api.requests) == 3
    assert github_sleeps == [1.0, 2.0]


def test_four_failures_in_a_row_are_ridden_out(github_api, github_client, github_sleeps):
    # the fixed count of 4 attempts that this replaced gave up here
    github_api.fail(times=4, status=502)

    assert github_client.get(f"/repos/{REPO}")["name"] == "Hello-World"
    assert len(github_api.requests) == 5
    assert github_sleeps == [1.0, 2.0, 4.0, 8.0]


def test_gives_up_when_the_budget_is_spent_with_one_sentence(
    github_api, github_client, github_sleeps
):
    github_api.fail(times=1000, status=500)

    with pytest.raises(ServiceError) as caught:
        github_client.post(f"/repos/{REPO}/issues/3/comments", {"body": "hi"})

    # doubling up to a minute, then a minute at a time, while the next wait fits in 600 s
    assert github_sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] + [60.0] * 8
    assert sum(github_sleeps) == 543.0
    assert len(github_api.requests) == 15
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith(
        f"GitHub answered 500 to POST /repos/{REPO}/issues/3/comments after 15 attempts in "
        "543 s (Internal Server Error); GitHub may be having trouble"
    )


def test_never_sleeps_past_the_budget(github_api, github_token):
    sleeps: list[float] = []
    github_api.fail(times=1000, status=502)

    client = make_client(github_api, github_token, sleeps, budget=10)
    with client, pytest.raises(GitHubError, match="after 4 attempts in 7 s"):
        client.get(f"/repos/{REPO}")

    assert sleeps == [1.0, 2.0, 4.0]  # the next wait, 8 s, would end at 15 s


def test_a_retry_after_that_does_not_fit_the_budget_left_fails_at_once(github_api, github_token):
    sleeps: list[float] = []
    github_api.secondary_rate_limit(retry_after=60, times=2, status=429)

    client = make_client(github_api, github_token, sleeps, budget=100)
    with client, pytest.raises(GitHubError) as caught:
        client.get(f"/repos/{REPO}")

    assert sleeps == [60.0]
    assert str(caught.value).startswith(
        f"GitHub asked ci-ml to wait 60 s before trying GET /repos/{REPO} again (429: You have "
        "exceeded a secondary rate limit"
    )
    assert "more than the 40 s left of its 100 s budget after 2 attempts in 60 s" in str(
        caught.value
    )


def test_the_budget_counts_the_time_attempts_take_too():
    now = [NOW]
    retry = Retry(RetryPolicy(budget=600, clock=lambda: now[0], sleep=lambda _s: None))
    assert retry.fits(600)
    now[0] += 550  # slow answers, no waits
    assert retry.left() == 50
    assert retry.fits(50) and not retry.fits(51)
    assert retry.timeouts() == (10.0, 30.0)
    now[0] += 45
    assert retry.timeouts() == (5.0, 5.0)  # an attempt may not outlast the budget either


def test_backoff_has_jitter_and_a_cap():
    policy = RetryPolicy(backoff=1, max_backoff=8, jitter=0.5, random=lambda: 1.0)
    assert [policy.backoff_for(n) for n in range(1, 6)] == [1.5, 3.0, 6.0, 12.0, 12.0]
    still = RetryPolicy(random=lambda: 0.0)
    assert [still.backoff_for(n) for n in (1, 2, 7, 8)] == [1.0, 2.0, 60.0, 60.0]


def test_real_jitter_spreads_the_waits(github_api, github_token):
    sleeps: list[float] = []
    github_api.fail(times=3, status=502)
    policy = RetryPolicy(sleep=sleeps.append, clock=lambda: NOW)  # the real random jitter

    with GitHubClient(github_token, base_url=github_api.url, env={}, policy=policy) as client:
        client.get(f"/repos/{REPO}")

    assert len(sleeps) == 3
    assert all(base <= wait <= 1.5 * base for base, wait in zip([1, 2, 4], sleeps, strict=True))


def test_a_policy_that_cannot_work_is_refused():
    with pytest.raises(BadInputError, match=r"budget >= 0 and 0 < backoff <= max_backoff"):
        RetryPolicy(backoff=0)


def test_secondary_rate_limit_honours_retry_after(github_api, github_client, github_sleeps):
    github_api.secondary_rate_limit(retry_after=7)

    github_client.get(f"/repos/{REPO}")

    assert github_sleeps == [7.0]
    assert len(github_api.requests) == 2


def test_secondary_rate_limit_without_retry_after_waits_a_minute(
    github_api, github_client, github_sleeps
):
    github_api.secondary_rate_limit(retry_after=None, status=403)

    github_client.get(f"/repos/{REPO}")

    assert github_sleeps == [60.0]


def test_a_secondary_rate_limit_that_goes_on_waits_longer_each_time(
    github_api, github_client, github_sleeps
):
    github_api.secondary_rate_limit(retry_after=None, times=2, status=403)
    github_api.fail(times=1, status=429, message="Too Many Requests")  # a bare 429 counts too

    github_client.get(f"/repos/{REPO}")

    assert github_sleeps == [60.0, 120.0, 240.0]


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_waits_until_reset(github_api, github_token, status):
    sleeps: list[float] = []
    github_api.primary_rate_limit(reset_at=int(NOW) + 42, status=status)

    with make_client(github_api, github_token, sleeps) as client:
        client.get(f"/repos/{REPO}")

    assert sleeps == [43.0]  # until the reset, plus a second for whole-second rounding
    assert len(github_api.requests) == 2


def test_rate_limit_longer_than_the_budget_fails_at_once(github_api, github_token):
    sleeps: list[float] = []
    github_api.primary_rate_limit(reset_at=int(NOW) + 3600)

    client = make_client(github_api, github_token, sleeps, budget=300)
    with client, pytest.raises(GitHubError, match=r"wait 3601 s .* more than the 300 s left"):
        client.get(f"/repos/{REPO}")

    assert sleeps == []
    assert len(github_api.requests) == 1


def test_forbidden_without_rate_limit_is_a_permission_problem(github_api, github_client):
    github_api.fail(status=403, message="Resource not accessible by integration")

    with pytest.raises(BadInputError, match="permission") as caught:
        github_client.post(f"/repos/{REPO}/issues/3/comments", {"body": "hi"})

    assert "Resource not accessible by integration" in str(caught.value)
    assert len(github_api.requests) == 1


def test_not_found_is_not_retried(github_api, github_client, github_sleeps):
    with pytest.raises(GitHubError, match="404 to GET /repos/octo-org/models/nothing-here"):
        github_client.get(f"/repos/{REPO}/nothing-here")
    assert github_sleeps == []


def test_invalid_request_body_gets_githubs_reasons(github_api, github_client):
    with pytest.raises(GitHubError, match=r"422 .*'body' is a required property"):
        github_client.post(f"/repos/{REPO}/issues/3/comments", {"text": "no body field"})


def test_delete_returns_none_on_204(github_api, github_client):
    comment = github_api.add_comment(REPO, 3, "bye")
    assert github_client.delete(f"/repos/{REPO}/issues/comments/{comment['id']}") is None
    assert github_api.state.comments_on(REPO, 3) == []


def test_paginates_through_link_headers(github_api, github_client):
    for number in range(250):
        github_api.add_comment(REPO, 5, f"comment {number}")

    bodies = [c["body"] for c in github_client.paginate(f"/repos/{REPO}/issues/5/comments")]

    assert bodies == [f"comment {number}" for number in range(250)]
    assert [(r.query["per_page"], r.query.get("page")) for r in github_api.requests] == [
        ("100", None),
        ("100", "2"),
        ("100", "3"),
    ]


def test_refuses_to_follow_links_to_another_host(github_api, github_client):
    with pytest.raises(GitHubError, match="outside"):
        github_client.get("https://elsewhere.example/repos/octo-org/models")
    assert github_api.requests == []


def test_unreachable_server_is_a_service_error(github_api_factory, github_token):
    gone = github_api_factory()
    url = gone.url
    gone.stop()
    sleeps: list[float] = []
    policy = RetryPolicy(budget=3, connect_timeout=2, random=lambda: 0.0)

    client = GitHubClient(github_token, base_url=url, env={}, sleep=sleeps.append, policy=policy)
    with client, pytest.raises(GitHubError, match=r"could not reach GitHub .* after 3 attempts"):
        client.get(f"/repos/{REPO}")

    assert sleeps == [1.0, 2.0]


def test_token_never_in_messages_or_logs(github_api, github_token, caplog, capsys):
    wrong = "ghp_wrongTokenThatMustNeverBeShown0123"
    caplog.set_level(logging.DEBUG)
    github_api.fail(times=1, status=502)
    with make_client(github_api, wrong, []) as client:
        with pytest.raises(BadInputError, match="rejected the token") as caught:
            client.get(f"/repos/{REPO}")
        printed = repr(client)

    captured = capsys.readouterr()
    for text in (str(caught.value), printed, caplog.text, captured.out, captured.err):
        assert wrong not in text
        assert github_token not in text
    assert "502" in caplog.text  # the retry was logged, without the token
