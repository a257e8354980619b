"""Charts that GitHub renders from the Markdown itself (Mermaid), no image hosting needed."""

from __future__ import annotations

from ci_ml.records import Evaluation

# metrics on a 0..1 scale share one chart; others (log_loss, latency) would squash it
UNIT_SCALE = (
    "roc_auc",
    "roc_auc_ovr",
    "roc_auc_ovr_weighted",
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision",
    "precision_macro",
    "recall",
    "recall_macro",
    "r2",
)


def metrics_chart(evaluation: Evaluation) -> list[str]:
    """A Mermaid ``xychart-beta`` bar chart: production and candidate per 0..1 metric."""
    metrics = evaluation.candidate.metrics
    names = [n for n in UNIT_SCALE if isinstance(metrics.get(n), int | float)]
    if not names:
        return []
    comparisons = evaluation.comparisons
    candidate = [metrics[n] for n in names]
    production = [comparisons[n].production for n in names if n in comparisons]
    both = len(production) == len(names)
    # xychart-beta has no grouped bars and no legend: candidate as bars, production as a
    # line over them, and the title says which is which
    title = "candidate (bars) vs production (line)" if both else "candidate"
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        "    x-axis [" + ", ".join(f'"{n}"' for n in names) + "]",
        '    y-axis "score" 0 --> 1',
        "    bar [" + ", ".join(f"{v:.4f}" for v in candidate) + "]",
    ]
    if both:
        lines.append("    line [" + ", ".join(f"{v:.4f}" for v in production) + "]")
    lines.append("```")
    return lines


def per_class_chart(evaluation: Evaluation) -> list[str]:
    """Multiclass: recall of every class, candidate as bars and production as a line."""
    entries = evaluation.per_class or []
    if not entries:
        return []
    both = all(e.production is not None for e in entries)
    title = (
        "recall per class: candidate (bars) vs production (line)" if both else "recall per class"
    )
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        "    x-axis [" + ", ".join(_label(e.label) for e in entries) + "]",
        '    y-axis "recall" 0 --> 1',
        "    bar [" + ", ".join(f"{e.candidate.recall:.4f}" for e in entries) + "]",
    ]
    if both:
        shown = [e.production.recall for e in entries if e.production is not None]
        lines.append("    line [" + ", ".join(f"{v:.4f}" for v in shown) + "]")
    lines.append("```")
    return lines


def _label(text: str) -> str:
    """A class name as a quoted Mermaid axis label (quotes and brackets taken out)."""
    cleaned = "".join(c for c in text if c not in '"[]')
    return f'"{cleaned[:24]}"'
