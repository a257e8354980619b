"""The parity gate: an export's answers against the original model's, on every holdout row.

:func:`parity` compares them (probability of the positive class — of every class for a
multiclass model — or the predicted value, within a tolerance; classes that change
(across the threshold, or another most probable class) counted apart) and returns a
JSON-able record with the largest difference and where; :func:`parity_gate` turns the record
into a gate for ``gate-report.json``; :func:`parity_reason` says it in one sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.errors import ModelFileError
from ci_ml.gates import FAIL, PASS, GateResult
from ci_ml.models.runtime import OnnxPredictor

if TYPE_CHECKING:
    import pandas as pd


DEFAULT_TOLERANCE = 1e-4
SHOWN_ROWS = 5


def parity(
    model: Any,
    onnx_path: Path,
    frame: pd.DataFrame,
    task: str,
    positive_class: Any = None,
    threshold: float = 0.5,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, Any]:
    """The export's answers against the original's on every row of ``frame`` (JSON-able)."""
    import numpy as np

    predictor = OnnxPredictor(
        onnx_path, task=task, positive_class=positive_class, threshold=threshold
    )
    if task == "classification" and len(model.classes_) > 2:
        return _multiclass(model, predictor, frame, tolerance)
    if task == "classification" and positive_class is None:
        raise ModelFileError(
            f"ONNX parity of a binary classifier needs its positive class; model.json has "
            f"none for classes {[str(c) for c in model.classes_]} — train it again."
        )
    exported = predictor.scores(frame)
    if task == "classification":
        classes = [str(c) for c in model.classes_]
        original = np.asarray(model.predict_proba(frame), dtype=np.float64)
        original = original[:, classes.index(str(positive_class))]
        allowed = np.full(len(original), tolerance)
    else:
        original = np.asarray(model.predict(frame), dtype=np.float64).reshape(-1)
        # float32 outputs carry ~7 significant digits: regression values are judged relatively
        allowed = tolerance * np.maximum(1.0, np.abs(original))
    record = _differences(frame, original, exported, allowed)
    record.update(_flips(frame, task, original, exported, threshold, tolerance))
    what = "probability of the positive class" if task == "classification" else "predicted value"
    scale = "" if task == "classification" else " × max(1, |value|)"
    rule = f"pass if |Δ {what}| ≤ {tolerance:g}{scale} on every holdout row" + (
        f" and no row changes class (except rows within {tolerance:g} of the threshold)"
        if task == "classification"
        else ""
    )
    threshold_used = threshold if task == "classification" else None
    return _judged(record, task, len(frame), what, tolerance, threshold_used, rule)


def _judged(
    record: dict[str, Any],
    task: str,
    rows: int,
    compared: str,
    tolerance: float,
    threshold: float | None,
    rule: str,
) -> dict[str, Any]:
    """The record with what was compared, the rule, and ``success``: every row within the
    tolerance and no row changing class."""
    record.update(
        kind="parity",
        format="onnx",
        task=task,
        rows=rows,
        compared=compared,
        tolerance=tolerance,
        threshold=threshold,
        rule=rule,
    )
    record["success"] = bool(
        record["max_abs_diff"] is not None
        and not record["rows_over_tolerance"]
        and not record["class_flips"]
    )
    return record


def _multiclass(
    model: Any, predictor: Any, frame: pd.DataFrame, tolerance: float
) -> dict[str, Any]:
    """Every class probability of every row within ``tolerance``; a row whose most probable
    class changes is a flip, unless its two most probable classes are within twice it."""
    import numpy as np

    classes = [str(c) for c in model.classes_]
    exported_classes = [str(c) for c in predictor.classes]
    if exported_classes != classes:
        raise ModelFileError(
            f"the export's classes {exported_classes} are not the model's {classes} in order."
        )
    original = np.asarray(model.predict_proba(frame), dtype=np.float64)
    exported = predictor.probabilities(frame)
    diff = np.abs(original - exported)
    per_row = diff.max(axis=1) if diff.size else np.zeros(0)
    worst_class = diff.argmax(axis=1) if diff.size else np.zeros(0, dtype=int)
    rows = np.arange(len(per_row))
    record = _differences(
        frame,
        original[rows, worst_class],
        exported[rows, worst_class],
        np.full(len(per_row), tolerance),
    )
    changed = original.argmax(axis=1) != exported.argmax(axis=1)
    top_two = np.sort(original, axis=1)[:, -2:] if len(original) else np.zeros((0, 2))
    borderline = changed & (top_two[:, 1] - top_two[:, 0] <= 2 * tolerance)
    flips = np.flatnonzero(changed & ~borderline)
    best = original.argmax(axis=1)
    record.update(
        class_flips=len(flips),
        first_flipped_rows=_rows(frame, flips, original[rows, best], exported[rows, best]),
        borderline_flips=int(borderline.sum()),
    )
    rule = (
        f"pass if |Δ probability| ≤ {tolerance:g} for every class on every holdout row and "
        f"no row changes its most probable class (except rows whose two most probable "
        f"classes are within {2 * tolerance:g})"
    )
    compared = f"probability of each of the {len(classes)} classes"
    return _judged(record, "classification", len(frame), compared, tolerance, None, rule)


def _differences(frame: pd.DataFrame, original: Any, exported: Any, allowed: Any) -> dict[str, Any]:
    import numpy as np

    diff = np.abs(original - exported)
    if not len(diff) or not np.isfinite(exported).all():
        return {
            "max_abs_diff": None,
            "max_diff_row": None,
            "max_diff_values": None,
            "rows_over_tolerance": len(diff),
            "first_rows_over_tolerance": [],
        }
    worst = int(np.argmax(diff))
    over = np.flatnonzero(diff > allowed)
    return {
        "max_abs_diff": float(diff[worst]),
        "max_diff_row": _row_label(frame, worst),
        "max_diff_values": {"original": float(original[worst]), "onnx": float(exported[worst])},
        "rows_over_tolerance": len(over),
        "first_rows_over_tolerance": _rows(frame, over, original, exported),
    }


def _flips(
    frame: pd.DataFrame, task: str, original: Any, exported: Any, threshold: float, tol: float
) -> dict[str, Any]:
    """Rows whose class changes. A row within ``tol`` of the threshold may change class within
    the allowed probability difference (e.g. a forest's 25/50 = 0.5): counted apart."""
    import numpy as np

    if task != "classification":
        return {"class_flips": 0, "first_flipped_rows": [], "borderline_flips": 0}
    changed = (original >= threshold) != (exported >= threshold)
    borderline = changed & (np.abs(original - threshold) <= tol)
    flips = np.flatnonzero(changed & ~borderline)
    return {
        "class_flips": len(flips),
        "first_flipped_rows": _rows(frame, flips, original, exported),
        "borderline_flips": int(borderline.sum()),
    }


def _rows(frame: pd.DataFrame, positions: Any, original: Any, exported: Any) -> list[Any]:
    return [
        {
            "row": _row_label(frame, int(i)),
            "original": float(original[i]),
            "onnx": float(exported[i]),
        }
        for i in positions[:SHOWN_ROWS]
    ]


def _row_label(frame: pd.DataFrame, position: int) -> Any:
    """The frame's index label of a row (the holdout keeps the data file's row numbers)."""
    if not len(frame):
        return None
    label = frame.index[position]
    return label.item() if hasattr(label, "item") else label


def parity_gate(record: dict[str, Any]) -> GateResult:
    """The parity record as a gate for ``gate-report.json`` (kind ``parity``)."""
    return GateResult(
        name="onnx parity",
        kind="parity",
        metric="max_abs_diff",
        rule=record["rule"],
        value=record["max_abs_diff"],
        verdict=PASS if record["success"] else FAIL,
        reason=parity_reason(record),
        short=f"≤ {record['tolerance']:g}, 0 flips",
    )


def parity_reason(record: dict[str, Any]) -> str:
    """One sentence: the largest difference and where, and any changed classes."""
    largest = record["max_abs_diff"]
    text = (
        f"largest |Δ| {largest:.3g} at row {record['max_diff_row']} "
        f"({record['max_diff_values']['original']:.6g} vs ONNX "
        f"{record['max_diff_values']['onnx']:.6g}) over {record['rows']} rows"
        if largest is not None and record["max_diff_values"]
        else "the export answered a non-finite value"
    )
    if record["rows_over_tolerance"]:
        text += (
            f"; {record['rows_over_tolerance']} row(s) differ by more than "
            f"{record['tolerance']:g} (first: {_shown(record['first_rows_over_tolerance'])})"
        )
    if record["class_flips"]:
        text += (
            f"; {record['class_flips']} row(s) change class "
            f"(first: {_shown(record['first_flipped_rows'])})"
        )
    return text


def _shown(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"row {r['row']}: {r['original']:.6g} vs {r['onnx']:.6g}" for r in rows)
