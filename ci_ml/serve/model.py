"""The model the service answers with: a registry version, loaded, checked and ready to predict.

:func:`load_version` fetches a version into a temporary directory, loads it with
:func:`ci_ml.models.load_model` (skops, trusted types only), and smoke-predicts a few rows (from
the version's ``reference.parquet`` when it has one, plus one built from the feature schema):
the batch must be answered, every answer must be well formed, and a row alone must get the same
answer as in the batch. A version that fails any of that is refused with :class:`ModelRefused`.
How a loaded model replaces the served one is in :mod:`ci_ml.serve.reload`.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.errors import CiMlError, ConflictError, ModelFileError
from ci_ml.models import load_model
from ci_ml.models.runtime import OnnxPredictor, labelled
from ci_ml.registry.records import ModelVersion, utc_now
from ci_ml.serve.input import (
    Columns,
    FeatureSchema,
    InvalidRequest,
    frame_of,
    merge_columns,
    sample_records,
    to_columns,
)

if TYPE_CHECKING:
    import pandas as pd

    from ci_ml.registry import Registry

CARD_FILE = "model.json"
REFERENCE_FILE = "reference.parquet"
DEFAULT_THRESHOLD = 0.5
SMOKE_ROWS = 5
SINGLE_ROW_CHECKS = 3
TOLERANCE = 1e-9


class ModelRefused(ModelFileError):
    """A version that cannot be served: it failed to load or to predict (HTTP 422)."""


class NoProduction(ConflictError):
    """Nothing is in production in the registry (HTTP 409)."""


class PredictionFailed(CiMlError):
    """The model raised or answered nonsense for valid rows (HTTP 500)."""


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, smoke-tested model version and how to turn its outputs into answers."""

    version: str
    digest: str
    loaded_at: str
    model: Any
    schema: FeatureSchema
    task: str
    threshold: float
    classes: tuple[Any, ...] = ()
    positive_index: int | None = None
    runtime: str = "scikit-learn"

    def predict(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """One answer per row: ``{"label", "probability"}`` (multiclass: and
        ``"probabilities"``) or ``{"value"}``."""
        return self._answer(frame, len(frame))

    def predict_columns(self, parts: Sequence[Columns], rows: int) -> list[dict[str, Any]]:
        """The answers for the checked rows of one or more requests (``rows`` in all), in order.

        A model that takes the values column by column (the ONNX export) gets them as they
        are; a scikit-learn pipeline gets the DataFrame it was trained on.
        """
        if getattr(self.model, "takes_columns", False):
            return self._answer(merge_columns(parts, self.schema), rows)
        return self._answer(frame_of(parts, self.schema), rows)

    def _answer(self, inputs: Any, rows: int) -> list[dict[str, Any]]:
        import numpy as np

        try:
            if self.task != "classification":
                values = np.asarray(self.model.predict(inputs), dtype=np.float64).reshape(-1)
                _check_finite(values, rows)
                return [{"value": v} for v in values.tolist()]
            proba = np.asarray(self.model.predict_proba(inputs), dtype=np.float64)
        except (ValueError, TypeError, KeyError) as err:
            raise InvalidRequest(f"the model cannot predict these rows ({_first(err)})") from None
        _check_finite(proba, rows)
        return labelled(proba, self.classes, self.positive_index, self.threshold)


def _check_finite(values: Any, rows: int) -> None:
    import numpy as np

    if values.shape[0] != rows or not np.isfinite(values).all():
        raise PredictionFailed(
            f"the model answered {values.shape[0]} row(s) for {rows}, or a non-finite value"
        )


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def limit_threads(threads: int = 1) -> None:
    """Cap the OpenMP/BLAS threads used by predictions made in the calling thread.

    scikit-learn's default (one OpenMP thread per core, per call) makes concurrent predictions
    fight over the cores and stall; the service runs each prediction on ``threads`` thread(s).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


# -- loading ----------------------------------------------------------------------------------


def load_version(registry: Registry, version: ModelVersion, trusted: Sequence[str]) -> LoadedModel:
    """Fetch, load and smoke-test ``version``; :class:`ModelRefused` if it cannot be served."""
    with tempfile.TemporaryDirectory(prefix="ci-ml-serve-") as tmp:
        try:
            files = registry.fetch(version.version, Path(tmp))
            loaded, smoke_rows = _load_files(files, version, trusted)
            smoke_test(loaded, smoke_rows + sample_records(loaded.schema))
        except ModelFileError as err:
            raise ModelRefused(f"version {version.version} cannot be served: {err}") from None
    return loaded


def _load_files(
    files: dict[str, Path], version: ModelVersion, trusted: Sequence[str]
) -> tuple[LoadedModel, list[dict[str, Any]]]:
    """The model, its answer settings, and sample rows from the fetched files."""
    if version.model_file not in files:
        raise ModelFileError(f"it has no {version.model_file}")
    card = {**version.metadata, **_read_card(files.get(CARD_FILE))}
    schema = FeatureSchema.from_card(card.get("feature_schema"))
    model = load_model(files[version.model_file], trusted)
    task = card.get("task") or ("classification" if hasattr(model, "classes_") else "regression")
    classification = task == "classification"
    model, runtime = _prefer_onnx(model, files, card, task)
    loaded = LoadedModel(
        version=version.version,
        digest=version.digest,
        loaded_at=utc_now(),
        model=model,
        schema=schema,
        task="classification" if classification else "regression",
        threshold=_threshold(card.get("threshold")),
        **(_class_settings(model, card) if classification else {}),
        runtime=runtime,
    )
    rows = _reference_rows(files.get(REFERENCE_FILE), schema)
    return loaded, rows


def _prefer_onnx(
    model: Any, files: dict[str, Path], card: dict[str, Any], task: str
) -> tuple[Any, str]:
    """The version's ONNX export when it has one (and ONNX Runtime is installed)."""
    path = files.get("model.onnx")
    if path is None:
        return model, "scikit-learn"

    try:
        predictor = OnnxPredictor(
            path,
            card.get("feature_schema"),
            task,
            card.get("positive_class"),
            _threshold(card.get("threshold")),
        )
    except ImportError:  # the onnx extra is not installed: the skops pipeline serves
        return model, "scikit-learn"
    return predictor.as_estimator(), "onnx"


def _threshold(value: Any) -> float:
    """The label threshold of model.json (default 0.5), a number in (0, 1)."""
    if value is None:
        return DEFAULT_THRESHOLD
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ModelFileError(f"its model.json has threshold {value!r}; it must be in (0, 1)")
    return float(value)


def _read_card(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelFileError(f"its {CARD_FILE} cannot be read ({err})") from None
    return card if isinstance(card, dict) else {}


def _class_settings(model: Any, card: dict[str, Any]) -> dict[str, Any]:
    """The classes (as JSON values) and which one is positive, as evaluation defines it."""
    raw = getattr(model, "classes_", None)
    if raw is None or not hasattr(model, "predict_proba"):
        raise ModelFileError("it is a classifier without classes_ or predict_proba")
    classes = tuple(c.item() if hasattr(c, "item") else c for c in raw)
    positive = card.get("positive_class")
    if len(classes) != 2 or positive is None:
        return {"classes": classes, "positive_index": None}
    names = [str(c) for c in classes]
    if str(positive) not in names:
        raise ModelFileError(f"its classes {names} lack the positive class {positive!r}")
    return {"classes": classes, "positive_index": names.index(str(positive))}


def _reference_rows(path: Path | None, schema: FeatureSchema) -> list[dict[str, Any]]:
    """The first few training rows kept with the version, as JSON-like records."""
    if path is None:
        return []
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
        if not set(schema.names) <= set(source.schema_arrow.names):
            return []
        batch = next(source.iter_batches(batch_size=SMOKE_ROWS, columns=list(schema.names)))
    except (OSError, ValueError, StopIteration):
        return []
    return [{k: _plain(v) for k, v in row.items()} for row in batch.to_pylist()]


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def smoke_test(loaded: LoadedModel, rows: list[dict[str, Any]]) -> None:
    """Predict ``rows`` as a batch and a few alone, as requests are; raise if anything is wrong."""
    try:
        columns = to_columns(rows, loaded.schema)
    except InvalidRequest as err:
        raise ModelFileError(f"its sample rows do not fit its own feature schema: {err}") from None
    batch = _smoke_predict(loaded, columns, len(rows), "a batch of sample rows")
    for i, row in enumerate(rows[:SINGLE_ROW_CHECKS]):
        alone = _smoke_predict(loaded, to_columns([row], loaded.schema), 1, f"sample row {i}")[0]
        if not _same_answer(alone, batch[i]):
            raise ModelFileError(
                f"it answers sample row {i} alone with {alone} but in a batch with {batch[i]}"
            )


def _smoke_predict(
    loaded: LoadedModel, columns: Columns, rows: int, what: str
) -> list[dict[str, Any]]:
    try:
        return loaded.predict_columns([columns], rows)
    except Exception as err:  # a broken model may raise anything; it must not be served
        raise ModelFileError(f"predicting {what} failed ({_first(err)})") from None


def _same_answer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys() or a.get("label") != b.get("label"):
        return False
    key = "value" if "value" in a else "probability"
    if not math.isclose(a[key], b[key], rel_tol=TOLERANCE, abs_tol=TOLERANCE):
        return False
    every_a, every_b = a.get("probabilities") or {}, b.get("probabilities") or {}
    return every_a.keys() == every_b.keys() and all(
        math.isclose(every_a[c], every_b[c], rel_tol=TOLERANCE, abs_tol=TOLERANCE) for c in every_a
    )
