"""Markdown pieces every part of the report uses: cells, tables, folds, numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ci_ml.records import Comparison

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}


def shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def cell(value: Any) -> str:
    """A table cell: escaped once here, so callers pass plain text."""
    return shown(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table; cells are escaped here, so callers pass plain values."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def delta_text(delta: float, higher: bool) -> str:
    if delta == 0:
        return "±0"
    better = (delta > 0) == higher
    return f"{delta:+.4f} {'▲ better' if better else '▼ worse'}"


def present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def interval_text(comp: Comparison | None) -> str | None:
    if not comp:
        return None
    return f"[{comp.ci_low:+.3f}, {comp.ci_high:+.3f}]"


def folded(summary: str, body: list[str]) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", *body, "", "</details>", ""]


def percent(value: Any) -> str | None:
    if value is None:
        return None
    return "0" if value == 0 else f"{value:.4g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
