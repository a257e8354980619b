"""The human report (``report.md``): verdict first, then gates, data checks, metrics.

Plain GitHub-flavoured Markdown, so the same text serves as the PR comment and
the job summary. Long detail goes in ``<details>`` blocks, which a size cap
may drop from the end without losing the verdict.
"""

from __future__ import annotations

from typing import Any

from ci_ml.errors import ConfigError
from ci_ml.gates import higher_is_better
from ci_ml.records import (
    Curve,
    DataCheck,
    DataReport,
    Evaluation,
    GateEntry,
    GateReport,
    SliceEntry,
)
from ci_ml.report.changes import model_params_section, what_changed_section
from ci_ml.report.charts import CURVE_LOOKS, curve_chart, metrics_chart
from ci_ml.report.classes import confusion_section, per_class_section
from ci_ml.report.markdown import (
    ICONS,
    delta_text,
    folded,
    interval_text,
    percent,
    present,
    shown,
    table,
)

SLICE_MARK = " ["  # a slice gate is named "<metric> change [column=value]"


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
        lines += what_changed_section(evaluation.changes)
        lines += _curves(evaluation)
        lines += per_class_section(evaluation)
        lines += confusion_section(evaluation)
        lines += _slices(evaluation, gate_report)
    if data_report:
        lines += _data(data_report)
    lines += model_params_section(evaluation)
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
    metrics = {**candidate.metrics, **present(candidate.operational.model_dump())}
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
        higher = _higher(name, evaluation, default=False)
        gates = by_metric.get(name, [])
        rule = " · ".join(f"{ICONS.get(g.verdict, '')} {g.short}" for g in gates)
        rows.append(
            [
                name,
                comp.production if comp else None,
                comp.candidate if comp else value,
                delta_text(comp.delta, higher) if comp else None,
                interval_text(comp),
                rule or None,
            ]
        )
    title = f"### Metrics ({rows_text}, same rows for both models)"
    return [title, "", *table(header, rows), "", *_streamed(evaluation)]


def _streamed(evaluation: Evaluation) -> list[str]:
    """What a holdout streamed by engine duckdb or spark left out (docs/data.md)."""
    streamed = evaluation.streamed
    if streamed is None:
        return []
    notes = "; ".join(streamed.left_out)
    return [
        f"> **Streamed holdout**: {streamed.rows} rows in batches of {streamed.batch_rows}, "
        f"{streamed.passes} pass(es), never loaded whole. Left out: {notes}.",
        "",
    ]


def _higher(metric: str | None, evaluation: Evaluation, default: bool) -> bool:
    """Whether ``metric`` is better higher (``default`` for operational or unknown names)."""
    try:
        return higher_is_better(metric or "", evaluation.classes)
    except (KeyError, ConfigError):
        return default


def _gates_by_metric(gate_report: GateReport) -> dict[str, list[GateEntry]]:
    out: dict[str, list[GateEntry]] = {}
    for g in gate_report.gates:
        if g.metric and SLICE_MARK not in g.name:
            out.setdefault(g.metric, []).append(g)
    return out


def _slices(evaluation: Evaluation, gate_report: GateReport) -> list[str]:
    slices = evaluation.slices
    if not slices:
        return []
    gated = [g.metric for g in gate_report.gates if g.metric]
    sliced = [g.metric for g in gate_report.gates if g.metric and SLICE_MARK in g.name]
    computed = [m for e in slices for m in e.metrics]
    metric = next(iter(sliced + [m for m in gated if m in computed] + computed), None)
    verdicts = {
        g.name.split(SLICE_MARK, 1)[1].rstrip("]"): g.verdict
        for g in gate_report.gates
        if SLICE_MARK in g.name
    }
    rows = []
    higher = _higher(metric, evaluation, default=True)
    for entry in sorted(slices, key=lambda e: _slice_order(e, metric, higher)):
        comp = entry.comparisons.get(metric or "")
        key = f"{entry.column}={entry.value}"
        counts = entry.class_counts
        rows.append(
            [
                key,
                entry.n,
                _class_counts(counts),
                entry.metrics.get(metric or ""),
                f"{comp.delta:+.4f}" if comp else None,
                interval_text(comp),
                ICONS.get(verdicts.get(key, ""), "") or (entry.reason or None),
            ]
        )
    counted = "fewest of a class" if evaluation.multiclass else "pos / neg"
    header = ["slice", "rows", counted, metric or "metric", "Δ", "CI (Bonferroni)", "verdict"]
    keep = [i for i in range(len(header)) if any(r[i] is not None for r in rows)]
    rows = [[r[i] for i in keep] for r in rows]
    header = [header[i] for i in keep]
    return [f"### Slices, worst first ({metric})", "", *table(header, rows), ""]


def _class_counts(counts: dict[str, int] | None) -> str | None:
    """A slice's rows by class: positive / negative, or (multiclass) its rarest class."""
    if not counts:
        return None
    if set(counts) == {"positive", "negative"}:
        return f"{counts['positive']} / {counts['negative']}"
    label = min(counts, key=lambda c: counts[c])
    return f"{counts[label]} ({label})"


def _slice_order(entry: SliceEntry, metric: str | None, higher: bool) -> tuple[int, float]:
    """Judged slices first, the largest drop first; then by the metric, lowest first."""
    comp = entry.comparisons.get(metric or "")
    sign = 1 if higher else -1
    if comp:
        return (0, sign * comp.delta)
    value = entry.metrics.get(metric or "")
    return (1 if entry.judged else 2, sign * value if value is not None else 0.0)


def _curves(evaluation: Evaluation) -> list[str]:
    """The curves as line charts, candidate vs production on the same rows, folded."""
    curves = evaluation.curves or []
    if not curves:
        return []
    baseline = evaluation.baseline
    rows = (baseline.rows_compared if baseline else None) or evaluation.rows.holdout
    compared = any(c.production is not None for c in curves)
    whose = "candidate vs production, the same" if compared else "the candidate on"
    titles = [CURVE_LOOKS[c.name].title for c in curves]
    names = ", ".join(t if t.isupper() else t.lower() for t in titles)
    body: list[str] = []
    for curve in curves:
        body += [*curve_chart(curve), "", *_bin_notes(curve)]
    return folded(f"Curves: {names} ({whose} {rows} rows)", body[:-1])


def _bin_notes(curve: Curve) -> list[str]:
    """Rows in each calibration bin, and which empty bins the chart draws across."""
    if curve.name != "calibration":
        return []
    width = 1 / len(curve.grid)
    bins = [f"{i * width:g}-{(i + 1) * width:g}" for i in range(len(curve.grid))]
    lines = {"candidate": curve.candidate, "production": curve.production}
    counts = [
        f"{model} {' · '.join(str(n) for n in line.rows)}"
        for model, line in lines.items()
        if line is not None and line.rows is not None
    ]
    empty = [
        f"{model} {', '.join(b for b, y in zip(bins, line.y, strict=True) if y is None)}"
        for model, line in lines.items()
        if line is not None and None in line.y
    ]
    notes = [f"Rows per bin of predicted probability ({bins[0]}, …, {bins[-1]}): "]
    notes[0] += "; ".join(counts) + "."
    if empty:
        notes[0] += f" Bins without rows, drawn across: {'; '.join(empty)}."
    return [*notes, ""]


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
    sample = ", ".join("null" if v is None else shown(v) for v in check.sample)
    sample = sample[:120]
    return [
        mark,
        check.name,
        check.column,
        check.severity,
        percent(check.unexpected_percent),
        sample or None,
    ]
