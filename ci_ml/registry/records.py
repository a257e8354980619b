"""What the registry stores, and the small rules around it: versions, promotion events, digests,
keys and strict JSON. :mod:`ci_ml.registry.base` builds the registry on them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ci_ml.errors import BadInputError, ModelFileError

VERSION_LENGTH = 12
ACTIONS = ("promote", "rollback")
OBJECTS = "objects/sha256/"
VERSIONS = "versions/"
PRODUCTION = "production/"
LIST_HINT = "run `ci-ml registry list` to see the registered versions"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelVersion:
    """One registered model: immutable, addressed by the sha256 of its model file."""

    version: str
    digest: str
    created_at: str
    registered_by: str
    metadata: dict[str, Any]
    files: tuple[str, ...]
    model_file: str = "model.skops"  # which of the files is the model (its digest names it)


@dataclass(frozen=True)
class PromotionEvent:
    """One change of production: event ``seq`` made ``version`` replace ``previous``."""

    seq: int
    version: str
    digest: str
    previous: str | None
    at: str
    by: str
    action: str
    record: dict[str, Any]


def utc_now() -> str:
    """The current time as ISO 8601 UTC with microseconds, e.g. ``2024-05-01T12:00:00.000001Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hash_stream(src: BinaryIO, dst: BinaryIO | None = None) -> str:
    """Read ``src`` to the end (copying it into ``dst`` if given) and return its sha256 hex."""
    sha = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        sha.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return sha.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    try:
        with path.open("rb") as f:
            return hash_stream(f)
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err.strerror or err}") from err


def normalize_version(ref: str) -> str:
    """Accept a 12-character version or a full sha256 digest (``sha256:`` optional); lower-case it.

    Raises :class:`BadInputError` for anything else.
    """
    text = ref.strip().lower().removeprefix("sha256:")
    is_hex = all(c in "0123456789abcdef" for c in text)
    if not is_hex or len(text) not in (VERSION_LENGTH, 64):
        raise BadInputError(
            f"{ref!r} is not a model version: give the 12-character version or the full "
            f"64-character sha256 digest; {LIST_HINT}"
        )
    return text


def event_key(seq: int) -> str:
    """The key of promotion event ``seq``."""
    return f"{PRODUCTION}{seq:06d}.json"


def event_seq(name: str) -> int | None:
    """The sequence number of an event file name like ``000012.json``; None for other names."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    if name.endswith(".json") and stem.isdigit():
        return int(stem)
    return None


def to_json(value: Any, what: str) -> bytes:
    """Strict JSON bytes of ``value``; :class:`BadInputError` naming ``what`` if it is not JSON."""
    try:
        return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    except (TypeError, ValueError) as err:
        raise BadInputError(
            f"the {what} cannot be stored as JSON ({err}); use str, int, float (not NaN or "
            "infinity), bool, None, lists and dicts with string keys"
        ) from err
