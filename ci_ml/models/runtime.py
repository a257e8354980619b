"""Answers from an exported ``model.onnx`` in ONNX Runtime, shaped like the service's answers.

:class:`OnnxPredictor` offers the call the service makes on a loaded model,
``predict(frame) -> list[dict]``: ``{"label", "probability"}`` (probability of the positive
class, labelled with the model's threshold; the most probable class for multiclass) or
``{"value"}``. It takes the service's checked values column by column (a mapping of column
name to values: numbers, strings, ``NaN`` or ``None`` for missing — the fast path, no
DataFrame), a DataFrame like the one the service builds for scikit-learn (float64 numerics,
object categoricals with ``NaN`` for missing) or a list of records, and adapts it to the
graph's inputs: one ``[n, 1]`` tensor per column, numerics as the graph's float type,
categoricals as strings with nulls mapped to the marker the export recorded (the graph's
imputer fills it, see :mod:`ci_ml.export.convert`). ONNX Runtime runs with one intra-op thread so
that concurrent requests do not fight over the cores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from ci_ml.errors import BadInputError, ModelFileError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Rows: TypeAlias = "pd.DataFrame | Sequence[dict[str, Any]] | Mapping[str, Sequence[Any]]"
META_PREFIX = "ci_ml."
_NUMPY_TYPES = {"tensor(double)": "float64", "tensor(float)": "float32"}


class OnnxPredictor:
    """An ONNX export of a ci-ml pipeline, ready to answer rows like ``LoadedModel.predict``."""

    def __init__(
        self,
        path: Path | str,
        feature_schema: Sequence[dict[str, Any]] | None = None,
        task: str | None = None,
        positive_class: Any = None,
        threshold: float = 0.5,
        classes: Sequence[Any] | None = None,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for broken files
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({_first(exc)}).") from None
        meta = _metadata(self.session)
        self.task = task or meta.get("task") or "classification"
        self.markers: dict[str, str] = meta.get("null_markers") or {}
        self.classes = tuple(classes if classes is not None else meta.get("classes") or ())
        self.threshold = threshold
        self.positive_index = _positive_index(self.classes, positive_class, self.task)
        self.inputs = {i.name: _NUMPY_TYPES.get(i.type, "str") for i in self.session.get_inputs()}
        if feature_schema is not None:
            _check_schema(self.inputs, feature_schema, path)
        self._probability_output = _output_named(self.session, "probabilities")

    def feed(self, rows: Rows) -> dict[str, np.ndarray]:
        """The graph's input tensors for ``rows``: nulls mapped, one ``[n, 1]`` per column."""
        import numpy as np
        import pandas as pd

        if isinstance(rows, Mapping):
            return self._feed_columns(rows)
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        missing = [name for name in self.inputs if name not in frame.columns]
        if missing:
            raise BadInputError(f"the rows lack the model's column(s) {', '.join(missing)}")
        feed = {}
        for name, kind in self.inputs.items():
            column = frame[name]
            if kind == "str":
                marker = self.markers.get(name, "")
                values = [_text(v, marker) for v in column.to_numpy(dtype=object)]
                feed[name] = np.array(values, dtype=object).reshape(-1, 1)
            elif column.dtype.kind in "fiub":
                feed[name] = column.to_numpy(dtype=kind, na_value=np.nan).reshape(-1, 1)
            else:
                numbers = pd.to_numeric(column, errors="raise").astype("float64")
                feed[name] = numbers.to_numpy(dtype=kind, na_value=np.nan).reshape(-1, 1)
        return feed

    def _feed_columns(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        # building a DataFrame costs ~0.7 ms, ten times the model itself for one row
        import numpy as np

        missing = [name for name in self.inputs if name not in columns]
        if missing:
            raise BadInputError(f"the rows lack the model's column(s) {', '.join(missing)}")
        feed = {}
        for name, kind in self.inputs.items():
            values = columns[name]
            if kind == "str":
                marker = self.markers.get(name, "")
                values = [_text(v, marker) for v in values]
                feed[name] = np.array(values, dtype=object).reshape(-1, 1)
            else:  # None becomes NaN
                feed[name] = np.array(values, dtype=kind).reshape(-1, 1)
        return feed

    def scores(self, rows: Rows) -> np.ndarray:
        """Probability of the positive class (binary) or the predicted value, per row."""
        import numpy as np

        outputs = self._run(rows)
        if self.task != "classification":
            return np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        if self.positive_index is None:
            raise BadInputError("scores() needs a binary model with a positive class")
        return np.asarray(outputs[self._probability_output], dtype=np.float64)[
            :, self.positive_index
        ]

    def probabilities(self, rows: Rows) -> np.ndarray:
        """Every class's probability per row, columns in ``classes`` order (classification)."""
        import numpy as np

        if self.task != "classification":
            raise BadInputError("probabilities() needs a classifier")
        return np.asarray(self._run(rows)[self._probability_output], dtype=np.float64)

    def predict(self, rows: Rows) -> list[dict[str, Any]]:
        """One answer per row: ``{"label", "probability"}`` or ``{"value"}``."""
        import numpy as np

        outputs = self._run(rows)
        if self.task != "classification":
            values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
            return [{"value": v} for v in values.tolist()]
        proba = np.asarray(outputs[self._probability_output], dtype=np.float64)
        return labelled(proba, self.classes, self.positive_index, self.threshold)

    def as_estimator(self) -> OnnxEstimator:
        """This export behind scikit-learn's ``classes_`` / ``predict_proba`` / ``predict``."""
        return OnnxEstimator(self)

    def _run(self, rows: Rows) -> list[Any]:
        try:
            return list(self.session.run(None, self.feed(rows)))
        except (ValueError, TypeError) as exc:
            raise BadInputError(f"the rows cannot be predicted ({_first(exc)})") from None


class OnnxEstimator:
    """An :class:`OnnxPredictor` that looks like a fitted scikit-learn model to its callers
    (``LoadedModel``, ``smoke_test``): ``classes_``, ``predict_proba`` and ``predict``.

    Unlike a scikit-learn model it also takes the checked values column by column, which
    ``LoadedModel.predict_columns`` passes when ``takes_columns`` is true."""

    takes_columns = True

    def __init__(self, predictor: OnnxPredictor) -> None:
        import numpy as np

        self.predictor = predictor
        if predictor.task == "classification":
            self.classes_ = np.asarray(predictor.classes, dtype=object)

    def predict_proba(self, rows: Rows) -> np.ndarray:
        """Probabilities, one column per class in ``classes_`` order (float64)."""
        import numpy as np

        outputs = self.predictor._run(rows)
        return np.asarray(outputs[self.predictor._probability_output], dtype=np.float64)

    def predict(self, rows: Rows) -> np.ndarray:
        """Values (regression) or the most probable class (classification)."""

        if self.predictor.task != "classification":
            return self.predictor.scores(rows)
        return self.classes_[self.predict_proba(rows).argmax(axis=1)]


def _metadata(session: Any) -> dict[str, Any]:
    props = session.get_modelmeta().custom_metadata_map
    meta = {}
    for key, value in props.items():
        if key.startswith(META_PREFIX):
            try:
                meta[key[len(META_PREFIX) :]] = json.loads(value)
            except ValueError:
                continue
    return meta


def labelled(
    proba: np.ndarray, classes: Sequence[Any], positive_index: int | None, threshold: float
) -> list[dict[str, Any]]:
    """The answers of a classifier from its class probabilities (columns in ``classes``
    order): ``{"label", "probability"}`` of the positive class, labelled at ``threshold``
    (binary); for a multiclass model the most probable class, its probability and
    ``"probabilities"``, every class's (a label's first maximum wins, as ``argmax``)."""
    if positive_index is None:
        best = proba.argmax(axis=1).tolist()
        names = [str(c) for c in classes]
        return [
            {
                "label": classes[b],
                "probability": row[b],
                "probabilities": dict(zip(names, row, strict=True)),
            }
            for b, row in zip(best, proba.tolist(), strict=True)
        ]
    positive = classes[positive_index]
    negative = classes[1 - positive_index]
    return [
        {"label": positive if p >= threshold else negative, "probability": p}
        for p in proba[:, positive_index].tolist()
    ]


def _positive_index(classes: Sequence[Any], positive: Any, task: str) -> int | None:
    if task != "classification" or len(classes) != 2 or positive is None:
        return None
    names = [str(c) for c in classes]
    if str(positive) not in names:
        raise ModelFileError(f"the export's classes {names} lack the positive class {positive!r}")
    return names.index(str(positive))


def _check_schema(inputs: dict[str, str], schema: Sequence[dict[str, Any]], path: Any) -> None:
    names = [f["name"] for f in schema]
    if sorted(names) != sorted(inputs):
        raise ModelFileError(
            f"{path}: its inputs {sorted(inputs)} are not the model's features {sorted(names)}; "
            "export the model again with 'ci-ml export'."
        )


def _output_named(session: Any, name: str) -> int:
    names = [o.name for o in session.get_outputs()]
    return names.index(name) if name in names else len(names) - 1


def _text(value: Any, marker: str) -> str:
    """A categorical value as the graph's string; a null (None, NaN, NA) as the marker."""
    if type(value) is str:
        return value
    import pandas as pd

    return marker if pd.isna(value) else str(value)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
