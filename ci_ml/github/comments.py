"""The sticky pull-request comment and the commit status.

The sticky rule: each key (workflow, job, matrix entry; see :func:`sticky_key`) owns
one comment on the pull request. The comment starts with a hidden marker
``<!-- ci-ml:{key} -->``; the next run finds it again (through every page of the
comments) and edits it in place. It is created only when no comment carries the
marker, so runs never pile up comments, and two keys keep two comments.

GitHub refuses comments over 65,536 characters. A longer report loses its
``<details>`` sections from the end first, then its tail, with a note saying so;
the marker and the verdict line (the first line of the body) always stay.

These functions raise on failure; whether that fails the job is the caller's call
(posting a comment is best effort, see STYLE.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ci_ml.errors import BadInputError
from ci_ml.github.client import GitHubClient, GitHubError

COMMENT_LIMIT = 65_536
DESCRIPTION_LIMIT = 140
STATES = ("error", "failure", "pending", "success")
DROPPED_NOTE = (
    "\n\n_ci-ml left out {count} collapsed section(s) to stay within GitHub's "
    "65,536-character limit for comments; the job summary has the full report._\n"
)
CUT_NOTE = (
    "\n\n_… ci-ml cut this comment here to stay within GitHub's 65,536-character "
    "limit for comments; the job summary has the full report._\n"
)

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_DETAILS_TAG = re.compile(r"<details\b[^>]*>|</details\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class CommentResult:
    """What :func:`upsert_sticky_comment` did: created, updated or left unchanged."""

    action: Literal["created", "updated", "unchanged"]
    comment_id: int
    url: str
    truncated: bool


@dataclass(frozen=True)
class StatusResult:
    """The commit status GitHub recorded."""

    status_id: int
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None


def marker(key: str) -> str:
    """The hidden HTML comment that tags the sticky comment of ``key``."""
    if not key or len(key) > 200 or "--" in key or any(c in "<>" or ord(c) < 32 for c in key):
        raise BadInputError(
            f"sticky comment key {key!r} is not allowed; use 1 to 200 printable characters "
            "without '<', '>' or '--' (sticky_key() builds one)."
        )
    return f"<!-- ci-ml:{key} -->"


def sticky_key(workflow: str, job: str, matrix: Mapping[str, Any] | None = None) -> str:
    """A key for one job of one workflow (and one matrix entry), safe for :func:`marker`."""
    parts = [workflow, job, *(f"{k}={v}" for k, v in sorted((matrix or {}).items()))]
    key = "/".join(part.strip() for part in parts if str(part).strip())
    key = re.sub(r"[<>\x00-\x1f]", "_", key)
    return re.sub(r"-{2,}", "-", key)[:200] or "ci-ml"


def compose_comment(key: str, body: str, limit: int = COMMENT_LIMIT) -> tuple[str, bool]:
    """The comment text (marker, then body) within ``limit``; (text, was it shortened)."""
    head = marker(key) + "\n"
    if len(head) + len(body) <= limit:
        return head + body, False
    return head + shrink(body, limit - len(head)), True


def shrink(body: str, room: int) -> str:
    """Drop ``<details>`` sections from the end, then cut the tail, until ``body`` fits."""
    verdict_end = _verdict_end(body)
    sections = [s for s in _details_spans(body) if s[0] >= verdict_end]
    dropped = 0
    while sections:
        start, end = sections.pop()
        body = body[:start].rstrip("\n") + "\n" + body[end:].lstrip("\n")
        dropped += 1
        note = DROPPED_NOTE.format(count=dropped)
        if len(body) + len(note) <= room:
            return body + note
    return _cut(body, room)


def _verdict_end(body: str) -> int:
    """Where the verdict line (the first non-blank line) ends."""
    start = len(body) - len(body.lstrip())
    end = body.find("\n", start)
    return len(body) if end < 0 else end


def _details_spans(body: str) -> list[tuple[int, int]]:
    """(start, end) of each outermost, closed ``<details>…</details>`` section."""
    spans, depth, start = [], 0, 0
    for tag in _DETAILS_TAG.finditer(body):
        if not tag.group().startswith("</"):
            start = tag.start() if depth == 0 else start
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                spans.append((start, tag.end()))
    return spans


def _cut(body: str, room: int) -> str:
    """Keep the verdict line and as much of the rest as fits, then the note."""
    verdict_end = _verdict_end(body)
    keep = room - len(CUT_NOTE) - 4  # 4: room to close an open code fence
    if keep <= verdict_end:
        return (body[:verdict_end][: max(room - len(CUT_NOTE), 0)] + CUT_NOTE)[:room]
    kept = body[:keep]
    if kept.count("```") % 2:
        kept += "\n```"
    return kept + CUT_NOTE


def _check_target(repo: str, number: int) -> None:
    if not _REPO.fullmatch(repo):
        raise BadInputError(f"repository {repo!r} is not OWNER/NAME (e.g. octocat/Hello-World).")
    if number < 1:
        raise BadInputError(f"pull request number {number} is not a positive number.")


def find_sticky_comment(
    client: GitHubClient, repo: str, pr_number: int, key: str
) -> dict[str, Any] | None:
    """The oldest comment on the pull request that starts with ``key``'s marker, if any."""
    _check_target(repo, pr_number)
    tag = marker(key)
    for comment in client.paginate(f"/repos/{repo}/issues/{pr_number}/comments"):
        if (comment.get("body") or "").lstrip().startswith(tag):
            return dict(comment)
    return None


def upsert_sticky_comment(
    client: GitHubClient, repo: str, pr_number: int, body: str, key: str
) -> CommentResult:
    """Create or edit in place the one comment of ``key`` on a pull request."""
    text, truncated = compose_comment(key, body)
    existing = find_sticky_comment(client, repo, pr_number, key)
    if existing is not None and existing.get("body") == text:
        return CommentResult("unchanged", existing["id"], existing["html_url"], truncated)
    if existing is not None:
        try:
            path = f"/repos/{repo}/issues/comments/{existing['id']}"
            edited = client.patch(path, {"body": text})
            return CommentResult("updated", edited["id"], edited["html_url"], truncated)
        except GitHubError as exc:
            if exc.status != 404:  # 404: deleted since we listed it; make it anew
                raise
    made = client.post(f"/repos/{repo}/issues/{pr_number}/comments", {"body": text})
    return CommentResult("created", made["id"], made["html_url"], truncated)


def shorten(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis when longer."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def set_commit_status(
    client: GitHubClient,
    repo: str,
    sha: str,
    state: str,
    description: str,
    context: str = "ci-ml/gates",
    target_url: str | None = None,
) -> StatusResult:
    """Set the commit status ``context`` of ``sha`` (description cut to 140 characters)."""
    if state not in STATES:
        raise BadInputError(f"commit status state {state!r} is not one of {', '.join(STATES)}.")
    if not _SHA.fullmatch(sha):
        raise BadInputError(f"commit {sha!r} is not a full lower-case hex sha.")
    _check_target(repo, 1)
    payload = {"state": state, "description": shorten(description), "context": context}
    if target_url:
        payload["target_url"] = target_url
    made = client.post(f"/repos/{repo}/statuses/{sha}", payload)
    return StatusResult(
        status_id=made["id"],
        sha=sha,
        state=made["state"],
        context=made["context"],
        description=made.get("description") or "",
        target_url=made.get("target_url"),
    )
