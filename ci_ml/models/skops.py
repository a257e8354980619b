"""scikit-learn models in skops: saved byte for byte reproducibly, loaded under a trust list.

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
    """Write ``model`` atomically with skops, byte for byte reproducible; return its sha256.

    skops names the arrays in its zip by the Python object ids of the moment and stamps every
    entry with the time, so the same fitted model gave another file (and another registry
    version) at each save. :func:`_reproducible` renames both by first use and drops the times.
    """
    import skops.io as sio

    with atomic_path(path) as tmp:
        tmp.write_bytes(_reproducible(sio.dumps(model)))
    return sha256_file(path)


# the time every entry of a saved model carries: the earliest a zip can hold
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _reproducible(data: bytes) -> bytes:
    """The skops zip ``data`` with object ids renumbered by first use and no timestamps."""
    import io
    import json

    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}
        _renumber(schema, ids, files)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            entries = [("schema.json", json.dumps(schema).encode())]
            entries += [(new, source.read(old)) for old, new in files.items()]
            for name, content in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                target.writestr(info, content)
    return out.getvalue()


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Replace every ``__id__`` by its order of first use, and each array file's name by it."""
    if isinstance(node, list):
        for item in node:
            _renumber(item, ids, files)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("__id__"), int):
        node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
    if isinstance(node.get("file"), str) and node.get("__loader__") != "JsonNode":
        old = node["file"]
        suffix = old.rsplit(".", 1)[-1] if "." in old else "bin"
        node["file"] = files.setdefault(old, f"{len(files) + 1:06d}.{suffix}")
    for key, value in node.items():
        if key not in ("__id__", "file"):
            _renumber(value, ids, files)


def load_skops(path: Path, allowed: Iterable[str] = TRUSTED_TYPES) -> Any:
    """Load a skops file, building only the ``allowed`` types (exact names) besides those
    skops trusts itself; anything else is ModelFileError."""
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
    allowed = set(allowed)
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
