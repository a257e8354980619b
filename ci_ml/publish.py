"""Publishing the report on GitHub: job summary, annotations, sticky PR comment, commit status.

Posting is best effort (a comment that cannot be posted is a warning saying how
to fix it, never a lost run); the gate itself already decided.

Pull requests from forks get a read-only token, so the gate job cannot post.
It writes ``github-pr.json`` into the run directory instead, and a separate
``workflow_run`` job in the base repository posts it (``--publish-from``).
That job never runs the fork's code, checks that the pull request's head commit
is the one the gate ran on, and rebuilds the report from the JSON run files
rather than posting the fork's report.md as written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_ml import rundir
from ci_ml.errors import BadInputError, CiMlError
from ci_ml.github.actions import (
    ActionsContext,
    Level,
    annotation,
    append_summary,
    read_context,
)
from ci_ml.github.comments import set_commit_status, sticky_key, upsert_sticky_comment
from ci_ml.records import (
    PR_FILE,
    DataReport,
    Evaluation,
    GateReport,
    PullRequestHandoff,
    read_optional,
    read_record,
    write_record,
)
from ci_ml.report import render

__all__ = ["PR_FILE", "Published", "publish", "publish_combined", "publish_from"]
DEFAULT_PIPELINE = "ci-ml"
STATUS = {"pass": "success", "fail": "failure", "inconclusive": "success"}
FIX = "give the job 'pull-requests: write' and 'statuses: write' permissions and a GITHUB_TOKEN"


@dataclass
class Published:
    """What publishing did, for the CLI to print."""

    annotations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)


def status_description(gate_report: GateReport) -> str:
    """≤140 characters: the verdict and the first reason."""
    verdict = gate_report.verdict
    reasons = gate_report.reasons
    if verdict == "inconclusive" and gate_report.baseline and gate_report.baseline.unread:
        # the reason would repeat this, past the 140 characters
        return "inconclusive: a fork's run cannot read production; compared again after merge"
    if verdict == "inconclusive":
        head = "inconclusive: deploy needs a maintainer's approval"
    else:
        head = f"{verdict}"
    return f"{head} — {reasons[0]}" if reasons else head


def annotation_lines(run_dir: Path, config_file: str = "ci-ml.yaml") -> list[str]:
    """``::error`` lines for each failing gate or check, at the line that set it."""
    lines = []
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    for gate in gate_report.gates:
        if gate.verdict == "pass" or gate.kind == "data":
            continue
        level: Level = "error" if gate.verdict == "fail" else "warning"
        lines.append(
            annotation(
                gate.reason,
                level,
                file=(gate.location.file if gate.location else None) or config_file,
                line=gate.location.line if gate.location else None,
                title=f"ci-ml gate: {gate.name}",
            )
        )
    data_report = read_optional(run_dir, rundir.DATA_REPORT, DataReport)
    for check in data_report.checks if data_report else []:
        if check.success or check.severity == "info":
            continue
        level = "error" if check.severity == "critical" else "warning"
        text = f"{check.name} failed on {check.column or 'the table'}"
        if check.unexpected_percent is not None:
            text += f" ({check.unexpected_percent}% unexpected)"
        lines.append(
            annotation(
                text,
                level,
                file=check.location.file if check.location else None,
                line=check.location.line if check.location else None,
                title="ci-ml data check",
            )
        )
    return lines


def publish(
    run_dir: Path,
    report_md: str,
    client_factory: Callable[[], Any],
    *,
    env: Mapping[str, str] | None = None,
    status_context: str = "ci-ml/gates",
    key: str | None = None,
    pipeline: str = DEFAULT_PIPELINE,
    comment: bool = True,
) -> Published:
    """Job summary, annotations, and — for a pull request — the sticky comment and status.

    ``comment=False``: the status only (a leg of a matrix whose fan-in job comments)."""
    ctx = read_context(env)
    out = Published(annotations=annotation_lines(run_dir))
    if append_summary(report_md, env) is not None:
        out.done.append("job summary written")
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    pr = ctx.pull_request
    if pr is not None and pr.is_fork and ctx.event_name == "pull_request":
        _write_pr_file(run_dir, ctx, status_context, key or comment_key(ctx, pipeline))
        out.done.append(f"fork pull request #{pr.number}: left {PR_FILE} for the publisher job")
        return out
    if not ctx.repository:
        out.warnings.append("not in GitHub Actions (GITHUB_REPOSITORY unset); nothing posted")
        return out
    number = pr.number if pr and comment else None
    _post(
        out,
        client_factory,
        ctx.repository,
        number,
        ctx.head_sha,
        report_md,
        gate_report,
        status_context,
        key or comment_key(ctx, pipeline),
        ctx.run_url,
    )
    return out


def status_context(pipeline: str) -> str:
    """The commit status of a pipeline: ci-ml/gates, or ci-ml/gates/NAME for a named one."""
    return "ci-ml/gates" if pipeline == DEFAULT_PIPELINE else f"ci-ml/gates/{pipeline}"


def comment_key(ctx: ActionsContext, pipeline: str) -> str:
    """The sticky comment's key: the workflow and job, and the pipeline when it is named
    (two callers of one reusable workflow share its job's name)."""
    named = {"pipeline": pipeline} if pipeline != DEFAULT_PIPELINE else None
    return sticky_key(ctx.workflow, ctx.job, named)


def combined_key(ctx: ActionsContext, name: str) -> str:
    """The combined comment's key: never a leg's (theirs have no ``combined=``)."""
    return sticky_key(ctx.workflow, ctx.job, {"combined": name})


def publish_combined(
    report_md: str,
    client_factory: Callable[[], Any],
    *,
    name: str = "matrix",
    env: Mapping[str, str] | None = None,
) -> Published:
    """A matrix's combined report: the job summary and, on a pull request, one sticky
    comment of its own. No commit status: each leg keeps its own ``ci-ml/gates/<name>``."""
    ctx = read_context(env)
    out = Published()
    if append_summary(report_md, env) is not None:
        out.done.append("job summary written")
    pr = ctx.pull_request
    if not ctx.repository:
        out.warnings.append("not in GitHub Actions (GITHUB_REPOSITORY unset); nothing posted")
        return out
    if pr is None:
        out.done.append("not a pull request: no comment")
        return out
    if pr.is_fork and ctx.event_name == "pull_request":
        out.warnings.append(
            f"fork pull request #{pr.number}: its token is read-only, so the combined comment "
            "is in the job summary only (ml-publish.yml posts each leg's comment)"
        )
        return out
    try:
        client = client_factory()
    except CiMlError as exc:
        out.warnings.append(f"cannot post to GitHub ({exc}); {FIX}")
        return out
    with client:
        try:
            result = upsert_sticky_comment(
                client, ctx.repository, pr.number, report_md, combined_key(ctx, name)
            )
            out.done.append(f"combined comment {result.action} on #{pr.number}")
        except CiMlError as exc:
            out.warnings.append(f"could not post the combined comment ({exc}); {FIX}")
    return out


def _write_pr_file(run_dir: Path, ctx: ActionsContext, status_context: str, key: str) -> None:
    assert ctx.pull_request is not None
    handoff = PullRequestHandoff(
        repository=ctx.repository,
        number=ctx.pull_request.number,
        head_sha=ctx.head_sha,
        status_context=status_context,
        key=key,
        run_url=ctx.run_url,
    )
    write_record(run_dir, PR_FILE, handoff)


def _post(
    out: Published,
    client_factory: Callable[[], Any],
    repo: str,
    number: int | None,
    sha: str,
    report_md: str,
    gate_report: GateReport,
    status_context: str,
    key: str,
    run_url: str | None,
) -> None:
    try:
        client = client_factory()
    except CiMlError as exc:
        out.warnings.append(f"cannot post to GitHub ({exc}); {FIX}")
        return
    with client:
        if number is not None:
            try:
                result = upsert_sticky_comment(client, repo, number, report_md, key)
                out.done.append(f"comment {result.action} on #{number}")
            except CiMlError as exc:
                out.warnings.append(f"could not post the PR comment ({exc}); {FIX}")
        state = STATUS[gate_report.verdict]
        try:
            set_commit_status(
                client,
                repo,
                sha,
                state,
                status_description(gate_report),
                context=status_context,
                target_url=run_url,
            )
            out.done.append(f"status {status_context}={state} on {sha[:12]}")
        except CiMlError as exc:
            out.warnings.append(f"could not set the commit status ({exc}); {FIX}")


def _rerender(run_dir: Path, gate_report: GateReport, run_url: Any) -> str:
    """The report rebuilt from the JSON run files: a fork's own report.md is not trusted."""
    links = {"workflow run": str(run_url)} if isinstance(run_url, str) and run_url else None
    data_report = read_optional(run_dir, rundir.DATA_REPORT, DataReport)
    evaluation = read_optional(run_dir, rundir.EVALUATION, Evaluation)
    return render(gate_report, data_report, evaluation, links)


def publish_from(
    run_dir: Path,
    client_factory: Callable[[], Any],
    *,
    env: Mapping[str, str] | None = None,
) -> Published:
    """The ``workflow_run`` publisher: post a fork PR's report after checking its head."""
    ctx = read_context(env)
    record = read_optional(run_dir, PR_FILE, PullRequestHandoff)
    if record is None:
        raise BadInputError(f"{run_dir} has no {PR_FILE}: the gate job did not defer publishing.")
    expected = str((ctx.event.get("workflow_run") or {}).get("head_sha") or "")
    if not expected or record.head_sha != expected:
        raise BadInputError(
            f"{PR_FILE} names head {record.head_sha!r} but the workflow run was for "
            f"{expected or 'an unknown commit'}; refusing to publish a foreign report."
        )
    if record.repository != ctx.repository:
        raise BadInputError(f"{PR_FILE} is for {record.repository!r}, not {ctx.repository}.")
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    # the link comes from GitHub's event, not from the fork's artifact
    report_md = _rerender(
        run_dir, gate_report, (ctx.event.get("workflow_run") or {}).get("html_url")
    )
    out = Published()
    with client_factory() as client:
        pull = client.get(f"/repos/{ctx.repository}/pulls/{record.number}")
    if (pull.get("head") or {}).get("sha") != expected:
        out.warnings.append(
            f"pull request #{record.number} has moved on from {expected[:12]}; "
            "not posting a report about an older commit"
        )
        return out
    _post(
        out,
        client_factory,
        ctx.repository,
        record.number,
        expected,
        report_md,
        gate_report,
        record.status_context,
        record.key,
        ctx.run_url,
    )
    return out
