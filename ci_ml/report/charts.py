"""Charts that GitHub renders from the Markdown itself (Mermaid), no image hosting needed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ci_ml.records import Curve, Evaluation

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


# --- curves: candidate and production as lines on the curve's fixed grid --------------------

CANDIDATE, PRODUCTION, REFERENCE = "#1f77b4", "#ff7f0e", "#8c959f"  # blue, orange, grey


@dataclass(frozen=True)
class CurveLook:
    """How a curve is drawn: its title, axes and the grey reference line (None: no line)."""

    title: str
    x_axis: str
    y_axis: str
    unit_y: bool  # y runs from 0 to 1
    reference: str | None
    numeric_x: bool = True  # the grid is evenly spaced; else it labels the points


CURVE_LOOKS = {
    "roc": CurveLook("ROC", "false positive rate", "true positive rate", True, "chance"),
    "precision_recall": CurveLook("Precision-recall", "recall", "precision", True, None),
    "calibration": CurveLook(
        "Calibration", "predicted probability (bin centre)", "observed rate", True, "perfect"
    ),
    "predicted_vs_actual": CurveLook(
        "Predicted vs actual",
        "mean actual value, 10 equal-count bins",
        "mean predicted",
        False,
        "actual",
        numeric_x=False,
    ),
    "residuals": CurveLook("Residual quantiles", "quantile", "actual - predicted", False, "zero"),
}


def curve_chart(curve: Curve) -> list[str]:
    """A Mermaid ``xychart-beta`` line chart of ``curve``: the reference line in grey, then
    production in orange and the candidate in blue on top; the title says which is which
    (xychart-beta has no legend) and the colours are set by an init directive."""
    look = CURVE_LOOKS[curve.name]
    grid = curve.grid
    lines = [_filled(curve.candidate.y)]
    colours, names = [CANDIDATE], ["candidate blue"]
    if curve.production is not None:
        lines.insert(0, _filled(curve.production.y))
        colours.insert(0, PRODUCTION)
        names.append("production orange")
    if look.reference is not None:
        lines.insert(0, _reference(curve.name, grid))
        colours.insert(0, REFERENCE)
        names.append(f"{look.reference} grey")
    title = f"{look.title}{' (' + curve.average + ')' if curve.average else ''}: "
    palette = ", ".join(colours)
    x_axis = (
        f"{_number(grid[0])} --> {_number(grid[-1])}"
        if look.numeric_x
        else "[" + ", ".join(f'"{_number(v, 3)}"' for v in grid) + "]"
    )
    return [
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + palette + '"}}}}%%',
        "xychart-beta",
        f'    title "{title}{", ".join(names)}"',
        f'    x-axis "{look.x_axis}" {x_axis}',
        f'    y-axis "{look.y_axis}"' + (" 0 --> 1" if look.unit_y else ""),
        *("    line [" + ", ".join(_number(v) for v in values) + "]" for values in lines),
        "```",
    ]


def _reference(name: str, grid: list[float]) -> list[float]:
    """The grey line: chance (ROC), perfect calibration, the actual value, zero residual."""
    return [0.0] * len(grid) if name == "residuals" else list(grid)


def _filled(values: list[float | None]) -> list[float]:
    """A line through every grid point: an empty bin (None) drawn straight between its
    neighbours, or level with the nearest one at an end."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return [0.0] * len(values)
    shown = []
    for i, value in enumerate(values):
        if value is not None:
            shown.append(value)
            continue
        before = [(j, v) for j, v in known if j < i]
        after = [(j, v) for j, v in known if j > i]
        if not before or not after:
            shown.append((before or after)[-1 if before else 0][1])
            continue
        (j0, v0), (j1, v1) = before[-1], after[0]
        shown.append(v0 + (v1 - v0) * (i - j0) / (j1 - j0))
    return shown


def _number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits as Mermaid reads numbers (no exponent)."""
    return format(Decimal(f"{value:.{digits}g}"), "f")
