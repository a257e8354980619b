"""The human report (``report.md``): verdict first, then gates, data checks, metrics.

Plain GitHub-flavoured Markdown, so the same text serves as the PR comment and
the job summary. Long detail goes in ``<details>`` blocks, which a size cap
may drop from the end without losing the verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ci_ml.charts import CURVE_LOOKS, curve_chart, metrics_chart, per_class_chart
from ci_ml.errors import ConfigError
from ci_ml.evaluation.metrics import METRICS
from ci_ml.gates import higher_is_better
from ci_ml.records import (
    Aspect,
    Changes,
    Comparison,
    Confusion,
    Curve,
    DataCheck,
    DataReport,
    Difference,
    Evaluation,
    ExperimentsRecord,
    GateEntry,
    GateReport,
    PerClass,
    SliceEntry,
)

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
SLICE_MARK = " ["  # a slice gate is named "<metric> change [column=value]"
SHOWN_CLASSES = 5  # per-class rows and changed confusion cells shown before "the rest"
SHOWN_CHANGES = 6  # changed params, and changed parts of the data, shown before "the rest"
HASH = re.compile(r"^(?:(\w+):)?([0-9a-f]{16,})(\.dir)?$")  # md5:<hex>[.dir], as DVC writes


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
        lines += _what_changed(evaluation.changes)
        lines += _curves(evaluation)
        lines += _per_class(evaluation)
        lines += _confusion(evaluation)
        lines += _slices(evaluation, gate_report)
    if data_report:
        lines += _data(data_report)
    lines += _model_params(evaluation)
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
        higher = _higher(name, evaluation, default=False)
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


def _higher(metric: str | None, evaluation: Evaluation, default: bool) -> bool:
    """Whether ``metric`` is better higher (``default`` for operational or unknown names)."""
    try:
        return higher_is_better(metric or "", evaluation.classes)
    except (KeyError, ConfigError):
        return default


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
                _interval(comp),
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
    return _folded(f"Curves: {names} ({whose} {rows} rows)", body[:-1])


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


def _per_class(evaluation: Evaluation) -> list[str]:
    """Multiclass: precision, recall and F1 of every class, worst first (the largest drop in
    recall against production, else the lowest recall); the first few in the open."""
    entries = evaluation.per_class
    if not entries:
        return []
    with_production = any(e.production is not None for e in entries)
    ordered = sorted(entries, key=_class_order)
    rows = [_class_row(e, with_production) for e in ordered]
    header = ["class", "rows", "recall", "precision", "f1"]
    if with_production:
        first = next((c for e in entries for c in e.comparisons.values()), None)
        level = f"{first.confidence:.2%}" if first else ""
        header = [
            "class",
            "rows",
            "recall prod → cand",
            "Δ recall",
            f"CI ({level}, Bonferroni)",
            "precision prod → cand",
            "f1 prod → cand",
        ]
    title = f"### Per class, worst first ({len(entries)} classes)"
    lines = [title, "", *table(header, rows[:SHOWN_CLASSES]), ""]
    if len(rows) > SHOWN_CLASSES:
        lines += _folded(
            f"The other {len(rows) - SHOWN_CLASSES} classes", table(header, rows[SHOWN_CLASSES:])
        )
    chart = per_class_chart(evaluation)
    if chart:
        lines += _folded("Recall per class (chart)", chart)
    return lines


def _class_order(entry: PerClass) -> tuple[float, float]:
    comp = entry.comparisons.get(f"recall[{entry.label}]")
    if comp is not None:
        return (comp.delta, entry.candidate.recall)
    return (entry.candidate.recall, 0.0)


def _class_row(entry: PerClass, with_production: bool) -> list[Any]:
    ours = entry.candidate
    if not with_production:
        return [entry.label, entry.support, ours.recall, ours.precision, ours.f1]
    theirs = entry.production
    comp = entry.comparisons.get(f"recall[{entry.label}]")

    def pair(name: str) -> str | None:
        if theirs is None:
            return _text(getattr(ours, name))
        return f"{getattr(theirs, name):.3f} → {getattr(ours, name):.3f}"

    return [
        entry.label,
        entry.support,
        pair("recall"),
        _delta(comp.delta, True) if comp else None,
        _interval(comp),
        pair("precision"),
        pair("f1"),
    ]


def _confusion(evaluation: Evaluation) -> list[str]:
    """Multiclass: the confusion matrix's cells that changed most (candidate vs production,
    same rows), then the whole matrix folded."""
    confusion = evaluation.confusion
    if confusion is None:
        return []
    classes, ours, theirs = confusion.classes, confusion.candidate, confusion.production
    lines = [f"### Confusion matrix ({confusion.rows} rows; row = true class)", ""]
    if theirs is not None:
        cells = [
            (t, p, theirs[i][j], ours[i][j])
            for i, t in enumerate(classes)
            for j, p in enumerate(classes)
            if theirs[i][j] != ours[i][j]
        ]
        cells.sort(key=lambda c: (-abs(c[3] - c[2]), c[0] != c[1]))
        rows = [
            [f"{t} → {p}" + (" ✓" if t == p else ""), a, b, f"{b - a:+d}"] for t, p, a, b in cells
        ]
        header = ["true → predicted", "production", "candidate", "Δ rows"]
        if rows:
            lines += ["Changed cells, largest change first (✓ = correct):", ""]
            lines += [*table(header, rows[: 2 * SHOWN_CLASSES]), ""]
            if len(rows) > 2 * SHOWN_CLASSES:
                rest = table(header, rows[2 * SHOWN_CLASSES :])
                lines += _folded(f"The other {len(rows) - 2 * SHOWN_CLASSES} changed cells", rest)
        else:
            lines += ["No cell changed: both models label every row alike.", ""]
    lines += _folded("The whole matrix (candidate, Δ vs production)", _matrix(confusion))
    return lines


def _matrix(confusion: Confusion) -> list[str]:
    ours, theirs = confusion.candidate, confusion.production
    rows = []
    for i, label in enumerate(confusion.classes):
        cells = []
        for j in range(len(confusion.classes)):
            cell = str(ours[i][j])
            if theirs is not None and theirs[i][j] != ours[i][j]:
                cell += f" ({ours[i][j] - theirs[i][j]:+d})"
            cells.append(cell)
        rows.append([label, *cells])
    return table(["true ↓ predicted →", *confusion.classes], rows)


def _folded(summary: str, body: list[str]) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", *body, "", "</details>", ""]


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


def _model_params(evaluation: Evaluation | None) -> list[str]:
    """The candidate's estimator and its params in full (get_params), folded."""
    if not evaluation:
        return []
    model = evaluation.model
    rows = [[k, _param(v)] for k, v in sorted(model.params.items())]
    body = [f"Estimator `{model.estimator}`", "", *table(["param", "value"], rows)]
    return _folded("Model parameters", body)


def _what_changed(changes: Changes | None) -> list[str]:
    """Params and data, production → candidate, from their model.json records: only what
    differs (the first few open, the rest folded), what is the same counted."""
    if changes is None:
        return []
    params, data = _param_rows(changes), _data_rows(changes)
    same, unknown = _same(changes), _not_compared(changes)
    lines = [f"### What changed since production {changes.production}", ""]
    if not params and not data and not unknown:
        return [*lines, f"Nothing changed: {same} are the same as production's.", ""]
    compared = [a for a in _data_aspects(changes) if a is not None and a.problem is None]
    title = f"Params** ({_source(changes)})" if changes.params.problem is None else "Model**"
    lines += _change_table(title, "param", params, changes.params)
    lines += _change_table("Data**", "", data, compared[0] if compared else None)
    lines += [f"Unchanged: {same}.", ""] if same else []
    return [*lines, "Not compared:", "", *unknown, ""] if unknown else lines


def _change_table(title: str, key: str, rows: list[list[str]], aspect: Aspect | None) -> list[str]:
    """The changed rows (a few open, the rest folded); "none changed" if compared."""
    if not rows:
        compared = aspect is not None and aspect.problem is None
        return [f"**{title}: none changed.", ""] if compared else []
    header = [key, "production", "candidate"]
    lines = [f"**{title}: {len(rows)} changed", "", *table(header, rows[:SHOWN_CHANGES]), ""]
    if len(rows) > SHOWN_CHANGES:
        rest = table(header, rows[SHOWN_CHANGES:])
        lines += _folded(f"The other {len(rows) - SHOWN_CHANGES} changes", rest)
    return lines


def _source(changes: Changes) -> str:
    if changes.params_source == "dvc_stage":
        return "the dvc stage's"
    return "ci-ml.yaml's `model.params`"


def _data_aspects(changes: Changes) -> list[Aspect | None]:
    return [changes.data_version, changes.training_rows, changes.dvc_deps, changes.features]


def _param_rows(changes: Changes) -> list[list[str]]:
    found = [*changes.model.changed, *changes.params.changed]
    return [[d.key, *_sides(d, _param)] for d in found]


def _data_rows(changes: Changes) -> list[list[str]]:
    rows = [["data version", *_sides(d, _hash)] for d in changes.data_version.changed]
    for d in changes.training_rows.changed:
        old, new = d.production, d.candidate
        grew = f" ({new - old:+d})" if isinstance(old, int) and isinstance(new, int) else ""
        rows.append(["training rows", _param(old), f"{_param(new)}{grew}"])
    deps = changes.dvc_deps.changed if changes.dvc_deps else []
    rows += [[f"dependency {d.key}", *_sides(d, _hash)] for d in deps]
    rows += [[f"feature {d.key}", *_sides(d, _param)] for d in changes.features.changed]
    return rows


def _sides(d: Difference, shown: Callable[[Any], str]) -> tuple[str, str]:
    """A difference's production and candidate cells; '—' on the side without the key."""
    old = "—" if d.change == "added" else shown(d.production)
    new = "—" if d.change == "removed" else shown(d.candidate)
    return old, new


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _hash(value: Any) -> str:
    """A DVC hash shortened to 8 characters (``md5:01234567…``)."""
    found = HASH.match(str(value))
    if not found:
        return _param(value)
    kind, digest, suffix = found.groups()
    return f"{kind + ':' if kind else ''}{digest[:8]}…{suffix or ''}"


def _same(changes: Changes) -> str:
    """What both records hold alike: ``the estimator, 2 params, the data version, ...``."""
    said = []
    if changes.model.problem is None:
        changed = {d.key for d in changes.model.changed}
        named = {"estimator": "the estimator", "trained by": "the trainer"}
        said += [name for key, name in named.items() if key not in changed]
    for aspect, name in [
        (changes.data_version, "the data version"),
        (changes.training_rows, "the training rows"),
    ]:
        if aspect.problem is None and aspect.unchanged:
            said.append(name)
    counted = [
        (changes.params, "param", "params"),
        (changes.dvc_deps, "dependency", "dependencies"),
        (changes.features, "feature column", "feature columns"),
    ]
    for part, one, many in counted:
        if part is not None and part.problem is None and part.unchanged:
            said.append(f"{part.unchanged} {one if part.unchanged == 1 else many}")
    return ", ".join(said)


def _not_compared(changes: Changes) -> list[str]:
    """One line per reason a part was not compared, naming the parts."""
    named = {
        "the estimator": changes.model,
        "params": changes.params,
        "data version": changes.data_version,
        "training rows": changes.training_rows,
        "dependencies": changes.dvc_deps,
        "feature columns": changes.features,
    }
    by_problem: dict[str, list[str]] = {}
    for name, aspect in named.items():
        if aspect is not None and aspect.problem is not None:
            by_problem.setdefault(aspect.problem, []).append(name)
    return [f"- {', '.join(names)}: {why}" for why, names in by_problem.items()]


def experiments_table(record: ExperimentsRecord) -> str:
    """``ci-ml experiments``: one table of every experiment, best first, above the winner's
    report."""
    metric = record.ranked_by
    higher = higher_is_better(metric) if metric in METRICS else True
    winner = record.winner
    rows = []
    for row in record.experiments:
        change = row.changes.get(metric)
        judged = (
            f"{_delta(change.delta, higher)} [{change.ci_low:+.3f}, {change.ci_high:+.3f}]"
            if change
            else None
        )
        mark = "🏆" if row.name == winner else ""
        registered = row.name == winner and row.verdict != "fail"
        rows.append(
            [
                mark,
                f"`{row.name}` ({row.rev[:7]})",
                ", ".join(f"{k}={v}" for k, v in row.params.items()) or "(none changed)",
                row.metrics.get(metric),
                judged,
                f"{ICONS.get(row.verdict, '')} {row.verdict}",
                "would be registered" if registered else "; ".join(row.reasons[:1]),
            ]
        )
    count = len(record.experiments)
    lines = [
        f"## 🧪 DVC experiments of `{record.stage}`: {_plural(count, 'experiment')} judged "
        "against production",
        "",
        f"Best first (by {metric} within each verdict). Each interval is at "
        f"{record.corrected_confidence:.2%}: {record.confidence:.0%} Bonferroni-corrected over "
        f"the {count} experiments, so the chance that any of them passes by luck stays "
        f"{1 - record.confidence:.0%}.",
        "",
        *table(
            ["", "experiment", "params", metric, f"Δ {metric} vs production", "verdict", ""], rows
        ),
        "",
    ]
    if winner is not None:
        lines += [
            f"Below: the report of **{winner}**, whose model, evaluation and decision record are "
            "this run's files (every experiment's are in `experiments/<name>/`).",
            "",
        ]
    return "\n".join(lines)
