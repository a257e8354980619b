"""GitHub: the REST client, the Actions context, the sticky PR comment and commit statuses.

    client    GitHubClient: token, GITHUB_API_URL, retries, rate limits, pagination
    retry     when to try a request again, how long to wait, and the time budget
    actions   the run's context (event payload, PR), step outputs, job summary,
              annotations and masking
    comments  the sticky pull-request comment and the commit status

Only the standard library and ``requests`` are imported here, so the CLI can load it
cheaply.
"""

from ci_ml.github.actions import (
    ActionsContext,
    PullRequest,
    SummaryWrite,
    annotation,
    append_summary,
    mask_commands,
    read_context,
    set_output,
)
from ci_ml.github.client import GitHubClient, GitHubError
from ci_ml.github.comments import (
    CommentResult,
    StatusResult,
    set_commit_status,
    sticky_key,
    upsert_sticky_comment,
)
from ci_ml.github.retry import RetryPolicy

__all__ = [
    "ActionsContext",
    "CommentResult",
    "GitHubClient",
    "GitHubError",
    "PullRequest",
    "RetryPolicy",
    "StatusResult",
    "SummaryWrite",
    "annotation",
    "append_summary",
    "mask_commands",
    "read_context",
    "set_commit_status",
    "set_output",
    "sticky_key",
    "upsert_sticky_comment",
]
