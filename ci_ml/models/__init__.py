"""Model files: saved and loaded only through formats that cannot run code, never pickle.

A run's model is one file, named in its ``model.json`` (``model_file``):

* ``model.skops`` — a scikit-learn pipeline in skops, loaded under a trust list
  (:mod:`ci_ml.models.skops`);
* ``model.bundle`` — a booster of XGBoost, LightGBM or CatBoost in its library's own data
  format, beside its scikit-learn preprocessing in skops (:mod:`ci_ml.models.bundle`);
* ``model.onnx`` — a model a training command exported to ONNX itself, run by ONNX Runtime
  (:mod:`ci_ml.models.onnx`, which also holds what such a file must declare; the predictor
  itself, which also answers for ci-ml's own exports, is :mod:`ci_ml.models.runtime`).

:func:`load_model` picks the loader by the file's name. The file's sha256 is the model's
digest, which the decision record, the registry and deploy check.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci_ml.models.bundle import BOOSTER_TYPES, load_bundle
from ci_ml.models.onnx import load_onnx
from ci_ml.models.skops import TRUSTED_TYPES, load_skops, save_model, sha256_file

__all__ = ["BOOSTER_TYPES", "TRUSTED_TYPES", "load_model", "save_model", "sha256_file"]


def load_model(
    path: Path, trusted: Iterable[str] = (), allowed: frozenset[str] | None = None
) -> Any:
    """The model in ``path`` (a ``.skops`` file, a ``.bundle`` or an ``.onnx`` file),
    building only trusted types; anything else is a ModelFileError.

    ``trusted`` adds exact type names (``model.trusted_types``) to ``allowed`` (by default
    :data:`TRUSTED_TYPES` and the booster types of :data:`BOOSTER_TYPES`).
    """
    base = TRUSTED_TYPES | BOOSTER_TYPES if allowed is None else allowed
    names = base | set(trusted)
    if path.suffix == ".bundle":
        return load_bundle(path, names)
    if path.suffix == ".onnx":
        return load_onnx(path)
    return load_skops(path, names)
