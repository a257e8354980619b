"""The Actions context and workflow commands, over GitHub's published event payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_ml.errors import BadInputError
from ci_ml.github.actions import (
    SUMMARY_LIMIT,
    annotation,
    append_summary,
    escape_data,
    escape_property,
    format_output,
    mask_commands,
    read_context,
    set_output,
)
from tests.workflow_runner.runner import read_file_command


def write_event(env, payload, name):
    Path(env["GITHUB_EVENT_PATH"]).write_text(json.dumps(payload), encoding="utf-8")
    return {**env, "GITHUB_EVENT_NAME": name}


def test_pull_request_context(github_env, github_webhooks):
    published = github_webhooks("pull_request", "opened")["pull_request"]

    context = read_context(github_env)

    assert context.in_actions
    assert context.event_name == "pull_request"
    assert context.repository == "Codertocat/Hello-World"
    assert context.pull_request is not None
    assert context.pull_request.number == published["number"] == 2
    assert context.pull_request.head_sha == published["head"]["sha"]
    assert context.pull_request.base_ref == "master"
    assert not context.pull_request.is_fork
    # statuses go on the commit the author pushed, not on the merge commit in GITHUB_SHA
    assert context.head_sha == published["head"]["sha"] != github_env["GITHUB_SHA"]
    assert context.run_url == "https://github.com/Codertocat/Hello-World/actions/runs/4242"
    assert (context.workflow, context.job, context.run_id) == ("ci-ml", "gate", "4242")


@pytest.mark.parametrize("head_repo", [{"full_name": "forker/Hello-World"}, None])
def test_pull_request_from_a_fork(github_env, github_webhooks, head_repo):
    payload = github_webhooks("pull_request", "synchronize")
    if head_repo is None:  # the fork was deleted
        payload["pull_request"]["head"]["repo"] = None
    else:
        payload["pull_request"]["head"]["repo"].update(head_repo)

    context = read_context(write_event(github_env, payload, "pull_request_target"))

    assert context.pull_request is not None and context.pull_request.is_fork


def test_push_has_no_pull_request(github_env, github_webhooks):
    payload = github_webhooks("push", where=lambda e: e["ref"] == "refs/heads/master")
    env = write_event(github_env, payload, "push")

    context = read_context({**env, "GITHUB_SHA": payload["after"]})

    assert context.pull_request is None
    assert context.head_sha == payload["after"]


def test_comment_on_a_pull_request(github_env, github_webhooks):
    payload = github_webhooks("issue_comment", "created")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}

    context = read_context(write_event(github_env, payload, "issue_comment"))

    assert context.pull_request is not None
    assert (context.pull_request.number, context.pull_request.head_sha) == (1, None)


def test_workflow_run_for_a_pull_request(github_env, github_webhooks):
    payload = github_webhooks(
        "workflow_run", "completed", lambda e: e["workflow_run"]["pull_requests"]
    )

    context = read_context(write_event(github_env, payload, "workflow_run"))

    assert context.pull_request is not None
    assert context.pull_request.number == 2
    assert context.pull_request.head_sha == payload["workflow_run"]["head_sha"]
    assert not context.pull_request.is_fork


def test_outside_actions_and_broken_payloads(tmp_path):
    context = read_context({})
    assert (context.in_actions, context.pull_request, context.run_url) == (False, None, None)

    broken = tmp_path / "event.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInputError, match="not a readable JSON event payload"):
        read_context({"GITHUB_EVENT_PATH": str(broken)})


def test_outputs_are_multi_line_safe(github_env):
    tricky = "line one\nEOF\nci_ml_deadbeef\n\nlast line"

    assert set_output("verdict", "pass", github_env)
    assert set_output("report", tricky, github_env)

    assert read_file_command(Path(github_env["GITHUB_OUTPUT"])) == {
        "verdict": "pass",
        "report": tricky,
    }


def test_output_names_and_delimiters_are_checked():
    assert not set_output("verdict", "pass", {})
    with pytest.raises(BadInputError, match="not allowed"):
        format_output("bad name\n", "x")
    with pytest.raises(BadInputError, match="occurs in the value"):
        format_output("report", "a\nEND\nb", delimiter="END")
    entry = format_output("report", "x")
    delimiter = entry.split("\n")[0].split("<<")[1]
    assert entry == f"report<<{delimiter}\nx\n{delimiter}\n"
    assert delimiter != format_output("report", "x").split("\n")[0].split("<<")[1]


def test_summary_is_appended(github_env):
    first = append_summary("## ci-ml\n", github_env)
    second = append_summary("| gate | verdict |", github_env)

    assert first is not None and second is not None and not second.truncated
    text = Path(github_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert text == "## ci-ml\n| gate | verdict |\n"
    assert append_summary("x", {}) is None


def test_summary_is_capped_at_one_mebibyte(github_env):
    path = Path(github_env["GITHUB_STEP_SUMMARY"])
    path.write_text("a" * (SUMMARY_LIMIT - 5000), encoding="utf-8")

    written = append_summary("é" * 10_000, github_env)  # 20,000 bytes of two-byte characters

    assert written is not None and written.truncated
    data = path.read_bytes()
    assert len(data) <= SUMMARY_LIMIT
    assert "cut this summary here" in data.decode("utf-8")  # and no character split in two


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        ("50% done", "50%25 done", "50%25 done"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("src/a,b.py: x", "src/a,b.py: x", "src/a%2Cb.py%3A x"),
        ("%0A", "%250A", "%250A"),
    ],
)
def test_workflow_command_escaping(text, data, prop):
    assert escape_data(text) == data
    assert escape_property(text) == prop


def test_annotation_lines():
    line = annotation(
        "AUC fell by 3%\nsee report", file="models/a,b.py", line=3, end_line=4, title="gate: auc"
    )
    assert line == (
        "::error file=models/a%2Cb.py,line=3,endLine=4,title=gate%3A auc"
        "::AUC fell by 3%25%0Asee report"
    )
    assert annotation("drift", "warning") == "::warning::drift"
    assert annotation("x", "notice", col=2, end_column=5) == "::notice col=2,endColumn=5::x"
    assert annotation("a:b\nc", "debug", file="ignored.py") == "::debug::a:b%0Ac"


def test_mask_commands():
    assert mask_commands("s3cr3t") == ["::add-mask::s3cr3t"]
    assert mask_commands("line1\nline2\n") == [
        "::add-mask::line1%0Aline2%0A",
        "::add-mask::line1",
        "::add-mask::line2",
    ]
    assert mask_commands("") == []
