"""One issue per problem and workflow_dispatch, against the local GitHub API.

The test server keeps no issues of its own, so the ``github_issues`` fixture adds the few
issue operations a flow needs (create, list with label and state filters, update), each
answer built from GitHub's published example for the operation and checked against its
schema by the server.
"""

from __future__ import annotations

from typing import Any

import pytest

from ci_ml.errors import BadInputError
from ci_ml.github.comments import COMMENT_LIMIT, marker
from ci_ml.github.issues import (
    close_issue,
    dispatch_workflow,
    find_issue,
    upsert_issue,
)
from ci_ml.monitor.issues import publish, wants_dispatch
from ci_ml.records import MonitorReport
from tests.github_api import state as server_state

REPO = "octo-org/models"
LABEL = "ci-ml:drift"


class IssueStore:
    """The issues created through the server, by (repository, number)."""

    def __init__(self) -> None:
        self.issues: dict[tuple[str, int], dict[str, Any]] = {}

    def of(self, repo: str = REPO) -> list[dict[str, Any]]:
        return [issue for (r, _), issue in sorted(self.issues.items()) if r == repo]

    def create(self, state: Any, call: Any) -> Any:
        issue = state.example("issues/create")
        number = len(self.of(call.repo)) + 1
        labels = [_label(issue["labels"][0], name, call) for name in call.body.get("labels", [])]
        stamp = server_state.now()
        issue.pop("pull_request", None)  # an issue made through the API is no pull request
        issue.update(
            id=state.new_id(),
            number=number,
            title=str(call.body["title"]),
            body=call.body.get("body"),
            state="open",
            state_reason=None,
            labels=labels,
            url=f"{call.base_url}/repos/{call.repo}/issues/{number}",
            html_url=f"https://github.com/{call.repo}/issues/{number}",
            created_at=stamp,
            updated_at=stamp,
            closed_at=None,
            closed_by=None,
            comments=0,
        )
        self.issues[(call.repo, number)] = issue
        return server_state.Reply(201, issue)

    def list(self, state: Any, call: Any) -> Any:
        wanted_state = call.query.get("state", "open")
        wanted_labels = [x for x in call.query.get("labels", "").split(",") if x]
        found = [
            issue
            for issue in self.of(call.repo)
            if wanted_state in ("all", issue["state"])
            and all(name in {x["name"] for x in issue["labels"]} for name in wanted_labels)
        ]
        key = "updated_at" if call.query.get("sort") == "updated" else "number"
        found.sort(
            key=lambda i: (i[key], i["number"]), reverse=call.query.get("direction") != "asc"
        )
        return server_state.Reply(200, found)

    def update(self, state: Any, call: Any) -> Any:
        issue = self.issues.get((call.repo, int(call.param("issue_number"))))
        if issue is None:
            return server_state.not_found()
        for key in ("title", "body"):
            if key in call.body:
                issue[key] = call.body[key]
        if "labels" in call.body:
            example = state.example("issues/create")["labels"][0]
            issue["labels"] = [_label(example, name, call) for name in call.body["labels"]]
        if call.body.get("state") in ("open", "closed") and call.body["state"] != issue["state"]:
            issue["state"] = call.body["state"]
            issue["closed_at"] = server_state.now() if issue["state"] == "closed" else None
            issue["state_reason"] = call.body.get("state_reason") or (
                "reopened" if issue["state"] == "open" else "completed"
            )
        issue["updated_at"] = server_state.now()
        return server_state.Reply(200, issue)


def _label(example: dict[str, Any], name: str, call: Any) -> dict[str, Any]:
    return {**example, "name": name, "url": f"{call.base_url}/repos/{call.repo}/labels/{name}"}


def install_issue_handlers(monkeypatch: pytest.MonkeyPatch) -> IssueStore:
    """Give the test servers issue state (undone when the test ends)."""
    store = IssueStore()
    for operation, handler in [
        ("issues/create", store.create),
        ("issues/list-for-repo", store.list),
        ("issues/update", store.update),
    ]:
        monkeypatch.setitem(server_state.HANDLERS, operation, handler)
    return store


@pytest.fixture
def github_issues(github_api: Any, monkeypatch: pytest.MonkeyPatch) -> IssueStore:
    """Issue state on the ``github_api`` server (for this test only)."""
    return install_issue_handlers(monkeypatch)


def operations(server: Any) -> list[str | None]:
    return [r.operation_id for r in server.requests]


# -- one issue per key ----------------------------------------------------------------------


def test_opened_once_then_updated_in_place(github_api, github_issues, github_client):
    first = upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 1", [LABEL])
    second = upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 2", [LABEL])

    assert (first.action, second.action) == ("created", "updated")
    assert first.number == second.number
    (issue,) = github_issues.of()
    assert issue["body"] == f"{marker('monitor/drift')}\nrun 2"
    assert [x["name"] for x in issue["labels"]] == [LABEL]
    assert operations(github_api) == [
        "issues/list-for-repo",
        "issues/list-for-repo",  # none with the label: the marker in any issue, once
        "issues/create",
        "issues/list-for-repo",
        "issues/update",
    ]
    listed = [r.query for r in github_api.requests_for("issues/list-for-repo")]
    assert [(q.get("labels"), q["state"]) for q in listed] == [
        (LABEL, "all"),
        (None, "all"),
        (LABEL, "all"),
    ]


def test_the_same_report_leaves_the_issue_unchanged(github_api, github_issues, github_client):
    upsert_issue(github_client, REPO, "monitor/drift", "drift", "same", [LABEL])
    again = upsert_issue(github_client, REPO, "monitor/drift", "drift", "same", [LABEL])

    assert again.action == "unchanged"
    assert not github_api.requests_for("issues/update")


def test_a_closed_issue_is_reopened_not_duplicated(github_api, github_issues, github_client):
    made = upsert_issue(github_client, REPO, "monitor/drift", "drift", "first", [LABEL])
    github_client.patch(f"/repos/{REPO}/issues/{made.number}", {"state": "closed"})

    again = upsert_issue(github_client, REPO, "monitor/drift", "drift", "back", [LABEL])

    assert (again.action, again.number) == ("reopened", made.number)
    (issue,) = github_issues.of()
    assert issue["state"] == "open" and issue["body"].endswith("\nback")


def test_found_on_a_later_page_among_other_issues(github_api, github_issues, github_client):
    mine = upsert_issue(github_client, REPO, "monitor/drift", "drift", "old", [LABEL])
    for number in range(130):
        github_client.post(
            f"/repos/{REPO}/issues", {"title": f"other {number}", "body": "x", "labels": [LABEL]}
        )
    quoting = f"see:\n{marker('monitor/drift')}"  # the marker, but not at the start
    github_client.post(f"/repos/{REPO}/issues", {"title": "q", "body": quoting, "labels": [LABEL]})

    again = upsert_issue(github_client, REPO, "monitor/drift", "drift", "new", [LABEL])

    assert (again.action, again.number) == ("updated", mine.number)
    assert len(github_issues.of()) == 132
    pages = [r.query.get("page") for r in github_api.requests_for("issues/list-for-repo")]
    assert pages == [None, None, None, "2"]  # the oldest issue is on the last page


def test_two_keys_keep_two_issues(github_api, github_issues, github_client):
    for run in (1, 2):
        upsert_issue(github_client, REPO, "monitor/drift", "drift", f"d{run}", [LABEL])
        upsert_issue(github_client, REPO, "monitor/decay", "decay", f"s{run}", ["ci-ml:decay"])

    bodies = sorted(i["body"] for i in github_issues.of())
    assert bodies == [f"{marker('monitor/decay')}\ns2", f"{marker('monitor/drift')}\nd2"]


def test_a_pull_request_with_the_marker_is_not_the_issue(github_api, github_issues, github_client):
    upsert_issue(github_client, REPO, "monitor/drift", "drift", "x", [LABEL])
    (issue,) = github_issues.of()
    issue["pull_request"] = {"url": f"{github_api.url}/repos/{REPO}/pulls/{issue['number']}"}

    assert find_issue(github_client, REPO, "monitor/drift", LABEL) is None


def test_close_issue_comments_and_closes(github_api, github_issues, github_client):
    made = upsert_issue(github_client, REPO, "monitor/drift", "drift", "x", [LABEL])

    closed = close_issue(github_client, REPO, "monitor/drift", LABEL, "gone")
    nothing = close_issue(github_client, REPO, "monitor/drift", LABEL, "gone")

    assert closed is not None and (closed.action, closed.number) == ("closed", made.number)
    assert nothing is None
    (issue,) = github_issues.of()
    assert (issue["state"], issue["state_reason"]) == ("closed", "completed")
    (comment,) = github_api.state.comments_on(REPO, made.number)
    assert comment["body"] == "gone"


def test_a_long_report_is_cut_to_githubs_limit(github_api, github_issues, github_client):
    result = upsert_issue(github_client, REPO, "k", "t", "## status\n" + "x" * 70_000, [LABEL])

    (issue,) = github_issues.of()
    assert result.truncated and len(issue["body"]) <= COMMENT_LIMIT
    assert issue["body"].startswith(f"{marker('k')}\n## status")


def test_a_dropped_label_is_an_error_not_a_future_duplicate(
    github_api, github_issues, github_client, monkeypatch
):
    create = github_issues.create

    def without_labels(state, call):
        reply = create(state, call)
        reply.body["labels"] = []  # what GitHub does for a token that may not label
        return reply

    monkeypatch.setitem(server_state.HANDLERS, "issues/create", without_labels)

    with pytest.raises(BadInputError, match="dropped its label 'ci-ml:drift'"):
        upsert_issue(github_client, REPO, "monitor/drift", "drift", "x", [LABEL])


def test_an_issue_whose_label_was_dropped_is_found_by_its_marker(
    github_api, github_issues, github_client, monkeypatch
):
    create, update = github_issues.create, github_issues.update

    def unlabelled(handler):
        def answer(state, call):
            reply = handler(state, call)
            reply.body["labels"] = []  # a token that may not label
            return reply

        return answer

    monkeypatch.setitem(server_state.HANDLERS, "issues/create", unlabelled(create))
    monkeypatch.setitem(server_state.HANDLERS, "issues/update", unlabelled(update))
    with pytest.raises(BadInputError, match="GitHub opened issue #1 but dropped its label"):
        upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 1", [LABEL])
    github_client.post(f"/repos/{REPO}/issues", {"title": "other", "body": "x", "labels": []})
    github_issues.issues[(REPO, 1)]["labels"] = []

    with pytest.raises(BadInputError, match="GitHub updated issue #1 but dropped its label"):
        upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 2", [LABEL])
    monkeypatch.setitem(server_state.HANDLERS, "issues/update", update)  # the token fixed
    again = upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 3", [LABEL])
    last = upsert_issue(github_client, REPO, "monitor/drift", "drift", "run 4", [LABEL])

    assert (again.action, again.number, last.action, last.number) == ("updated", 1, "updated", 1)
    mine, other = github_issues.of()
    assert mine["body"].endswith("\nrun 4") and [x["name"] for x in mine["labels"]] == [LABEL]
    assert other["title"] == "other"
    edits = [r.json for r in github_api.requests_for("issues/update")]
    assert [e.get("labels") for e in edits] == [[LABEL], [LABEL], None]


@pytest.mark.parametrize(
    ("repo", "labels", "problem"),
    [("not-a-repo", [LABEL], "OWNER/NAME"), (REPO, ["a,b"], "without commas"), (REPO, [], "label")],
)
def test_bad_targets_are_refused_before_any_request(
    github_api, github_client, repo, labels, problem
):
    with pytest.raises(BadInputError, match=problem):
        upsert_issue(github_client, repo, "k", "t", "b", labels)
    assert github_api.requests == []


# -- the monitor's problems -----------------------------------------------------------------


def _feature(name: str, drifted: bool) -> dict[str, Any]:
    psi = {"name": "psi", "threshold": 0.2, "value": 0.5 if drifted else 0.01}
    psi.update(noise_floor=0.01, limit=0.2, drifted=drifted)
    return {
        "feature": name,
        "kind": "numeric",
        "measures": [psi],
        "reference_rows": 3562,
        "recent_rows": 891,
        "summary": "mean 1 → 2" if drifted else "mean 1 → 1",
        "details": {},
        "drifted": drifted,
        "severity": 2.5 if drifted else 0.05,
    }


def monitor_record(status: str, drift: bool, decay: bool) -> MonitorReport:
    """A whole monitor record: Income drifted or not, roc_auc decayed or not."""
    source: dict[str, Any] = {"kind": "file", "path": "recent.csv"}
    verdict = "decayed" if decay else "fine"
    return MonitorReport.model_validate(
        {
            "status": status,
            "reasons": [],
            "notes": [],
            "production": {
                "version": "v1",
                "digest": "0" * 64,
                "task": "classification",
                "target": "Status",
                "positive_class": "bad",
                "data_version": "md5:test",
                "metrics_at_gate": {"roc_auc": 0.84},
            },
            "reference": {"rows": 3562, "predictions": "holdout", "prediction_rows": 891},
            "recent": {"rows": 891, "source": source},
            "labelled": {"rows": 891, "target": "Status", "source": source, "note": None},
            "settings": {
                "drift": {
                    "psi": 0.2,
                    "wasserstein": 0.1,
                    "missing": 0.05,
                    "bins": 10,
                    "max_categories": 50,
                },
                "decay": {
                    "max_drop": 0.02,
                    "max_drop_by_metric": {},
                    "confidence": 0.95,
                    "resamples": 2000,
                    "seed": 0,
                    "threshold": 0.5,
                    "max_relative_drop": 0.02,
                },
                "metrics": [],
                "min_labelled": 30,
            },
            "features": [_feature("Income", drift), _feature("Age", False)],
            "predictions": [_feature("P(bad)", False)],
            "decay": [
                {
                    "metric": "roc_auc",
                    "recorded": 0.84,
                    "recent": 0.7 if decay else 0.84,
                    "ci_low": 0.66 if decay else 0.8,
                    "ci_high": 0.74 if decay else 0.88,
                    "confidence": 0.95,
                    "method": "DeLong variance of one AUC, normal interval",
                    "rows": 891,
                    "gate_rows": 891,
                    "change": -0.14 if decay else 0.0,
                    "change_low": -0.2 if decay else -0.05,
                    "change_high": -0.08 if decay else 0.05,
                    "change_method": "DeLong variances of both samples, normal interval",
                    "allowed_drop": 0.02,
                    "allowed_drop_relative": None,
                    "limit": 0.82,
                    "higher_is_better": True,
                    "verdict": verdict,
                }
            ],
            "problems": {"drift": drift, "decay": decay},
            "created_at": "2024-05-01T00:00:00+00:00",
            "ci_ml_version": "0.1.0",
        }
    )


def test_each_problem_has_its_issue_and_a_resolved_one_closes(
    github_api, github_issues, github_client
):
    drifting = publish(github_client, REPO, monitor_record("drifting", True, False), "## drifting")
    stale = publish(github_client, REPO, monitor_record("stale", True, True), "## stale")
    fine = publish(
        github_client, REPO, monitor_record("fine", False, False), "## fine", close_resolved=True
    )

    def actions(outcomes):
        return {o.problem: o.result and o.result.action for o in outcomes}

    assert actions(drifting) == {"drift": "created", "decay": None}
    assert actions(stale) == {"drift": "updated", "decay": "created"}
    assert actions(fine) == {"drift": "closed", "decay": "closed"}
    titles = {i["title"] for i in github_issues.of()}
    assert titles == {
        "ci-ml monitor: data drift in Income",
        "ci-ml monitor: model performance decayed (roc_auc)",
    }
    assert [i["state"] for i in github_issues.of()] == ["closed", "closed"]


@pytest.mark.parametrize(
    ("status", "on", "expected"),
    [
        ("fine", "drifting", False),
        ("drifting", "drifting", True),
        ("stale", "drifting", True),
        ("drifting", "stale", False),
        ("stale", "stale", True),
    ],
)
def test_which_status_starts_retraining(status, on, expected):
    assert wants_dispatch(status, on) is expected


def test_an_unknown_dispatch_rule_is_refused():
    with pytest.raises(BadInputError, match="drifting"):
        wants_dispatch("stale", "always")


# -- workflow_dispatch ----------------------------------------------------------------------


def test_dispatch_runs_on_the_default_branch_and_is_schema_valid(
    github_api, github_client, github_openapi
):
    result = dispatch_workflow(github_client, REPO, "ml-pipeline.yml", inputs={"reason": "drift"})

    assert operations(github_api) == ["repos/get", "actions/create-workflow-dispatch"]
    sent = github_api.requests[-1]
    assert sent.path == f"/repos/{REPO}/actions/workflows/ml-pipeline.yml/dispatches"
    schema, required = github_openapi.request_schema(
        github_openapi.operation("actions/create-workflow-dispatch")
    )
    assert required and github_openapi.errors(sent.json, schema) == []
    default = github_openapi.example(github_openapi.operation("repos/get"), 200)["default_branch"]
    assert sent.json == {"ref": default, "inputs": {"reason": "drift"}}
    assert (result.workflow, result.ref) == ("ml-pipeline.yml", default)


def test_dispatch_on_a_given_ref_needs_no_lookup(github_api, github_client):
    result = dispatch_workflow(github_client, REPO, ".github/workflows/ml.yml", ref="release")

    assert operations(github_api) == ["actions/create-workflow-dispatch"]
    assert github_api.requests[0].json == {"ref": "release"}
    assert result.workflow == "ml.yml"


@pytest.mark.parametrize(
    ("workflow", "inputs", "problem"),
    [
        ("ml pipeline", None, "workflow file name"),
        ("ml.yml", {f"i{n}": "x" for n in range(26)}, "at most 25"),
    ],
)
def test_bad_dispatches_are_refused_before_any_request(
    github_api, github_client, workflow, inputs, problem
):
    with pytest.raises(BadInputError, match=problem):
        dispatch_workflow(github_client, REPO, workflow, ref="main", inputs=inputs)
    assert github_api.requests == []
