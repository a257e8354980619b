"""The monitor on GitHub: one issue per problem, and the retraining trigger.

Problems and their issues (key ``<issue key>/<problem>``, label ``ci-ml:<problem>``):

    drift   features or predictions drifted (status drifting, or stale with drift too)
    decay   performance decayed (status stale)

A problem found opens its issue, or updates (reopens) the one it had; with
``close_resolved`` a problem gone closes its open issue with a comment.
:func:`wants_dispatch` says whether a status should start the retraining workflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ci_ml.errors import BadInputError
from ci_ml.github.actions import append_summary, read_context
from ci_ml.github.client import GitHubClient
from ci_ml.github.issues import (
    DispatchResult,
    IssueResult,
    close_issue,
    dispatch_workflow,
    upsert_issue,
)
from ci_ml.monitor.check import DRIFTING, FINE, STALE
from ci_ml.monitor.report import render
from ci_ml.records import MonitorReport

PROBLEMS = ("drift", "decay")
DISPATCH_ON = {"drifting": (DRIFTING, STALE), "stale": (STALE,)}


@dataclass(frozen=True)
class IssueOutcome:
    """What happened to one problem's issue."""

    problem: str
    result: IssueResult | None


def label(problem: str) -> str:
    return f"ci-ml:{problem}"


def title(problem: str, record: MonitorReport) -> str:
    """The issue title: the problem and what it concerns."""
    if problem == "decay":
        metrics = [d.metric for d in record.decay if d.verdict == "decayed"]
        return f"ci-ml monitor: model performance decayed ({', '.join(metrics)})"
    drifted = [f.feature for f in record.features if f.drifted]
    if any(p.drifted for p in record.predictions):
        drifted.append("predictions")
    return f"ci-ml monitor: data drift in {', '.join(drifted) or 'the data'}"


def publish(
    client: GitHubClient,
    repo: str,
    record: MonitorReport,
    markdown: str,
    *,
    key: str = "monitor",
    close_resolved: bool = False,
    run_url: str | None = None,
) -> list[IssueOutcome]:
    """Open or update the issue of each problem found; close resolved ones if asked."""
    found = record.problems.model_dump()
    outcomes = []
    for problem in PROBLEMS:
        issue_key = f"{key}/{problem}"
        if found[problem]:
            result: IssueResult | None = upsert_issue(
                client, repo, issue_key, title(problem, record), markdown, [label(problem)]
            )
        elif close_resolved:
            result = close_issue(
                client, repo, issue_key, label(problem), _resolved_note(problem, record, run_url)
            )
        else:
            result = None
        outcomes.append(IssueOutcome(problem, result))
    return outcomes


def publish_report(
    record: MonitorReport,
    repo: str | None,
    *,
    key: str = "monitor",
    close_resolved: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[IssueOutcome]:
    """:func:`publish` with the client, repository and run link of the environment.

    Also appends the report to the job summary when running in GitHub Actions.
    """
    environ = os.environ if env is None else env
    run_url = read_context(environ).run_url
    markdown = render(record, {"workflow run": run_url} if run_url else None)
    append_summary(markdown, environ)
    with GitHubClient(env=environ) as client:
        return publish(
            client,
            repository(repo, environ),
            record,
            markdown,
            key=key,
            close_resolved=close_resolved,
            run_url=run_url,
        )


def start_workflow(
    repo: str | None,
    workflow: str,
    ref: str | None = None,
    inputs: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> DispatchResult:
    """Start ``workflow`` with the client and repository of the environment."""
    environ = os.environ if env is None else env
    with GitHubClient(env=environ) as client:
        return dispatch_workflow(client, repository(repo, environ), workflow, ref, inputs)


def repository(repo: str | None, env: Mapping[str, str]) -> str:
    """``repo``, else ``GITHUB_REPOSITORY``; BadInputError when neither is set."""
    found = repo or env.get("GITHUB_REPOSITORY")
    if not found:
        raise BadInputError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY.")
    return found


def _resolved_note(problem: str, record: MonitorReport, run_url: str | None) -> str:
    where = f" ([run]({run_url}))" if run_url else ""
    what = "drift" if problem == "drift" else "performance decay"
    return (
        f"ci-ml monitor no longer finds {what}: status **{record.status}** at "
        f"{record.created_at}{where}. Closing; ci-ml reopens this issue "
        "if the problem comes back."
    )


def check_dispatch_on(dispatch_on: str) -> None:
    """BadInputError unless ``dispatch_on`` is ``drifting`` or ``stale``."""
    if dispatch_on not in DISPATCH_ON:
        raise BadInputError(
            f"--dispatch-on {dispatch_on!r} is not allowed; use drifting (retrain on drift or "
            "decay) or stale (only on decay)."
        )


def wants_dispatch(status: str, dispatch_on: str) -> bool:
    """Whether ``status`` should start retraining: ``drifting`` (drift or decay) or ``stale``."""
    check_dispatch_on(dispatch_on)
    return status != FINE and status in DISPATCH_ON[dispatch_on]


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` as ``{"a": "1", "b": "2"}``; BadInputError naming ``what``."""
    out = {}
    for pair in pairs or []:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise BadInputError(f"{what} {pair!r} is not NAME=VALUE.")
        out[name.strip()] = value
    return out


def parse_drops(pairs: list[str] | None) -> dict[str, float]:
    """``["roc_auc=0.01"]`` as ``{"roc_auc": 0.01}``; each drop a number of at least 0."""
    drops = {}
    for name, text in parse_pairs(pairs, "--max-drop-for").items():
        try:
            drops[name] = float(text)
        except ValueError:
            raise BadInputError(f"--max-drop-for {name}: {text!r} is not a number.") from None
        if not drops[name] >= 0:
            raise BadInputError(f"--max-drop-for {name}: give the allowed drop as a size >= 0.")
    return drops
