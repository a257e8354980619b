"""ONNX export of the built-in pipeline.

:func:`export_onnx` converts the Pipeline that :func:`ci_ml.training.build_pipeline` makes
(numeric: median imputer + scaler; categorical: constant imputer + one-hot; then one of
:data:`SUPPORTED_ESTIMATORS`, or the XGBoost, LightGBM or CatBoost booster of a model bundle,
converted by :mod:`ci_ml.export.boosters`) with skl2onnx; anything else is a ModelFileError
naming the step. Two conversion choices keep the export faithful to scikit-learn:

* The numeric preprocessing runs in float64, with scikit-learn's own arithmetic (``x - mean``
  then ``/ scale``), and the result is cast only at the estimator, to the float type it
  compares in (float32; float64 for LightGBM, which compares in double). Tree thresholds
  often sit exactly on a training value; a float32 scaler lands one ulp beside them and sends
  the row down the other branch (on the example data: 32 flipped classes, |Δp| up to 0.24).
  ONNX Runtime has no float64 ``Imputer`` kernel, so the numeric imputer becomes
  ``Where(IsNaN(x), median, x)``.
* skl2onnx refuses a string imputer whose missing marker is NaN, so the exported graph's
  categorical imputer takes its own fill value as the marker, and the input adapter
  (:mod:`ci_ml.models.runtime`) maps nulls to it. The markers are stored in the ONNX metadata.

:func:`ci_ml.api.export` is the step: it exports the run's model and judges it with
:func:`ci_ml.export.parity.parity` on the whole holdout.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.export import boosters
from ci_ml.models.booster import BoosterModel
from ci_ml.models.bundle import FRAMEWORKS
from ci_ml.rundir import atomic_path

OPSET = {"": 17, "ai.onnx.ml": 3}
META_PREFIX = "ci_ml."

SUPPORTED_ESTIMATORS = frozenset(
    {
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "LogisticRegression",
        "LinearRegression",
        "Ridge",
        "Lasso",
        "ElasticNet",
    }
)
NumericDtype = Literal["float64", "float32"]
_ONNX_FLOATS = {"float32": 1, "float64": 11}  # onnx.TensorProto.FLOAT, DOUBLE


def export_onnx(
    model: Any,
    feature_schema: list[dict[str, Any]],
    task: str,
    path: Path,
    numeric_dtype: NumericDtype = "float64",
) -> Path:
    """Convert a built-in pipeline to ONNX at ``path`` (atomically); ModelFileError if not."""
    require_onnx()
    prepare, estimator = _check_pipeline(model, feature_schema)
    prepare, markers = _with_string_markers(prepare)
    graph = _convert(prepare, estimator, feature_schema, task, numeric_dtype)
    meta = {
        "task": task,
        "null_markers": markers,
        "numeric_dtype": numeric_dtype,
        "classes": _plain_list(getattr(estimator, "classes_", [])),
        "estimator": _estimator_name(estimator),
    }
    for key, value in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, json.dumps(value)
    with atomic_path(path) as tmp:
        tmp.write_bytes(graph.SerializeToString())
    return path


def require_onnx() -> None:
    """MissingExtra naming the ``onnx`` extra unless skl2onnx, onnx and onnxruntime import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(
            "ONNX export (skl2onnx, onnx and onnxruntime)", "onnx", exc.name
        ) from None


def _check_pipeline(model: Any, schema: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The fitted ColumnTransformer and estimator, or a ModelFileError naming the odd step."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = getattr(model, "steps", None)
    if not isinstance(model, Pipeline) or steps is None or len(steps) != 2:
        raise _unsupported(f"the model {type(model).__name__}", "a 2-step Pipeline")
    (_, prepare), (_, estimator) = steps
    if not isinstance(prepare, ColumnTransformer):
        raise _unsupported(f"step '{steps[0][0]}' ({type(prepare).__name__})", "ColumnTransformer")
    if _is_booster(estimator):
        boosters.check(estimator)
    elif type(estimator).__name__ not in SUPPORTED_ESTIMATORS:
        raise _unsupported(
            f"step '{steps[1][0]}' ({type(estimator).__module__}.{type(estimator).__name__})",
            "one of " + ", ".join(sorted(SUPPORTED_ESTIMATORS)) + ", or the booster of a "
            "model.bundle (XGBoost, LightGBM, CatBoost)",
        )
    kinds = {f["name"]: f["kind"] for f in schema}
    for name, branch, columns in prepare.transformers_:
        if name == "remainder" and branch == "drop":
            continue
        _check_branch(name, branch, [kinds.get(c) for c in columns])
    return prepare, estimator


def _check_branch(name: str, branch: Any, kinds: list[str | None]) -> None:
    expected = {
        "numeric": ["SimpleImputer", "StandardScaler"],
        "categorical": ["SimpleImputer", "OneHotEncoder"],
    }
    found = [type(s).__name__ for _, s in getattr(branch, "steps", [])] or [type(branch).__name__]
    kind = kinds[0] if kinds and len(set(kinds)) == 1 else None
    if kind is None or found != expected[kind]:
        raise _unsupported(
            f"preprocessing branch '{name}' ({' -> '.join(found)})",
            "the built-in numeric (SimpleImputer -> StandardScaler) or categorical "
            "(SimpleImputer -> OneHotEncoder) branch",
        )
    if kind == "categorical":
        encoder = branch.steps[-1][1]
        if not all(isinstance(c, str) for cats in encoder.categories_ for c in cats):
            raise _unsupported(f"branch '{name}' with non-string categories", "string categories")


def _unsupported(what: str, allowed: str) -> ModelFileError:
    return ModelFileError(
        f"cannot export to ONNX: {what} is not supported (allowed: {allowed}); "
        "train with the built-in pipeline or drop 'export' from ci-ml.yaml."
    )


def _with_string_markers(prepare: Any) -> tuple[Any, dict[str, str]]:
    """A copy whose categorical imputers take their fill value as the missing marker."""
    prepare = copy.deepcopy(prepare)
    markers: dict[str, str] = {}
    for _name, branch, columns in prepare.transformers_:
        imputer = getattr(branch, "steps", [[None, None]])[0][1]
        if type(imputer).__name__ == "SimpleImputer" and imputer.strategy == "constant":
            fill = imputer.fill_value
            if not isinstance(fill, str):
                raise _unsupported(f"a categorical imputer filling {fill!r}", "a string fill")
            imputer.missing_values = fill
            markers.update({c: fill for c in columns})
    return prepare, markers


def _convert(
    prepare: Any, estimator: Any, schema: list[dict[str, Any]], task: str, numeric: str
) -> Any:
    """Preprocessing graph (float64 or float32 numerics) -> Cast to the estimator's float
    type(s) (:func:`_estimator_casts`) -> estimator graph."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )
    from sklearn.impute import SimpleImputer

    number = DoubleTensorType if numeric == "float64" else FloatTensorType
    inputs = [
        (f["name"], number([None, 1]) if f["kind"] == "numeric" else StringTensorType([None, 1]))
        for f in schema
    ]
    casts = [_ONNX_FLOATS[t] for t in _estimator_casts(estimator)]
    at_estimator = DoubleTensorType if casts[-1] == TensorProto.DOUBLE else FloatTensorType
    width = int(sum(_width(b, c) for n, b, c in prepare.transformers_ if n != "remainder"))
    options = _options(prepare, estimator, task)
    try:
        front = convert_sklearn(
            prepare,
            initial_types=inputs,
            target_opset=OPSET,
            custom_conversion_functions={SimpleImputer: _imputer_converter},
        )
        back = convert_sklearn(
            estimator,
            initial_types=[("features", at_estimator([None, width]))],
            target_opset=OPSET,
            options=options,
            custom_conversion_functions={type(estimator): _without_bools(estimator)},
        )
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise ModelFileError(f"skl2onnx cannot convert this pipeline ({_first(exc)}).") from None
    out = front.graph.output[0].name
    for i, cast in enumerate(casts):
        name = "features_cast" if i == len(casts) - 1 else f"features_cast{i}"
        front.graph.node.append(helper.make_node("Cast", [out], [name], to=cast))
        out = name
    front.graph.output.pop()
    front.graph.output.append(
        helper.make_tensor_value_info("features_cast", casts[-1], [None, width])
    )
    _same_opsets(front, back)
    merged = onnx.compose.merge_models(
        front, back, io_map=[("features_cast", "features")], prefix2="est_"
    )
    onnx.checker.check_model(merged)
    return merged


def _estimator_casts(estimator: Any) -> tuple[str, ...]:
    """The float types the features are cast to before the estimator: float32 (scikit-learn's
    trees compare in it), or a booster's (:func:`ci_ml.export.boosters.casts`)."""
    return boosters.casts(estimator) if _is_booster(estimator) else ("float32",)


def _is_booster(estimator: Any) -> bool:
    return isinstance(estimator, BoosterModel)


def _options(prepare: Any, estimator: Any, task: str) -> dict[int, dict[str, Any]]:
    """skl2onnx's options of the estimator: a classifier without ZipMap; a booster (its
    converter registered with skl2onnx) told whether it reads a sparse matrix."""
    if _is_booster(estimator):
        boosters.register()
        sparse = bool(getattr(prepare, "sparse_output_", False))
        return {id(estimator): boosters.options(estimator, sparse)}
    return {id(estimator): {"zipmap": False}} if task == "classification" else {}


def _without_bools(estimator: Any) -> Any:
    """skl2onnx's converter for ``estimator``, with Python bools in int-list attributes made ints.

    skl2onnx 1.20's tree converters write ``False`` into ``nodes_missing_value_tracks_true``
    for leaves; protobuf 6 warns ("Expected an int, got a boolean") and protobuf 7 refuses.
    """
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    original = get_converter(sklearn_operator_name_map[type(estimator)])

    def convert(scope: Any, operator: Any, container: Any) -> None:
        original(scope, operator, _IntAttributes(container))

    return convert


class _IntAttributes:
    """A conversion container whose ``add_node`` turns bools inside list attributes into ints."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, bool) for v in value):
                attrs[key] = [int(v) if isinstance(v, bool) else v for v in value]
        return self._container.add_node(*args, **attrs)


def _same_opsets(*models: Any) -> None:
    """Give every model the highest version of each domain any of them imports (merge needs it)."""
    from onnx import helper

    versions: dict[str, int] = {}
    for model in models:
        for entry in model.opset_import:
            versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    for model in models:
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))


def _width(branch: Any, columns: list[str]) -> int:
    encoder = branch.steps[-1][1]
    if hasattr(encoder, "categories_"):
        return sum(len(c) for c in encoder.categories_)
    return len(columns)


def _imputer_converter(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer: float64 as Where(IsNaN(x), statistics, x); other types by skl2onnx."""
    import numpy as np
    from skl2onnx.algebra.onnx_ops import OnnxConcat, OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    imputer, opv = operator.raw_operator, container.target_opset
    names = [v.full_name for v in operator.inputs]
    x = names[0] if len(names) == 1 else OnnxConcat(*names, axis=1, op_version=opv)
    fill = np.asarray(imputer.statistics_, dtype=np.float64).reshape(1, -1)
    where = OnnxWhere(
        OnnxIsNaN(x, op_version=opv),
        fill,
        x,
        op_version=opv,
        output_names=[operator.outputs[0].full_name],
    )
    where.add_to(scope, container)


def _estimator_name(estimator: Any) -> str:
    """The estimator's class, or a booster's library type (``xgboost.core.Booster``)."""
    if _is_booster(estimator):
        return FRAMEWORKS[estimator.framework].booster_type
    return type(estimator).__name__


def _plain_list(values: Any) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
