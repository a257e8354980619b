"""Saving and loading models in a safe format (skops), never plain pickles.

A skops file lists the types it would build. ci-ml builds only:

* the types skops itself trusts by default, its reviewed list of plain values and containers,
  NumPy dtypes and ufuncs, SciPy ufuncs, scikit-learn's estimators and a few of its loss and
  binning internals;
* :data:`TRUSTED_TYPES`, the few further types that the built-in pipelines of every supported
  estimator need (found by saving them and asking ``skops.io.get_untrusted_types``;
  ``tests/test_modelio.py`` keeps the list exact);
* the types a project lists in ``model.trusted_types``.

Anything else (``builtins.eval``, ``os.system``, a function or class of any other module) is
refused before any object is built. Nothing is trusted by a prefix such as ``builtins.``.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci_ml.errors import ModelFileError
from ci_ml.rundir import atomic_path

TRUSTED_TYPES = frozenset(
    {
        # a dtype object (e.g. a tree's node layout): data, no behaviour
        "numpy.dtype",
        # the node stores of the tree models (decision trees, forests, gradient boosting);
        # skops leaves them untrusted because their node indices are not bounds-checked by
        # scikit-learn: a hand-made file could crash predict() or make it read out of bounds
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(model: Any, path: Path) -> str:
    """Write ``model`` atomically with skops; return the file's sha256."""
    import skops.io as sio

    with atomic_path(path) as tmp:
        sio.dump(model, tmp)
    return sha256_file(path)


def load_model(path: Path, trusted: Iterable[str] = ()) -> Any:
    """Load a skops file, building only trusted types; anything else is ModelFileError.

    ``trusted`` adds exact type names (``model.trusted_types``) to :data:`TRUSTED_TYPES`.
    """
    import skops.io as sio

    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; run 'ci-ml train' first.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path}: not a skops model file; ci-ml loads only skops files "
            "(save with skops.io.dump, never pickle)."
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelFileError(f"{path}: broken skops file ({_first_line(exc)}).") from None
    allowed = TRUSTED_TYPES | set(trusted)
    refused = sorted(t for t in untrusted if t not in allowed)
    if refused:
        raise ModelFileError(
            f"{path}: refuses to load untrusted type(s) {', '.join(refused)}; "
            "list them under model.trusted_types in ci-ml.yaml only if you trust "
            "whoever wrote this file."
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot be loaded ({_first_line(exc)}).") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
