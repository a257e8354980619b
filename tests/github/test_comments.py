"""The sticky pull-request comment and the commit status, against the local GitHub API."""

from __future__ import annotations

import pytest

from ci_ml.errors import BadInputError
from ci_ml.github.comments import (
    COMMENT_LIMIT,
    compose_comment,
    marker,
    set_commit_status,
    sticky_key,
    upsert_sticky_comment,
)

REPO = "octo-org/models"
PR = 17
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
VERDICT = "## ✅ ci-ml: the candidate passed every gate"


def details(number, size=6000):
    return f"<details><summary>section {number}</summary>\n\n{'x' * size}\n\n</details>\n"


def operations(server):
    return [r.operation_id for r in server.requests]


def test_created_then_updated_in_place(github_api, github_client):
    first = upsert_sticky_comment(github_client, REPO, PR, f"{VERDICT}\nrun 1", "ci/gate")
    second = upsert_sticky_comment(github_client, REPO, PR, f"{VERDICT}\nrun 2", "ci/gate")

    assert (first.action, second.action) == ("created", "updated")
    assert first.comment_id == second.comment_id
    (comment,) = github_api.state.comments_on(REPO, PR)
    assert comment["body"] == f"<!-- ci-ml:ci/gate -->\n{VERDICT}\nrun 2"
    assert second.url == comment["html_url"]
    assert operations(github_api) == [
        "issues/list-comments",
        "issues/create-comment",
        "issues/list-comments",
        "issues/update-comment",
    ]


def test_same_body_is_left_unchanged(github_api, github_client):
    upsert_sticky_comment(github_client, REPO, PR, VERDICT, "ci/gate")
    again = upsert_sticky_comment(github_client, REPO, PR, VERDICT, "ci/gate")

    assert again.action == "unchanged"
    assert "issues/update-comment" not in operations(github_api)


def test_two_keys_keep_two_comments(github_api, github_client):
    for run in (1, 2, 3):
        for python in ("3.11", "3.12"):
            key = sticky_key("ci", "gate", {"python": python})
            upsert_sticky_comment(github_client, REPO, PR, f"{VERDICT}\n{python} run {run}", key)

    bodies = [c["body"] for c in github_api.state.comments_on(REPO, PR)]
    assert bodies == [
        f"<!-- ci-ml:ci/gate/python=3.11 -->\n{VERDICT}\n3.11 run 3",
        f"<!-- ci-ml:ci/gate/python=3.12 -->\n{VERDICT}\n3.12 run 3",
    ]


def test_found_on_page_three_among_many_comments(github_api, github_client):
    for number in range(230):
        github_api.add_comment(REPO, PR, f"review comment {number}")
    mine = github_api.add_comment(REPO, PR, f"{marker('ci/gate')}\nold report")
    for number in range(40):
        github_api.add_comment(REPO, PR, f"later comment {number}")
    github_api.add_comment(REPO, PR, f"quoting:\n{marker('ci/gate')}")  # not at the start

    result = upsert_sticky_comment(github_client, REPO, PR, f"{VERDICT}\nnew", "ci/gate")

    assert (result.action, result.comment_id) == ("updated", mine["id"])
    pages = [r.query.get("page") for r in github_api.requests_for("issues/list-comments")]
    assert pages == [None, "2", "3"]
    assert not github_api.requests_for("issues/create-comment")
    assert len(github_api.state.comments_on(REPO, PR)) == 272


def test_comment_deleted_meanwhile_is_made_anew(github_api, github_client):
    upsert_sticky_comment(github_client, REPO, PR, "first", "ci/gate")
    github_api.fail(status=404, method="PATCH")

    result = upsert_sticky_comment(github_client, REPO, PR, "second", "ci/gate")

    assert result.action == "created"


def test_long_report_drops_details_from_the_end(github_api, github_client):
    body = f"{VERDICT}\n\n| gate | value |\n|---|---|\n" + "".join(details(n) for n in range(20))

    result = upsert_sticky_comment(github_client, REPO, PR, body, "ci/gate")

    posted = github_api.requests_for("issues/create-comment")[0].json["body"]
    assert result.truncated
    assert len(posted) <= COMMENT_LIMIT
    assert posted.startswith(f"<!-- ci-ml:ci/gate -->\n{VERDICT}\n")
    assert "section 0" in posted and "section 9" in posted and "section 19" not in posted
    assert posted.count("<details>") == posted.count("</details>")
    assert "left out 10 collapsed section(s)" in posted


def test_long_report_without_details_is_cut_keeping_the_verdict():
    body = f"{VERDICT}\n```\n" + "row\n" * 40_000

    text, truncated = compose_comment("ci/gate", body)

    assert truncated and len(text) <= COMMENT_LIMIT
    assert text.startswith(f"<!-- ci-ml:ci/gate -->\n{VERDICT}\n")
    assert text.count("```") % 2 == 0  # the open code block is closed
    assert "cut this comment here" in text


def test_huge_verdict_still_keeps_the_marker():
    text, truncated = compose_comment("k", "v" * 100_000, limit=1000)

    assert truncated and len(text) <= 1000 and text.startswith("<!-- ci-ml:k -->\n")


def test_short_report_is_untouched():
    assert compose_comment("k", VERDICT) == (f"<!-- ci-ml:k -->\n{VERDICT}", False)


@pytest.mark.parametrize("key", ["", "a--b", "a>b", "two\nlines", "x" * 201])
def test_bad_keys_are_refused(key):
    with pytest.raises(BadInputError, match="sticky comment key"):
        marker(key)


def test_sticky_key_makes_safe_keys():
    assert sticky_key("CI -- main", "gate", {"b": 2, "a": "<1>"}) == "CI - main/gate/a=_1_/b=2"
    marker(sticky_key("CI -- main", "gate", {"b": 2, "a": "<1>"}))


def test_bad_target_is_refused_before_any_request(github_api, github_client):
    with pytest.raises(BadInputError, match="OWNER/NAME"):
        upsert_sticky_comment(github_client, "not-a-repo", PR, VERDICT, "k")
    assert github_api.requests == []


def test_commit_status_is_schema_valid(github_api, github_client, github_openapi):
    run_url = "https://github.com/octo-org/models/actions/runs/4242"
    long = "AUC +0.012 [0.004, 0.020] passes; " * 10

    result = set_commit_status(github_client, REPO, SHA, "success", long, target_url=run_url)

    (sent,) = github_api.requests
    assert sent.path == f"/repos/{REPO}/statuses/{SHA}"
    operation = github_openapi.operation("repos/create-commit-status")
    schema, _ = github_openapi.request_schema(operation)
    assert github_openapi.errors(sent.json, schema) == []
    assert len(sent.json["description"]) == 140 and sent.json["description"].endswith("…")
    assert sent.json["context"] == "ci-ml/gates" and sent.json["target_url"] == run_url
    (listed,) = github_client.get(f"/repos/{REPO}/commits/{SHA}/statuses")
    assert github_openapi.errors(listed, github_openapi.schema("status")) == []
    assert (result.state, result.context, result.target_url) == ("success", "ci-ml/gates", run_url)
    assert result.status_id == listed["id"] and result.description == sent.json["description"]


def test_pending_status_without_url(github_api, github_client):
    result = set_commit_status(github_client, REPO, SHA, "pending", "gates running", "ci-ml/x")

    assert github_api.requests[0].json == {
        "state": "pending",
        "description": "gates running",
        "context": "ci-ml/x",
    }
    assert result.target_url is None


@pytest.mark.parametrize(
    ("state", "sha", "problem"),
    [("passed", SHA, "not one of"), ("success", "abc123", "full lower-case hex sha")],
)
def test_bad_status_is_refused(github_api, github_client, state, sha, problem):
    with pytest.raises(BadInputError, match=problem):
        set_commit_status(github_client, REPO, sha, state, "x")
    assert github_api.requests == []
