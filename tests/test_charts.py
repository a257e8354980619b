"""Tests for ci_ml.charts' curve charts: numbers Mermaid can read, and empty bins drawn across."""

from __future__ import annotations

from ci_ml.records import Curve
from ci_ml.report.charts import curve_chart


def test_numbers_without_exponents_and_empty_bins_drawn_between_neighbours() -> None:
    curve = Curve.model_validate(
        {
            "name": "residuals",
            "x": "quantile",
            "y": "residual",
            "average": None,
            "grid": [0.05, 0.5, 0.95],
            "candidate": {"y": [-1.23456e-7, 12345678.9, 3.0]},
            "production": {"y": [None, 2.0, None]},
        }
    )
    chart = curve_chart(curve)
    lines = [line for line in chart if line.startswith("    line [")]
    assert lines == [
        "    line [0, 0, 0]",
        "    line [2, 2, 2]",  # no rows at either end: level with the nearest
        "    line [-0.0000001235, 12350000, 3]",
    ]
    gap = curve.model_copy(
        update={"candidate": curve.candidate.model_copy(update={"y": [1.0, None, 4.0]})}
    )
    assert "    line [1, 2.5, 4]" in curve_chart(gap)
