"""The human report (``report.md``): verdict first, then gates, data checks, metrics.

Plain GitHub-flavoured Markdown, so the same text serves as the PR comment and
the job summary. Long detail goes in ``<details>`` blocks, which a size cap
may drop from the end without losing the verdict.
"""

from __future__ import annotations

from typing import Any

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def headline(gate_report: dict[str, Any]) -> str:
    """The first line: the verdict and the first reason."""
    verdict = gate_report["verdict"]
    reasons = gate_report.get("reasons") or []
    why = f" — {reasons[0]}" if reasons else ""
    return f"## {ICONS.get(verdict, '')} ci-ml verdict: **{verdict.upper()}**{why}"


def render(
    gate_report: dict[str, Any],
    data_report: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    links: dict[str, str] | None = None,
) -> str:
    """The whole report as Markdown."""
    lines = [headline(gate_report), ""]
    lines += _summary(gate_report)
    lines += _gates(gate_report)
    if evaluation:
        lines += _metrics(evaluation)
    if data_report:
        lines += _data(data_report)
    lines += _details(gate_report, evaluation)
    if links:
        lines += ["", " · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines).rstrip() + "\n"


def _summary(gate_report: dict[str, Any]) -> list[str]:
    candidate = gate_report.get("candidate") or {}
    baseline = gate_report.get("baseline") or {}
    digest = (candidate.get("digest") or "")[:12] or "—"
    prod = baseline.get("version") or "none (first model)"
    return [
        f"Candidate `{digest}` · production {prod} · data `{gate_report.get('data_version', '—')}`",
        "",
    ]


def _gates(gate_report: dict[str, Any]) -> list[str]:
    rows = [
        [f"{ICONS.get(g['verdict'], '')} {g['verdict']}", g["name"], g["rule"], g["reason"]]
        for g in gate_report.get("gates", [])
    ]
    return ["### Gates", "", *_table(["verdict", "gate", "rule", "result"], rows), ""]


def _metrics(evaluation: dict[str, Any]) -> list[str]:
    metrics = evaluation.get("candidate", {}).get("metrics", {})
    rows = [[name, value] for name, value in metrics.items()]
    rows_text = f"{evaluation.get('rows', {}).get('holdout', '?')} holdout rows"
    return [f"### Metrics ({rows_text})", "", *_table(["metric", "candidate"], rows), ""]


def _data(data_report: dict[str, Any]) -> list[str]:
    checks = data_report.get("checks", [])
    failed = [c for c in checks if not c["success"]]
    title = f"### Data checks: {len(checks) - len(failed)} of {len(checks)} passed"
    rows = [_check_row(c) for c in checks]
    table = _table(
        ["", "check", "column", "severity", "unexpected %", "sample of bad values"], rows
    )
    if not failed:
        return [
            title,
            "",
            "<details><summary>All checks</summary>",
            "",
            *table,
            "",
            "</details>",
            "",
        ]
    return [title, "", *table, ""]


def _check_row(check: dict[str, Any]) -> list[Any]:
    mark = "✅" if check["success"] else ("❌" if check["severity"] == "critical" else "⚠️")
    sample = ", ".join(_fmt(v) for v in check.get("sample") or [])[:120]
    return [
        mark,
        check["name"],
        check.get("column"),
        check["severity"],
        check.get("unexpected_percent"),
        sample or None,
    ]


def _details(gate_report: dict[str, Any], evaluation: dict[str, Any] | None) -> list[str]:
    model = (evaluation or {}).get("model") or {}
    params = model.get("params") or {}
    if not params:
        return []
    rows = [[k, v] for k, v in sorted(params.items())]
    return [
        "<details><summary>Model parameters</summary>",
        "",
        f"Estimator `{model.get('estimator')}`",
        "",
        *_table(["param", "value"], rows),
        "",
        "</details>",
    ]
