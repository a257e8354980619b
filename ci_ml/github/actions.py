"""The GitHub Actions context: what started the run, and how a step talks back.

Reading: :func:`read_context` turns the ``GITHUB_*`` variables and the event payload
(``GITHUB_EVENT_PATH``) into an :class:`ActionsContext`, with the pull request (number,
head sha, from a fork or not) when there is one.

Writing: :func:`set_output` (``GITHUB_OUTPUT``, multi-line safe), :func:`append_summary`
(``GITHUB_STEP_SUMMARY``, kept under GitHub's 1 MiB), and the workflow commands
:func:`annotation` and :func:`mask_commands`, which return the lines for the caller to
print on stdout (the library prints nothing by itself).

Everything takes the environment as a mapping (``os.environ`` when omitted), so tests
pass a plain dict.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ci_ml.errors import BadInputError

SUMMARY_LIMIT = 1024 * 1024
SUMMARY_NOTE = (
    "\n\n> [!WARNING]\n> ci-ml cut this summary here: GitHub keeps at most 1 MiB of job "
    "summary per step. The full report is `report.md` in the run directory.\n"
)
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
Level = Literal["error", "warning", "notice", "debug"]


@dataclass(frozen=True)
class PullRequest:
    """The pull request a run is about. ``head_sha`` is None when the event does not say."""

    number: int
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    is_fork: bool = False


@dataclass(frozen=True)
class ActionsContext:
    """Who started the run, on what, and where its page is."""

    event_name: str = ""
    repository: str = ""
    sha: str = ""
    ref: str = ""
    run_id: str = ""
    run_attempt: str = ""
    server_url: str = "https://github.com"
    workflow: str = ""
    job: str = ""
    in_actions: bool = False
    pull_request: PullRequest | None = None
    event: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def run_url(self) -> str | None:
        """The page of this workflow run, or None outside Actions."""
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @property
    def head_sha(self) -> str:
        """The commit the author pushed: the PR head, not the merge commit in ``GITHUB_SHA``."""
        if self.pull_request is not None and self.pull_request.head_sha:
            return self.pull_request.head_sha
        return self.sha


def read_context(env: Mapping[str, str] | None = None) -> ActionsContext:
    """The run's context from the environment (empty fields outside Actions)."""
    env = os.environ if env is None else env
    event_name = env.get("GITHUB_EVENT_NAME", "")
    event = load_event(env.get("GITHUB_EVENT_PATH"))
    return ActionsContext(
        event_name=event_name,
        repository=env.get("GITHUB_REPOSITORY", ""),
        sha=env.get("GITHUB_SHA", ""),
        ref=env.get("GITHUB_REF", ""),
        run_id=env.get("GITHUB_RUN_ID", ""),
        run_attempt=env.get("GITHUB_RUN_ATTEMPT", ""),
        server_url=env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        workflow=env.get("GITHUB_WORKFLOW", ""),
        job=env.get("GITHUB_JOB", ""),
        in_actions=env.get("GITHUB_ACTIONS") == "true",
        pull_request=pull_request_from_event(event_name, event),
        event=event,
    )


def load_event(path: str | None) -> dict[str, Any]:
    """The webhook payload at ``GITHUB_EVENT_PATH`` ({} when the variable is unset)."""
    if not path:
        return {}
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"GITHUB_EVENT_PATH {path} is not a readable JSON event payload "
            f"({type(exc).__name__}); unset it outside GitHub Actions."
        ) from None
    if not isinstance(payload, dict):
        raise BadInputError(f"GITHUB_EVENT_PATH {path} holds no JSON object; unset it.")
    return payload


def pull_request_from_event(event_name: str, event: Mapping[str, Any]) -> PullRequest | None:
    """The pull request in a payload: PR events, comments on a PR, and workflow_run."""
    if event_name in PULL_REQUEST_EVENTS and isinstance(event.get("pull_request"), dict):
        pr = event["pull_request"]
        head, base = pr.get("head") or {}, pr.get("base") or {}
        return PullRequest(
            number=int(pr["number"]),
            head_sha=head.get("sha"),
            head_ref=head.get("ref"),
            base_ref=base.get("ref"),
            is_fork=_full_name(head.get("repo")) != _full_name(base.get("repo")),
        )
    issue = event.get("issue")
    if event_name == "issue_comment" and isinstance(issue, dict) and issue.get("pull_request"):
        return PullRequest(number=int(issue["number"]))
    if event_name == "workflow_run" and isinstance(event.get("workflow_run"), dict):
        return _from_workflow_run(event["workflow_run"], event.get("repository"))
    return None


def _from_workflow_run(run: Mapping[str, Any], repository: Any) -> PullRequest | None:
    # GitHub leaves pull_requests empty for runs from forks; nothing to comment on then.
    pulls = run.get("pull_requests") or []
    if not pulls:
        return None
    return PullRequest(
        number=int(pulls[0]["number"]),
        head_sha=run.get("head_sha"),
        head_ref=run.get("head_branch"),
        base_ref=(pulls[0].get("base") or {}).get("ref"),
        is_fork=_full_name(run.get("head_repository")) != _full_name(repository),
    )


def _full_name(repo: Any) -> str | None:
    # A deleted fork shows up as a null repo: treat it as foreign.
    return repo.get("full_name") if isinstance(repo, dict) else None


# -- step outputs and job summary ---------------------------------------------------------

_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_output(name: str, value: str, delimiter: str | None = None) -> str:
    """One ``GITHUB_OUTPUT`` entry in heredoc form, with a delimiter not found in ``value``."""
    if not _OUTPUT_NAME.fullmatch(name):
        raise BadInputError(
            f"step output name {name!r} is not allowed; use letters, digits, '_' and '-'."
        )
    if delimiter is None:
        delimiter = f"ci_ml_{uuid.uuid4().hex}"
        while delimiter in value:  # practically never, but then the value would end early
            delimiter = f"ci_ml_{uuid.uuid4().hex}"
    elif delimiter in value or "\n" in delimiter:
        raise BadInputError(f"output delimiter {delimiter!r} occurs in the value of {name}.")
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def set_output(name: str, value: str, env: Mapping[str, str] | None = None) -> bool:
    """Append a step output to ``GITHUB_OUTPUT``; False when not in Actions."""
    path = (os.environ if env is None else env).get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(format_output(name, value))
    return True


def fit_summary(markdown: str, room: int) -> tuple[str, bool]:
    """``markdown`` cut to ``room`` UTF-8 bytes with a note when cut; (text, was it cut)."""
    data = markdown.encode("utf-8")
    if len(data) <= room:
        return markdown, False
    note = SUMMARY_NOTE.encode("utf-8")
    if room < len(note):
        return "", True
    kept = data[: room - len(note)].decode("utf-8", errors="ignore")
    return kept + SUMMARY_NOTE, True


@dataclass(frozen=True)
class SummaryWrite:
    """What :func:`append_summary` wrote: where, how many bytes, and whether it cut."""

    path: str
    written: int
    truncated: bool


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> SummaryWrite | None:
    """Append Markdown to the job summary (``GITHUB_STEP_SUMMARY``); None when not in Actions.

    The step's summary file is kept within GitHub's 1 MiB: what does not fit is cut
    and a note says so.
    """
    path = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    used = os.path.getsize(path) if os.path.exists(path) else 0
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    kept, truncated = fit_summary(text, SUMMARY_LIMIT - used)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(kept)
    return SummaryWrite(path, len(kept.encode("utf-8")), truncated)


# -- workflow commands --------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    message: str,
    level: Level = "error",
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    end_column: int | None = None,
    title: str | None = None,
) -> str:
    """The ``::error file=…,line=…,title=…::message`` line for the caller to print."""
    if level == "debug":
        return f"::debug::{escape_data(message)}"
    given = {
        "file": file,
        "line": line,
        "endLine": end_line,
        "col": col,
        "endColumn": end_column,
        "title": title,
    }
    properties = ",".join(
        f"{key}={escape_property(str(value))}" for key, value in given.items() if value is not None
    )
    return f"::{level}{' ' + properties if properties else ''}::{escape_data(message)}"


def mask_commands(secret: str) -> list[str]:
    """``::add-mask::`` lines hiding a secret in the log, one per line of a multi-line secret."""
    parts = [secret, *secret.splitlines()] if "\n" in secret or "\r" in secret else [secret]
    return [f"::add-mask::{escape_data(part)}" for part in parts if part.strip()]
