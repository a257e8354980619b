"""ONNX converters for the boosters of a model bundle, plugged into skl2onnx.

A loaded bundle is a Pipeline whose last step is a :class:`~ci_ml.models.booster.BoosterModel`
holding a native booster, not the library's scikit-learn wrapper. :func:`register` tells
skl2onnx how to convert one (``update_registered_converter``); the converter dispatches on the
booster's framework through :data:`CONVERTERS`, each writing one ``TreeEnsemble`` node:

* XGBoost: onnxmltools' converter, given an ``XGBClassifier``/``XGBRegressor`` rebuilt from
  the booster's own UBJSON bytes (``load_model``; no pickle).
* LightGBM: onnxmltools' converter, given the booster in onnxmltools' ``WrappedBooster``
  (the wrapper its own ``convert_lightgbm`` uses for a bare ``lightgbm.Booster``).
* CatBoost: CatBoost's own ONNX export (``catboost.utils.convert_to_onnx_object``), whose tree
  ensemble node is copied into the graph.

Every converter labels its classes with the data's (``classes_``), so the graph answers like
the bundle: ``label`` and ``probabilities`` (a column per class in ``classes_`` order) for a
classifier, ``variable`` (``[n, 1]``) for a regressor. XGBoost reads the entries a sparse matrix
does not store as missing; when the bundle's ColumnTransformer outputs a sparse matrix, the
converter (option ``zeros_as_missing``) turns the zeros into NaN before the trees, as XGBoost
sees them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.models.booster import BoosterModel

ALIAS = "CiMlBoosterModel"
ZEROS_AS_MISSING = "zeros_as_missing"


@dataclass(frozen=True)
class Library:
    """How a booster's library converts: its name, the module its converter needs beyond
    skl2onnx, the float type it reads features in (and compares them with its thresholds in),
    and the one it adds the trees' leaf values in."""

    title: str
    converter_module: str
    reads: str
    sums: str


# XGBoost's trees go to onnxmltools as its JSON dump, whose thresholds are float32 values in
# their shortest decimals: read as float64 they move off the training values they sit on
LIBRARIES = {
    "xgboost": Library("XGBoost", "onnxmltools", reads="float32", sums="float32"),
    "lightgbm": Library("LightGBM", "onnxmltools", reads="float64", sums="float64"),
    "catboost": Library("CatBoost", "catboost", reads="float32", sums="float64"),
}


def register() -> None:
    """Register the BoosterModel parser, shape calculator and converter with skl2onnx."""
    from skl2onnx import update_registered_converter

    update_registered_converter(
        BoosterModel,
        ALIAS,
        _shape,
        _convert,
        parser=_parse,
        options={ZEROS_AS_MISSING: [False, True]},
    )


def options(model: BoosterModel, sparse: bool) -> dict[str, Any]:
    """skl2onnx's options for ``model`` when its input is (``sparse``) a sparse matrix:
    only XGBoost reads the zeros a sparse matrix leaves out as missing."""
    return {ZEROS_AS_MISSING: sparse and model.framework == "xgboost"}


@dataclass(frozen=True)
class Rule:
    """A param of a booster whose values outside ``allowed`` the converters get wrong or
    cannot take (``aliases``: the library's other names for it)."""

    param: str
    default: Any
    allowed: tuple[Any, ...]
    aliases: tuple[str, ...] = ()


RULES = {
    # dart's tree weights and gblinear's coefficients are not in the trees onnxmltools reads
    "xgboost": (Rule("booster", "gbtree", ("gbtree",)),),
    # onnxmltools sums the trees (rf averages them) and leaves out linear leaves
    "lightgbm": (
        Rule("boosting_type", "gbdt", ("gbdt", "dart", "goss"), ("boosting", "boost")),
        Rule("linear_tree", False, (False,), ("linear_trees",)),
    ),
    # CatBoost exports only oblivious (symmetric) trees to ONNX
    "catboost": (Rule("grow_policy", "SymmetricTree", ("SymmetricTree",)),),
}


def unsupported(framework: str, params: dict[str, Any]) -> str | None:
    """What the converters cannot take among a booster's ``params`` (an absent one has its
    default), as ``XGBoost with booster='dart' is not supported (…); set model.params.booster
    to one of those``; None when they take them all."""
    for rule in RULES[framework]:
        found = [params[n] for n in (rule.param, *rule.aliases) if params.get(n) is not None]
        value = found[0] if found else rule.default
        if value not in rule.allowed:
            return (
                f"{LIBRARIES[framework].title} with {rule.param}={value!r} is not supported "
                f"(allowed: {', '.join(map(repr, rule.allowed))}); set "
                f"model.params.{rule.param} to one of those"
            )
    return None


def check(model: BoosterModel) -> None:
    """MissingExtra unless the converter of ``model``'s library imports; ModelFileError for
    a kind of booster the converters would get wrong or cannot take, before anything runs."""
    require(model.framework)
    problem = unsupported(model.framework, _TRAINED[model.framework](model.booster))
    if problem is not None:
        raise ModelFileError(
            f"cannot export to ONNX: {problem} or drop 'export' from ci-ml.yaml "
            "(docs/frameworks.md)."
        )


def _xgboost_trained(booster: Any) -> dict[str, Any]:
    return {"booster": json.loads(booster.save_config())["learner"]["gradient_booster"]["name"]}


def _lightgbm_trained(booster: Any) -> dict[str, Any]:
    params = booster.params  # as the model text records them
    linear = str(params.get("linear_tree", False)).lower() in ("true", "1")
    return {"boosting_type": params.get("boosting"), "linear_tree": linear}


def _catboost_trained(booster: Any) -> dict[str, Any]:
    return {"grow_policy": booster.get_all_params().get("grow_policy")}


# the params of RULES as a fitted booster records them
_TRAINED: dict[str, Callable[[Any], dict[str, Any]]] = {
    "xgboost": _xgboost_trained,
    "lightgbm": _lightgbm_trained,
    "catboost": _catboost_trained,
}


def require(framework: str) -> None:
    """MissingExtra naming the ``onnx`` extra unless ``framework``'s converter imports."""
    library = LIBRARIES[framework]
    try:
        importlib.import_module(library.converter_module)
    except ImportError:
        raise MissingExtra(
            f"ONNX export of {library.title} models", "onnx", library.converter_module
        ) from None


def _parse(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
    """A classifier's outputs ``label`` and ``probabilities`` (no ZipMap), else ``variable``;
    their types are set by :func:`_shape`."""
    from skl2onnx.common.data_types import FloatTensorType

    operator = scope.declare_local_operator(ALIAS, model)
    operator.inputs = inputs
    names = ["label", "probabilities"] if model.task == "classification" else ["variable"]
    for name in names:
        operator.outputs.append(scope.declare_local_variable(name, FloatTensorType()))
    return operator.outputs


def _shape(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    model = operator.raw_operator
    rows = operator.inputs[0].get_first_dimension()
    if model.task != "classification":
        operator.outputs[0].type = FloatTensorType([rows, 1])
        return
    labels = class_labels(model.classes_)
    kind = Int64TensorType if labels.dtype.kind == "i" else StringTensorType
    operator.outputs[0].type = kind([rows])
    operator.outputs[1].type = FloatTensorType([rows, len(labels)])


def class_labels(classes: Any) -> Any:
    """The classes as the graph's labels: int64 when they are all integers, else strings."""
    import numpy as np

    values = list(classes)
    if values and all(isinstance(v, int | np.integer) for v in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray([str(v) for v in values], dtype=str)


def casts(model: BoosterModel) -> tuple[str, ...]:
    """The float types the features are cast to, in turn, before the booster's trees, so that
    the graph compares and adds as the library does: XGBoost reads and adds in float32;
    LightGBM compares float64 values with float64 thresholds and adds in float64; CatBoost
    reads float32 values (its borders are float32) and adds in float64, so its trees get the
    float32 values as float64."""
    library = LIBRARIES[model.framework]
    return tuple(dict.fromkeys([library.reads, library.sums]))


def _convert(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    model = operator.raw_operator
    options = container.get_options(model, {ZEROS_AS_MISSING: False})
    if options[ZEROS_AS_MISSING]:
        operator = _Rebuilt(operator, model, [_zeros_as_nan(scope, operator, container)])
    labels = class_labels(model.classes_) if model.task == "classification" else None
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    CONVERTERS[model.framework](scope, operator, _TreeNodes(container, labels, double))


class _TreeNodes:
    """A conversion container that finishes each tree ensemble node the converters add.

    A classifier's classes get the data's labels (the boosters were fitted on each class's
    place, 0..K-1, and their converters label them so). With float64 input, the thresholds,
    leaf weights and base values become float64 tensors (``*_as_tensor``, ai.onnx.ml 3):
    ONNX Runtime then compares and adds in float64, as LightGBM does (float attributes would
    round each threshold to float32 and send a value within an ulp of it the other way) and
    as CatBoost adds (float32 sums drift by ~1e-5 relative over 1,000 trees).
    """

    def __init__(self, container: Any, labels: Any, double: bool) -> None:
        self._container = container
        self._labels = labels
        self._double = double

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, *args: Any, **attrs: Any) -> Any:
        if op_type == "TreeEnsembleClassifier" and self._labels is not None:
            attrs.pop("classlabels_int64s", None)
            attrs.pop("classlabels_strings", None)
            kind = "int64s" if self._labels.dtype.kind == "i" else "strings"
            attrs[f"classlabels_{kind}"] = self._labels.tolist()
        if op_type.startswith("TreeEnsemble") and self._double:
            attrs = _as_double_tensors(attrs)
        return self._container.add_node(op_type, *args, **attrs)


def _as_double_tensors(attrs: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from onnx import numpy_helper

    for name in ("nodes_values", "class_weights", "target_weights", "base_values"):
        if name in attrs:
            values = np.asarray(attrs.pop(name), dtype=np.float64)
            attrs[f"{name}_as_tensor"] = numpy_helper.from_array(values, f"{name}_as_tensor")
    attrs["op_version"] = 3
    return attrs


def _zeros_as_nan(scope: Any, operator: Any, container: Any) -> str:
    """``Where(x == 0, NaN, x)`` of the operator's input; the name of its output."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    kind = TensorProto.DOUBLE if double else TensorProto.FLOAT
    zero, nan = scope.get_unique_variable_name("zero"), scope.get_unique_variable_name("nan")
    container.add_initializer(zero, kind, [], [0.0])
    container.add_initializer(nan, kind, [], [float("nan")])
    is_zero, out = scope.get_unique_variable_name("is_zero"), scope.get_unique_variable_name("x")
    container.add_node("Equal", [operator.inputs[0].full_name, zero], [is_zero])
    container.add_node("Where", [is_zero, nan, operator.inputs[0].full_name], [out])
    return out


class _Rebuilt:
    """The skl2onnx operator as another library's converter needs it: its ``raw_operator``
    replaced (the rebuilt estimator), and optionally its input names."""

    def __init__(self, operator: Any, raw: Any, input_names: list[str] | None = None) -> None:
        self._operator = operator
        self.raw_operator = raw
        self._input_names = input_names

    def __getattr__(self, name: str) -> Any:
        return getattr(self._operator, name)

    @property
    def input_full_names(self) -> list[str]:
        if self._input_names is not None:
            return self._input_names
        return list(self._operator.input_full_names)


def _xgboost(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' XGBoost converter on the scikit-learn wrapper rebuilt from the booster."""
    import xgboost
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    model = _model_of(operator)
    classifier = model.task == "classification"
    rebuilt = xgboost.XGBClassifier() if classifier else xgboost.XGBRegressor()
    rebuilt.load_model(bytearray(model.booster.save_raw("ubj")))
    convert_xgboost(scope, _Rebuilt(operator, rebuilt), container)


def _lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter on the booster in its ``WrappedBooster``."""
    from onnxmltools.convert.lightgbm._parse import WrappedBooster
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    wrapped = WrappedBooster(_model_of(operator).booster)
    convert_lightgbm(scope, _Rebuilt(operator, wrapped), container)


def _catboost(scope: Any, operator: Any, container: Any) -> None:
    """CatBoost's own ONNX export, its tree ensemble node copied into the graph."""
    from catboost.utils import convert_to_onnx_object
    from onnx import helper

    model = _model_of(operator)
    exported = convert_to_onnx_object(model.booster)
    trees = [n for n in exported.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(trees) != 1 or exported.graph.initializer:
        kinds = ", ".join(n.op_type for n in exported.graph.node)
        raise NotImplementedError(f"CatBoost exported {kinds}; ci-ml takes one tree ensemble")
    node = trees[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    container.add_node(
        node.op_type,
        operator.input_full_names,
        operator.output_full_names,
        op_domain=node.domain,
        name=scope.get_unique_operator_name(node.op_type),
        **attrs,
    )


def _model_of(operator: Any) -> BoosterModel:
    model = operator.raw_operator
    assert isinstance(model, BoosterModel)
    return model


CONVERTERS: dict[str, Callable[[Any, Any, Any], None]] = {
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "catboost": _catboost,
}
