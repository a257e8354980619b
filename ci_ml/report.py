"""The human report (``report.md``): verdict first, then gates, data checks, metrics.

Plain GitHub-flavoured Markdown, so the same text serves as the PR comment and
the job summary. Long detail goes in ``<details>`` blocks, which a size cap
may drop from the end without losing the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ci_ml.charts import metrics_chart
from ci_ml.evaluation.metrics import METRICS
from ci_ml.records import (
    Comparison,
    DataCheck,
    DataReport,
    Evaluation,
    GateEntry,
    GateReport,
    SliceEntry,
)

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _fmt(value: Any) -> str:
    """A table cell: escaped once here, so callers pass plain text."""
    return _text(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; cells are escaped here, so callers pass plain values."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def headline(gate_report: GateReport) -> str:
    """The first line: the verdict alone (the reasons follow as a list)."""
    verdict = gate_report.verdict
    return f"## {ICONS.get(verdict, '')} ci-ml verdict: **{verdict.upper()}**"


def _reasons(gate_report: GateReport) -> list[str]:
    reasons = gate_report.reasons
    return [*(f"- {r}" for r in reasons), ""] if reasons else []


def render(
    gate_report: GateReport,
    data_report: DataReport | None,
    evaluation: Evaluation | None,
    links: dict[str, str] | None = None,
) -> str:
    """The whole report as Markdown."""
    lines = [headline(gate_report), ""]
    lines += _reasons(gate_report)
    lines += _summary(gate_report)
    lines += _gates(gate_report)
    if evaluation:
        lines += _metrics(evaluation, gate_report)
        lines += [*metrics_chart(evaluation), ""]
        lines += _slices(evaluation, gate_report)
    if data_report:
        lines += _data(data_report)
    lines += _changes(evaluation)
    if links:
        lines += ["", " · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines).rstrip() + "\n"


def _summary(gate_report: GateReport) -> list[str]:
    digest = (gate_report.candidate.digest or "")[:12] or "—"
    baseline = gate_report.baseline
    prod = (baseline.version if baseline else None) or "none (first model)"
    return [
        f"Candidate `{digest}` · production {prod} · data `{gate_report.data_version}`",
        "",
    ]


def _gates(gate_report: GateReport) -> list[str]:
    rows = [[ICONS.get(g.verdict, g.verdict), g.name, g.reason] for g in gate_report.gates]
    rules = [[g.name, g.rule] for g in gate_report.gates]
    return [
        "### Gates",
        "",
        *table(["", "gate", "result"], rows),
        "",
        "<details><summary>The rules in full</summary>",
        "",
        *table(["gate", "rule"], rules),
        "",
        "</details>",
        "",
    ]


def _metrics(evaluation: Evaluation, gate_report: GateReport) -> list[str]:
    candidate = evaluation.candidate
    metrics = {**candidate.metrics, **_present(candidate.operational.model_dump())}
    comparisons = evaluation.comparisons
    by_metric = _gates_by_metric(gate_report)
    first = next(iter(comparisons.values()), None)
    confidence = first.confidence if first else 0.95
    rows_text = f"{evaluation.rows.holdout} holdout rows"
    baseline = evaluation.baseline
    if baseline is not None and baseline.rows_excluded:
        rows_text = (
            f"{baseline.rows_compared} of {evaluation.rows.holdout} holdout rows; the "
            f"{baseline.rows_excluded} production trained on are left out"
        )
    header = ["metric", "production", "candidate", "Δ", f"{confidence:.0%} CI", "rule"]
    rows = []
    for name, value in metrics.items():
        comp = comparisons.get(name)
        higher = METRICS[name].higher_is_better if name in METRICS else False
        gates = by_metric.get(name, [])
        rule = " · ".join(f"{ICONS.get(g.verdict, '')} {g.short}" for g in gates)
        rows.append(
            [
                name,
                comp.production if comp else None,
                comp.candidate if comp else value,
                _delta(comp.delta, higher) if comp else None,
                _interval(comp),
                rule or None,
            ]
        )
    return [f"### Metrics ({rows_text}, same rows for both models)", "", *table(header, rows), ""]


def _delta(delta: float, higher: bool) -> str:
    if delta == 0:
        return "±0"
    better = (delta > 0) == higher
    return f"{delta:+.4f} {'▲ better' if better else '▼ worse'}"


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _interval(comp: Comparison | None) -> str | None:
    if not comp:
        return None
    return f"[{comp.ci_low:+.3f}, {comp.ci_high:+.3f}]"


def _gates_by_metric(gate_report: GateReport) -> dict[str, list[GateEntry]]:
    out: dict[str, list[GateEntry]] = {}
    for g in gate_report.gates:
        if g.metric and "[" not in g.name:
            out.setdefault(g.metric, []).append(g)
    return out


def _slices(evaluation: Evaluation, gate_report: GateReport) -> list[str]:
    slices = evaluation.slices
    if not slices:
        return []
    gated = [g.metric for g in gate_report.gates if g.metric]
    sliced = [g.metric for g in gate_report.gates if g.metric and "[" in g.name]
    computed = [m for e in slices for m in e.metrics]
    metric = next(iter(sliced + [m for m in gated if m in computed] + computed), None)
    verdicts = {
        g.name.split("[", 1)[1].rstrip("]"): g.verdict for g in gate_report.gates if "[" in g.name
    }
    rows = []
    for entry in sorted(slices, key=lambda e: _slice_order(e, metric)):
        comp = entry.comparisons.get(metric or "")
        key = f"{entry.column}={entry.value}"
        counts = entry.class_counts
        rows.append(
            [
                key,
                entry.n,
                f"{counts['positive']} / {counts['negative']}" if counts else None,
                entry.metrics.get(metric or ""),
                f"{comp.delta:+.4f}" if comp else None,
                _interval(comp),
                ICONS.get(verdicts.get(key, ""), "") or (entry.reason or None),
            ]
        )
    header = ["slice", "rows", "pos / neg", metric or "metric", "Δ", "CI (Bonferroni)", "verdict"]
    keep = [i for i in range(len(header)) if any(r[i] is not None for r in rows)]
    rows = [[r[i] for i in keep] for r in rows]
    header = [header[i] for i in keep]
    return [f"### Slices, worst first ({metric})", "", *table(header, rows), ""]


def _slice_order(entry: SliceEntry, metric: str | None) -> tuple[int, float]:
    """Judged slices first, the largest drop first; then by the metric, lowest first."""
    comp = entry.comparisons.get(metric or "")
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
    sign = 1 if higher else -1
    if comp:
        return (0, sign * comp.delta)
    value = entry.metrics.get(metric or "")
    return (1 if entry.judged else 2, sign * value if value is not None else 0.0)


def _data(data_report: DataReport) -> list[str]:
    checks = data_report.checks
    failed = [c for c in checks if not c.success]
    title = f"### Data checks: {len(checks) - len(failed)} of {len(checks)} passed"
    rows = [_check_row(c) for c in checks]
    shown = table(["", "check", "column", "severity", "unexpected %", "sample of bad values"], rows)
    if not failed:
        return [
            title,
            "",
            "<details><summary>All checks</summary>",
            "",
            *shown,
            "",
            "</details>",
            "",
        ]
    return [title, "", *shown, ""]


def _check_row(check: DataCheck) -> list[Any]:
    mark = "✅" if check.success else ("❌" if check.severity == "critical" else "⚠️")
    sample = ", ".join("null" if v is None else _text(v) for v in check.sample)
    sample = sample[:120]
    return [
        mark,
        check.name,
        check.column,
        check.severity,
        _percent(check.unexpected_percent),
        sample or None,
    ]


def _percent(value: Any) -> str | None:
    if value is None:
        return None
    return "0" if value == 0 else f"{value:.4g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _changes(evaluation: Evaluation | None) -> list[str]:
    """Changed hyperparameters and the data version, production → candidate."""
    if not evaluation:
        return []
    model = evaluation.model
    baseline = evaluation.baseline
    params = model.params
    before = (baseline.params if baseline else None) or {}
    rows = [
        [k, _fmt(before.get(k)) if baseline else None, _fmt(params.get(k))]
        for k in sorted(set(params) | set(before))
        if not baseline or before.get(k) != params.get(k)
    ]
    data_rows = []
    if baseline:
        old, new = baseline.data_version, evaluation.data_version
        data_rows = [["data version", old, f"{new}{' (unchanged)' if old == new else ''}"]]
    title = "Changes vs production" if baseline else "Model parameters"
    differ = "differs" if len(rows) == 1 else "differ"
    summary = f"{title}: {_plural(len(rows), 'hyperparameter')} {differ}" if baseline else title
    return [
        f"<details><summary>{summary}</summary>",
        "",
        f"Estimator `{model.estimator}`",
        "",
        *table(["", "production", "candidate"], data_rows + rows),
        "",
        "</details>",
        "",
    ]
