"""Saving and loading models in a safe format (skops), never plain pickles.

A skops file lists the types it would build; ci-ml builds only types from
scikit-learn, NumPy and SciPy, plus the ones a project trusts explicitly in
``model.trusted_types``. Anything else is refused before any object is built.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ci_ml.errors import ModelFileError
from ci_ml.rundir import atomic_path

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


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
    """Load a skops file, building only trusted types; anything else is ModelFileError."""
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
    extra = set(trusted)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in extra]
    if refused:
        raise ModelFileError(
            f"{path}: refuses to load untrusted type(s) {', '.join(sorted(refused))}; "
            "if you wrote them, list them under model.trusted_types in ci-ml.yaml."
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot be loaded ({_first_line(exc)}).") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
