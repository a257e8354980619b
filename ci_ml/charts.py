"""Charts that GitHub renders from the Markdown itself (Mermaid), no image hosting needed."""

from __future__ import annotations

from typing import Any

# metrics on a 0..1 scale share one chart; others (log_loss, latency) would squash it
UNIT_SCALE = ("roc_auc", "accuracy", "f1", "precision", "recall", "balanced_accuracy", "r2")


def metrics_chart(evaluation: dict[str, Any]) -> list[str]:
    """A Mermaid ``xychart-beta`` bar chart: production and candidate per 0..1 metric."""
    metrics = evaluation.get("candidate", {}).get("metrics", {})
    names = [n for n in UNIT_SCALE if isinstance(metrics.get(n), int | float)]
    if not names:
        return []
    comparisons = evaluation.get("comparisons") or {}
    candidate = [metrics[n] for n in names]
    production = [comparisons[n]["production"] for n in names if n in comparisons]
    title = "candidate vs production" if len(production) == len(names) else "candidate"
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title} (bars: {"production, candidate" if production else "candidate"})"',
        "    x-axis [" + ", ".join(f'"{n}"' for n in names) + "]",
        '    y-axis "score" 0 --> 1',
    ]
    if len(production) == len(names):
        lines.append("    bar [" + ", ".join(f"{v:.4f}" for v in production) + "]")
    lines.append("    bar [" + ", ".join(f"{v:.4f}" for v in candidate) + "]")
    lines.append("```")
    return lines
