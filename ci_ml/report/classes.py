"""A multiclass model's part of the report: the per-class table and the confusion diff."""

from __future__ import annotations

from typing import Any

from ci_ml.records import Confusion, Evaluation, PerClass
from ci_ml.report.charts import per_class_chart
from ci_ml.report.markdown import delta_text, folded, interval_text, shown, table

SHOWN_CLASSES = 5  # per-class rows and changed confusion cells shown before "the rest"


def per_class_section(evaluation: Evaluation) -> list[str]:
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
        lines += folded(
            f"The other {len(rows) - SHOWN_CLASSES} classes", table(header, rows[SHOWN_CLASSES:])
        )
    chart = per_class_chart(evaluation)
    if chart:
        lines += folded("Recall per class (chart)", chart)
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
            return shown(getattr(ours, name))
        return f"{getattr(theirs, name):.3f} → {getattr(ours, name):.3f}"

    return [
        entry.label,
        entry.support,
        pair("recall"),
        delta_text(comp.delta, True) if comp else None,
        interval_text(comp),
        pair("precision"),
        pair("f1"),
    ]


def confusion_section(evaluation: Evaluation) -> list[str]:
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
                lines += folded(f"The other {len(rows) - 2 * SHOWN_CLASSES} changed cells", rest)
        else:
            lines += ["No cell changed: both models label every row alike.", ""]
    lines += folded("The whole matrix (candidate, Δ vs production)", _matrix(confusion))
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
