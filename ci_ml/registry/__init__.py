"""Model versions and the production pointer, behind one interface with backends by URL scheme.

    registry = open_registry("models/registry")          # a local directory
    registry = open_registry("s3://bucket/ci-ml")        # an S3 (or MinIO) bucket
    current = registry.get_production()
    version = registry.register({"model.skops": path}, metadata, by="ci")
    registry.promote(version.version, current and current.version, by="deploy")

See ``docs/registry.md`` for the layout, the compare-and-swap and the S3 permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ci_ml.errors import BadInputError
from ci_ml.registry.base import Registry
from ci_ml.registry.local import LocalRegistry
from ci_ml.registry.records import ModelVersion, PromotionEvent

__all__ = ["ModelVersion", "PromotionEvent", "Registry", "open_registry"]


def _open_local(url: str, root: Path) -> Registry:
    path = url
    if url.startswith("file:"):
        path = unquote(url.removeprefix("file:").removeprefix("//"))
        if path.startswith("localhost/"):
            path = path.removeprefix("localhost")
    return LocalRegistry(root / path)  # an absolute path replaces root


def _open_object_store(url: str, root: Path) -> Registry:
    try:
        from ci_ml.registry.objectstore import ObjectStoreRegistry
    except ImportError as err:
        raise BadInputError(
            f"the registry {url} needs the S3 libraries ({err.name or err} is missing); "
            "install them with: pip install 'ci-ml[s3]'"
        ) from err
    return ObjectStoreRegistry(url)


# A plain path has no scheme; one letter is a Windows drive (C:\...), not a scheme.
_BACKENDS: dict[str, Callable[[str, Path], Registry]] = {
    "": _open_local,
    "file": _open_local,
    "s3": _open_object_store,
}


def open_registry(url: str, *, root: Path | None = None) -> Registry:
    """The registry at ``url``: a directory path, ``file://<path>`` or ``s3://<bucket>/<prefix>``.

    Relative paths are resolved against ``root`` (default: the current directory).
    """
    if not url.strip():
        raise BadInputError("the registry URL is empty; give a directory or an s3:// URL")
    scheme = urlsplit(url).scheme.lower()
    key = "" if len(scheme) == 1 else scheme
    if key not in _BACKENDS:
        supported = "a directory path, " + ", ".join(f"{s}://" for s in _BACKENDS if s)
        raise BadInputError(
            f"the registry URL {url!r} has the unknown scheme {scheme!r}; use {supported}"
        )
    return _BACKENDS[key](url, Path.cwd() if root is None else root)
