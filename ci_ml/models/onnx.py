"""Your own model as ONNX: the ``model.onnx`` a training command writes, and what it must declare.

ci-ml evaluates, serves and monitors such a file through the adapter of its own export
(:class:`ci_ml.models.runtime.OnnxPredictor`), so the file must say what that adapter needs
(docs/frameworks.md, "Your own model as ONNX"):

* one input per feature column, named like the column, shaped ``[n, 1]``: ``float`` or
  ``double`` for a numeric column, ``string`` for a categorical one, and no other input;
* a classifier's class probabilities as the output ``probabilities``, ``[n, K]`` (float or
  double); a regressor's values as its first output, ``[n]`` or ``[n, 1]``;
* metadata (``metadata_props``, each value JSON): ``ci_ml.task``, the data's task; for a
  classifier ``ci_ml.classes``, the data's classes in the order of the probability columns;
  optionally ``ci_ml.null_markers`` (categorical column -> the string a missing value is fed
  as; ``""`` otherwise).

:func:`check_own_onnx` checks all of that, then predicts a few training rows (rows answered,
values finite, probabilities in [0, 1] summing to 1); the first thing wrong is a
:class:`~ci_ml.errors.ModelFileError` naming the input, output or metadata key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.models.runtime import META_PREFIX, OnnxEstimator, OnnxPredictor

if TYPE_CHECKING:
    from ci_ml.data import Dataset

NUMERIC = ("tensor(float)", "tensor(double)")
STRING = ("tensor(string)",)
PROBABILITIES = "probabilities"
TRIAL_ROWS = 100
SUM_TOLERANCE = 1e-4  # a float32 softmax sums to 1 within ~1e-7
DOCS = "see 'Your own model as ONNX' in docs/frameworks.md"


def load_onnx(path: Path) -> OnnxEstimator:
    """The ONNX model in ``path`` behind scikit-learn's ``classes_`` / ``predict_proba``."""
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; run 'ci-ml train' first.")
    try:
        return OnnxPredictor(path).as_estimator()
    except ImportError:
        raise MissingExtra("running an ONNX model", "onnx") from None


def check_own_onnx(path: Path, dataset: Dataset, schema: Sequence[dict[str, Any]]) -> OnnxEstimator:
    """The training command's ONNX model at ``path``, loaded, once it declares what ci-ml needs
    for ``dataset`` (whose features ``schema`` describes); a ModelFileError otherwise."""
    try:
        estimator = load_onnx(path)
    except ModelFileError as exc:
        raise ModelFileError(
            f"{str(exc).rstrip('.')}; model.output ends in .onnx, so the training command must "
            f"write an ONNX model there; {DOCS}."
        ) from None
    predictor = estimator.predictor
    problem = (
        _inputs_problem(predictor.session.get_inputs(), schema)
        or _metadata_problem(_raw_metadata(predictor.session), dataset, schema)
        or _outputs_problem(predictor.session.get_outputs(), dataset)
        or _trial_problem(predictor, dataset)
    )
    if problem:
        raise ModelFileError(f"the training command's model {path} {problem}; {DOCS}.")
    return estimator


def _inputs_problem(inputs: Sequence[Any], schema: Sequence[dict[str, Any]]) -> str | None:
    kinds = {f["name"]: f["kind"] for f in schema}
    found = {i.name: i for i in inputs}
    missing = [name for name in kinds if name not in found]
    if missing:
        return (
            f"has no input for the feature column(s) {_names(missing)}: ci-ml feeds one "
            "[n, 1] input per feature column, named like the column"
        )
    extra = [name for name in found if name not in kinds]
    if extra:
        return (
            f"has the input(s) {_names(extra)}, which are no feature column (the features are "
            f"{_names(list(kinds))}): ci-ml feeds the feature columns only, one [n, 1] input each"
        )
    for name, kind in kinds.items():
        given = found[name]
        allowed = NUMERIC if kind == "numeric" else STRING
        if given.type not in allowed:
            return (
                f"takes its input '{name}' as {given.type}, but '{name}' is a {kind} column: "
                f"give it {' or '.join(allowed)}"
            )
        if not _is_column(given.shape):
            return (
                f"has the input '{name}' shaped {_shape(given.shape)}; it must be [n, 1], its "
                "first dimension open (any number of rows)"
            )
    return None


def _raw_metadata(session: Any) -> dict[str, str]:
    props = session.get_modelmeta().custom_metadata_map
    return {k[len(META_PREFIX) :]: v for k, v in props.items() if k.startswith(META_PREFIX)}


def _metadata_problem(
    raw: dict[str, str], dataset: Dataset, schema: Sequence[dict[str, Any]]
) -> str | None:
    meta: dict[str, Any] = {}
    for key in ("task", "classes", "null_markers"):
        if key not in raw:
            continue
        try:
            meta[key] = json.loads(raw[key])
        except ValueError:
            return (
                f"has the metadata '{META_PREFIX}{key}' = {raw[key]!r}, which is not JSON; "
                f"write the value with json.dumps (e.g. {json.dumps(_example(key, dataset))})"
            )
    if "task" not in meta:
        return (
            f"has no metadata '{META_PREFIX}task'; add it to metadata_props as JSON: "
            f"{json.dumps(dataset.task)}"
        )
    if meta["task"] != dataset.task:
        return (
            f"says its task is {meta['task']!r} (metadata '{META_PREFIX}task'), but the task of "
            f"the target '{dataset.target}' is {dataset.task} (data.task, or inferred)"
        )
    if dataset.task == "classification":
        problem = _classes_problem(meta.get("classes"), dataset)
        if problem:
            return problem
    return _markers_problem(meta.get("null_markers"), schema)


def _classes_problem(classes: Any, dataset: Dataset) -> str | None:
    example = json.dumps(list(dataset.classes))
    if classes is None:
        return (
            f"has no metadata '{META_PREFIX}classes'; a classifier names its classes there, in "
            f"the order of its probability columns, as a JSON list (e.g. {example})"
        )
    if not isinstance(classes, list) or not all(isinstance(c, str | int) for c in classes):
        return (
            f"has the metadata '{META_PREFIX}classes' = {classes!r}; give a JSON list of the "
            f"classes (e.g. {example})"
        )
    named = [str(c) for c in classes]
    if sorted(named) != sorted(dataset.classes):
        return (
            f"names the classes {named} (metadata '{META_PREFIX}classes'), but the target "
            f"'{dataset.target}' has the classes {list(dataset.classes)}; name each of them once, "
            "in the order of the probability columns"
        )
    return None


def _markers_problem(markers: Any, schema: Sequence[dict[str, Any]]) -> str | None:
    if markers is None:
        return None
    categorical = {f["name"] for f in schema if f["kind"] == "categorical"}
    if (
        not isinstance(markers, dict)
        or not set(markers) <= categorical
        or not all(isinstance(v, str) for v in markers.values())
    ):
        return (
            f"has the metadata '{META_PREFIX}null_markers' = {markers!r}; give a JSON object of "
            "categorical column -> the string a missing value is fed as, or leave it out"
        )
    return None


def _outputs_problem(outputs: Sequence[Any], dataset: Dataset) -> str | None:
    if dataset.task != "classification":
        first = outputs[0]
        shape = list(first.shape)
        flat = len(shape) == 1 and not isinstance(shape[0], int)
        if first.type not in NUMERIC or not (flat or _is_column(shape)):
            return (
                f"answers with its first output '{first.name}' as {first.type} "
                f"{_shape(shape)}; a regressor's first output must be its values, "
                "float or double, [n] or [n, 1]"
            )
        return None
    found = {o.name: o for o in outputs}
    k = len(dataset.classes)
    if PROBABILITIES not in found:
        return (
            f"has no output '{PROBABILITIES}' (its outputs: {_names(list(found))}); a "
            f"classifier outputs its class probabilities as '{PROBABILITIES}', [n, {k}]"
        )
    given = found[PROBABILITIES]
    shape = list(given.shape)
    columns_ok = len(shape) == 2 and (shape[1] == k or not isinstance(shape[1], int))
    if given.type not in NUMERIC or not columns_ok or isinstance(shape[0], int):
        return (
            f"has the output '{PROBABILITIES}' as {given.type} {_shape(shape)}; it must be float "
            f"or double [n, {k}], one column per class, its first dimension open"
        )
    return None


def _trial_problem(predictor: OnnxPredictor, dataset: Dataset) -> str | None:
    """What is wrong with the answers to the first training rows, if anything."""
    import numpy as np

    rows = dataset.x("train").head(TRIAL_ROWS)
    try:
        if dataset.task == "classification":
            answers = predictor.probabilities(rows)
        else:
            answers = predictor.scores(rows)
    except Exception as exc:  # a user's graph may raise anything
        return f"cannot predict the first {len(rows)} training rows ({_first(exc)})"
    classification = dataset.task == "classification"
    wanted = (len(rows), len(dataset.classes)) if classification else (len(rows),)
    if answers.shape != wanted:
        return (
            f"answers {len(rows)} training rows with the shape {list(answers.shape)}, "
            f"not {list(wanted)}"
        )
    if not np.isfinite(answers).all():
        return f"answers some of the first {len(rows)} training rows with NaN or infinity"
    if not classification:
        return None
    sums = answers.sum(axis=1)
    outside = (answers < -SUM_TOLERANCE) | (answers > 1 + SUM_TOLERANCE)
    bad = np.flatnonzero(outside.any(axis=1) | (np.abs(sums - 1) > SUM_TOLERANCE))
    if bad.size:
        row = int(bad[0])
        return (
            f"outputs '{PROBABILITIES}' that are no probabilities (training row {row}: "
            f"{np.round(answers[row], 4).tolist()}, summing to {sums[row]:.4g}); output "
            "a softmax of the scores, not the scores themselves"
        )
    return None


def _is_column(shape: Sequence[Any]) -> bool:
    """``[n, 1]``: two dimensions, the first open (any number of rows), the second 1 or open."""
    return (
        len(shape) == 2
        and not isinstance(shape[0], int)
        and (shape[1] == 1 or not isinstance(shape[1], int))
    )


def _shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join("n" if not isinstance(d, int) else str(d) for d in shape) + "]"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:6])
    return shown + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _example(key: str, dataset: Dataset) -> Any:
    return {"task": dataset.task, "classes": list(dataset.classes)}.get(key, {})


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
