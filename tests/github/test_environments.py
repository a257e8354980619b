"""The production environment and its reviewers, against the local GitHub API server.

The server answers with GitHub's published examples: /users/octocat is the user
``octocat`` (id 1), /orgs/{org}/teams/{slug} the team ``justice-league`` (id 1), and
/repos/{owner}/{repo} a repository whose default branch is ``master``. Every request body
is validated against GitHub's published schema (a bad one answers 422).
"""

from __future__ import annotations

import pytest

from ci_ml.errors import BadInputError
from ci_ml.github.environments import (
    BRANCH_POLICIES,
    _ensure_branch_patterns,
    describe,
    setup_environment,
)

REPO = "octo-org/models"
ENV_PATH = f"/repos/{REPO}/environments/production"


def operations(server):
    return [r.operation_id for r in server.requests]


def put_body(server):
    (put,) = server.requests_for("repos/create-or-update-environment")
    return put.json


def test_user_and_team_reviewers(github_api, github_client):
    result = setup_environment(
        github_client, REPO, reviewers=["octocat", "@octo-org/justice-league"], wait_timer=5
    )

    assert operations(github_api) == [
        "repos/get",
        "users/get-by-username",
        "teams/get-by-name",
        "repos/create-or-update-environment",
    ]
    assert [r.path for r in github_api.requests[1:]] == [
        "/users/octocat",
        "/orgs/octo-org/teams/justice-league",
        ENV_PATH,
    ]
    assert put_body(github_api) == {
        "wait_timer": 5,
        "prevent_self_review": False,
        "reviewers": [{"type": "User", "id": 1}, {"type": "Team", "id": 1}],
        "deployment_branch_policy": {"protected_branches": True, "custom_branch_policies": False},
    }
    assert result["reviewers"] == [
        {"type": "User", "name": "octocat", "id": 1},
        {"type": "Team", "name": "octo-org/justice-league", "id": 1},
    ]
    assert result["branch_policy"] == "protected"
    assert result["url"] == result["environment"]["html_url"]


def test_running_again_sends_the_same_request(github_api, github_client):
    for _ in range(2):
        setup_environment(github_client, REPO, reviewers=["octocat"], prevent_self_review=True)

    first, second = github_api.requests_for("repos/create-or-update-environment")
    assert first.json == second.json
    assert first.json["prevent_self_review"] is True


def test_default_branch_policy_adds_the_branch(github_api, github_client):
    result = setup_environment(
        github_client, REPO, "staging", ["octocat"], branch_policy="default-branch"
    )

    assert put_body(github_api)["deployment_branch_policy"] == {
        "protected_branches": False,
        "custom_branch_policies": True,
    }
    (created,) = github_api.requests_for("repos/create-deployment-branch-policy")
    # the example repository's default branch
    assert created.json == {"name": "master", "type": "branch"}
    assert created.path == f"/repos/{REPO}/environments/staging/deployment-branch-policies"
    assert result["branch_patterns"] == ["master"]
    assert "only master may deploy" in describe(result)


def test_an_existing_branch_pattern_is_not_created_twice(github_api, github_client):
    # the published example lists the policies "release/*" and "main"
    _ensure_branch_patterns(github_client, ENV_PATH, ["main"])

    assert operations(github_api) == ["repos/list-deployment-branch-policies"]


def test_any_branch(github_api, github_client):
    setup_environment(github_client, REPO, reviewers=["octocat"], branch_policy="all")

    assert put_body(github_api)["deployment_branch_policy"] is None


def test_environment_name_is_one_path_segment(github_api, github_client):
    setup_environment(github_client, REPO, "prod/eu west", ["octocat"])

    (put,) = github_api.requests_for("repos/create-or-update-environment")
    assert put.path == f"/repos/{REPO}/environments/prod%2Feu%20west"


def test_a_passing_failure_is_retried(github_api, github_client, github_sleeps):
    github_api.fail(times=1, status=502, method="PUT")

    setup_environment(github_client, REPO, reviewers=["octocat"])

    assert len(github_api.requests_for("repos/create-or-update-environment")) == 2
    assert github_sleeps == [1.0]


@pytest.mark.parametrize("status", [403, 404])
def test_a_token_without_admin_rights(github_api, github_client, status):
    github_api.fail(times=5, status=status, message="Resource not accessible", method="PUT")

    with pytest.raises(BadInputError) as raised:
        setup_environment(github_client, REPO, reviewers=["octocat"])

    message = str(raised.value)
    assert "environment 'production' of octo-org/models" in message
    assert "admin rights" in message and "Administration: write" in message
    assert raised.value.exit_code == 2
    # one try: a refusal is final
    assert len(github_api.requests_for("repos/create-or-update-environment")) == 1


def test_a_branch_policy_refused_for_lack_of_rights(github_api, github_client):
    github_api.fail(times=1, status=403, method="POST", path="deployment-branch-policies")

    with pytest.raises(BadInputError, match="admin rights"):
        setup_environment(
            github_client, REPO, reviewers=["octocat"], branch_policy="default-branch"
        )


def test_github_rejects_the_environment(github_api, github_client):
    github_api.fail(times=1, status=422, message="Reviewer 1 has no access", method="PUT")

    with pytest.raises(BadInputError) as raised:
        setup_environment(github_client, REPO, reviewers=["octocat"])

    assert "(Reviewer 1 has no access)" in str(raised.value)
    assert "read access" in str(raised.value)


def test_missing_repository(github_api, github_client):
    github_api.fail(times=1, status=404, method="GET", path=f"^/repos/{REPO}$")

    with pytest.raises(BadInputError, match="octo-org/models was not found"):
        setup_environment(github_client, REPO, reviewers=["octocat"])

    assert operations(github_api) == ["repos/get"]


@pytest.mark.parametrize(
    ("reviewer", "path", "expected"),
    [
        ("nobody", "/users/", "GitHub has no user 'nobody'"),
        ("octo-org/ghosts", "/teams/", "team 'octo-org/ghosts' was not found"),
    ],
)
def test_unknown_reviewer(github_api, github_client, reviewer, path, expected):
    github_api.fail(times=1, status=404, path=path)

    with pytest.raises(BadInputError, match=expected):
        setup_environment(github_client, REPO, reviewers=[reviewer])

    assert "repos/create-or-update-environment" not in operations(github_api)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"reviewers": []}, "at least one reviewer"),
        ({"reviewers": ["  "]}, "at least one reviewer"),
        ({"reviewers": [f"user{i}" for i in range(7)]}, "at most 6"),
        ({"reviewers": ["not a login"]}, "neither a GitHub login"),
        ({"reviewers": ["a/b/c"]}, "neither a GitHub login"),
        ({"wait_timer": -1}, "from 0 to 43200"),
        ({"wait_timer": 43_201}, "from 0 to 43200"),
        ({"branch_policy": "main"}, "not one of protected, default-branch, all"),
        ({"name": ""}, "environment name"),
        ({"repo": "models"}, "OWNER/NAME"),
    ],
)
def test_bad_arguments_send_nothing(github_api, github_client, arguments, expected):
    call = {"repo": REPO, "reviewers": ["octocat"], **arguments}

    with pytest.raises(BadInputError, match=expected):
        setup_environment(github_client, **call)

    assert github_api.requests == []


def test_duplicate_reviewers_count_once(github_api, github_client):
    setup_environment(github_client, REPO, reviewers=["octocat", "@octocat", "octocat"])

    assert put_body(github_api)["reviewers"] == [{"type": "User", "id": 1}]


def test_describe(github_client):
    result = setup_environment(
        github_client, REPO, reviewers=["octocat", "octo-org/justice-league"], wait_timer=10
    )

    text = describe(result)

    assert text.startswith(
        "environment 'production' of octo-org/models: a deployment waits for one of "
        "octocat, octo-org/justice-league (team) to approve"
    )
    assert "only protected branches may deploy; wait timer 10 min; self-review allowed" in text
    assert text.endswith(result["url"])


def test_branch_policies_are_documented():
    import ci_ml.github.environments as module

    for policy in BRANCH_POLICIES:
        assert policy in (module.__doc__ or "")
