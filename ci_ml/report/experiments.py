"""``ci-ml experiments``' table: every DVC experiment's verdict, best first."""

from __future__ import annotations

from ci_ml.records import ExperimentsRecord
from ci_ml.report.markdown import ICONS, delta_text, plural, table


def experiments_table(record: ExperimentsRecord) -> str:
    """``ci-ml experiments``: one table of every experiment, best first, above the winner's
    report."""
    metric = record.ranked_by
    higher = record.higher_is_better
    winner = record.winner
    rows = []
    for row in record.experiments:
        change = row.changes.get(metric)
        judged = (
            f"{delta_text(change.delta, higher)} [{change.ci_low:+.3f}, {change.ci_high:+.3f}]"
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
        f"## 🧪 DVC experiments of `{record.stage}`: {plural(count, 'experiment')} judged "
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
