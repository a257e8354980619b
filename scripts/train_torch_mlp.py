"""Train a small PyTorch MLP on the example credit data and write it as ONNX for ci-ml.

ci-ml runs it as the training command (docs/frameworks.md, "Your own model as ONNX")::

    model:
      command: python scripts/train_torch_mlp.py
      output: model.onnx

It reads the training rows from ``$CI_ML_TRAIN_DATA`` (Parquet), the target ``$CI_ML_TARGET``,
the feature columns ``$CI_ML_FEATURES``, the classes ``$CI_ML_CLASSES`` (JSON lists) and the
seed ``$CI_ML_SEED``, and writes ``$CI_ML_MODEL_PATH``. The model is two graphs joined:

1. the preprocessing, fitted with scikit-learn and converted by skl2onnx: numeric columns
   imputed with the median and standardised, categorical ones one-hot encoded (a missing value
   is its own category, fed as the empty string; unknown categories are ignored), from one
   ``[n, 1]`` input per feature column to one float matrix;
2. the MLP (two hidden layers of 32 ReLU units), trained with Adam on the cross-entropy and
   exported with ``torch.onnx.export``; a softmax of its logits is the output ``probabilities``.

The metadata ``ci_ml.task``, ``ci_ml.classes`` and ``ci_ml.null_markers`` say what ci-ml needs.
The same seed and data give the same file, byte for byte (one thread, deterministic kernels).
Needs torch, onnxscript (the exporter of ``torch.onnx.export``), scikit-learn, skl2onnx, onnx.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import torch
from onnx import compose, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

OPSET = 18
MISSING = ""  # how ci-ml feeds a missing categorical value (declared in ci_ml.null_markers)
HIDDEN = 32
EPOCHS = 60
BATCH = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4


def main() -> None:
    frame = pd.read_parquet(os.environ["CI_ML_TRAIN_DATA"])
    target = os.environ["CI_ML_TARGET"]
    features = json.loads(os.environ["CI_ML_FEATURES"])
    classes = json.loads(os.environ["CI_ML_CLASSES"])
    seed = int(os.environ.get("CI_ML_SEED", "0"))
    if not classes:
        sys.exit("train_torch_mlp.py trains a classifier; the task here is regression")

    numeric = [c for c in features if frame[c].dtype.kind in "biuf"]
    categorical = [c for c in features if c not in numeric]
    x = inputs_of(frame, numeric, categorical)
    prepare = fit_preparation(x, numeric, categorical)
    matrix = prepare.transform(x).astype(np.float32)
    labels = frame[target].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()

    mlp = fit_mlp(matrix, labels, len(classes), seed)
    front = onnx_of_preparation(prepare, numeric, categorical)
    model = joined(front, onnx_of_mlp(mlp, matrix), len(classes))
    declare(model, classes, categorical)
    onnx.checker.check_model(model, full_check=True)
    Path(os.environ["CI_ML_MODEL_PATH"]).write_bytes(model.SerializeToString())
    width = matrix.shape[1]
    print(f"trained an MLP on {len(frame)} rows, {width} encoded columns", file=sys.stderr)


def inputs_of(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The feature columns as the ONNX graph gets them: float32 numbers, text categories."""
    x = frame[numeric + categorical].copy()
    x[numeric] = x[numeric].astype(np.float32)
    x[categorical] = x[categorical].astype(object).where(x[categorical].notna(), MISSING)
    x[categorical] = x[categorical].astype(str)
    return x


def fit_preparation(x: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Any:
    """Median imputer + scaler for the numbers, one-hot for the categories, fitted on ``x``."""
    scale = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    steps = [
        ("numeric", scale, numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ]
    # a branch without columns is left out: skl2onnx has no graph for an empty one
    return ColumnTransformer([s for s in steps if s[2]], sparse_threshold=0.0).fit(x)


def fit_mlp(matrix: np.ndarray, labels: np.ndarray, classes: int, seed: int) -> torch.nn.Module:
    """The MLP, trained on the whole training set with a seeded order of mini-batches."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    width = matrix.shape[1]
    mlp = torch.nn.Sequential(
        torch.nn.Linear(width, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, classes),
    )
    optimizer = torch.optim.Adam(mlp.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    x, y = torch.from_numpy(matrix), torch.from_numpy(labels.astype(np.int64))
    order = torch.Generator().manual_seed(seed)
    loss = torch.nn.CrossEntropyLoss()
    mlp.train()
    for _epoch in range(EPOCHS):
        for batch in torch.randperm(len(x), generator=order).split(BATCH):
            optimizer.zero_grad()
            loss(mlp(x[batch]), y[batch]).backward()
            optimizer.step()
    return mlp.eval()


def onnx_of_preparation(prepare: Any, numeric: list[str], categorical: list[str]) -> Any:
    """skl2onnx's graph: one [n, 1] input per column (float or string) -> 'features' [n, w]."""
    inputs = [(c, FloatTensorType([None, 1])) for c in numeric]
    inputs += [(c, StringTensorType([None, 1])) for c in categorical]
    graph = convert_sklearn(
        prepare,
        initial_types=inputs,
        target_opset={"": OPSET, "ai.onnx.ml": 3},
        final_types=[("features", FloatTensorType([None, None]))],
    )
    return graph


def onnx_of_mlp(mlp: torch.nn.Module, matrix: np.ndarray) -> Any:
    """torch.onnx.export's graph of the MLP: 'features' [n, w] -> 'logits' [n, K]."""
    example = torch.from_numpy(matrix[:2])
    rows = torch.export.Dim("rows")
    # torch 2.13's exporter says, each run, that torchvision's operators are not registered
    # and that one of its own internals is deprecated: nothing this model uses
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
    program = torch.onnx.export(
        mlp,
        (example,),
        input_names=["features"],
        output_names=["logits"],
        dynamic_shapes=({0: rows},),
        opset_version=OPSET,
        verbose=False,
    )
    assert program is not None
    return program.model_proto


def joined(front: Any, back: Any, classes: int) -> Any:
    """The preprocessing graph feeding the MLP's, and a softmax of the logits as
    'probabilities' [n, K] (the model's only output)."""
    back.ir_version = front.ir_version = max(front.ir_version, back.ir_version)
    versions = {o.domain: o.version for o in [*front.opset_import, *back.opset_import]}
    for part in (front, back):  # merge_models wants the same opsets on both sides
        del part.opset_import[:]
        part.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    model = compose.merge_models(front, back, io_map=[("features", "features")], prefix2="mlp_")
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    graph = model.graph
    logits = graph.output[0].name
    graph.node.append(helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["rows", classes])
    )
    # the same seed, the same file: no random graph name (skl2onnx's) and none of the
    # exporter's per-node notes, which hold this machine's paths
    graph.name = "credit_mlp"
    graph.doc_string = "scikit-learn preprocessing (skl2onnx) -> PyTorch MLP -> softmax"
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    model.producer_name, model.producer_version = "pytorch", torch.__version__
    return model


def declare(model: Any, classes: list[str], categorical: list[str]) -> None:
    """The metadata ci-ml reads: the task, the classes in probability-column order, and how a
    missing categorical value is fed."""
    meta = {
        "ci_ml.task": "classification",
        "ci_ml.classes": classes,
        "ci_ml.null_markers": {c: MISSING for c in categorical},
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)


if __name__ == "__main__":
    main()
