"""The model registry: immutable model versions and a production pointer with full history.

Every backend stores the same layout of keys ('/'-separated, relative to its root)::

    objects/sha256/<digest>        every stored file, named by the sha256 of its bytes
    versions/<version>.json        a version's record; created last, create-only
    production/<seq:06d>.json      promotion events 1, 2, 3 ...; each created create-only

A version exists once its record exists; the record is written after all of its files, so a
process killed half-way leaves at most unreferenced objects, never a half-registered version.
Production is the newest event. Promotion is a compare-and-swap: read the newest event N, refuse
unless it names the expected version, then create event N+1 create-only; when two processes race,
the store lets exactly one create it and the other gets :class:`~ci_ml.errors.ConflictError`.

:class:`Registry` implements all of that on five storage primitives that a backend provides
(``_read``, ``_create``, ``_list``, ``_put_file``, ``_get_file``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ci_ml.errors import BadInputError, ConflictError, ModelFileError, ServiceError
from ci_ml.registry.records import (
    ACTIONS,
    LIST_HINT,
    OBJECTS,
    PRODUCTION,
    VERSION_LENGTH,
    VERSIONS,
    ModelVersion,
    PromotionEvent,
    event_key,
    event_seq,
    normalize_version,
    sha256_file,
    to_json,
    utc_now,
)

_Value = TypeVar("_Value", "ModelVersion", "PromotionEvent")


def _check_file_names(files: Mapping[str, Path], model_file: str) -> None:
    if model_file not in files:
        raise BadInputError(
            f"the model file {model_file!r} is not among the files to register "
            f"({', '.join(sorted(files)) or 'none'}); pass it in files or name it with model_file"
        )
    for name, path in files.items():
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise BadInputError(f"{name!r} is not a plain file name; files are stored flat")
        if not Path(path).is_file():
            raise ModelFileError(f"cannot register {name}: {path} is not a file")


class Registry(ABC):
    """Model versions and the production pointer of one store.

    Public methods are the API; a backend implements the storage primitives below them.
    """

    url: str

    # -- versions ---------------------------------------------------------------------------

    def register(
        self,
        files: Mapping[str, Path],
        metadata: Mapping[str, Any],
        *,
        by: str,
        model_file: str = "model.skops",
    ) -> ModelVersion:
        """Store ``files`` as the version addressed by the sha256 of ``files[model_file]``.

        Idempotent: a model whose digest is registered already returns the existing version
        (its metadata and files are kept).
        """
        _check_file_names(files, model_file)
        meta = json.loads(to_json(dict(metadata), "metadata"))
        digests = {name: sha256_file(Path(path)) for name, path in files.items()}
        digest = digests[model_file]
        found = self._find(digest[:VERSION_LENGTH])
        if found is None:
            for name, path in files.items():
                self._store_file(name, Path(path), digests[name])
            record = _version_record(digest, digests, model_file, meta, by)
            self._create(self._version_key(digest), to_json(record, "version record"))
            # Whoever created the record first won; a loser returns the winner's version.
            found = self._find(digest[:VERSION_LENGTH])
        if found is None:
            raise ServiceError(f"version {digest[:VERSION_LENGTH]} vanished from {self.url}")
        return _same_model(found, digest)

    def get(self, version: str) -> ModelVersion:
        """The version named by its 12-character version or its full digest."""
        wanted = normalize_version(version)
        found = self._find(wanted)
        if found is None:
            raise BadInputError(f"model version {version!r} is not in the registry; {LIST_HINT}")
        return found

    def list_versions(self) -> list[ModelVersion]:
        """Every registered version, newest first."""
        stems = (k.rsplit("/", 1)[-1].removesuffix(".json") for k in self._list(VERSIONS))
        found = (self._find(s) for s in stems if _is_version(s))
        versions = [v for v in found if v is not None]
        return sorted(versions, key=lambda v: (v.created_at, v.version), reverse=True)

    def fetch(self, version: str, dest: Path) -> dict[str, Path]:
        """Copy the files of ``version`` into ``dest``, verify each one's sha256, return them."""
        record = self._record(normalize_version(version))
        if record is None:
            raise BadInputError(f"model version {version!r} is not in the registry; {LIST_HINT}")
        dest.mkdir(parents=True, exist_ok=True)
        return {
            name: self._fetch_file(name, entry["sha256"], dest)
            for name, entry in record["files"].items()
        }

    # -- production -------------------------------------------------------------------------

    def get_production(self) -> ModelVersion | None:
        """The version in production, or None when nothing was ever promoted."""
        head = self._head()
        return None if head is None else self.get(head.digest)

    def history(self) -> list[PromotionEvent]:
        """Every promotion and rollback, oldest first."""
        seqs = sorted(s for s in map(event_seq, self._list(PRODUCTION)) if s is not None)
        return [self._event(seq) for seq in seqs]

    def promote(
        self,
        version: str,
        expected_current: str | None,
        *,
        by: str,
        record: Mapping[str, Any] | None = None,
        action: str = "promote",
    ) -> PromotionEvent:
        """Make ``version`` production if production is still ``expected_current`` (CAS).

        Raises :class:`ConflictError` when production is another version, including when a
        concurrent promotion wins the race.
        """
        if action not in ACTIONS:
            raise BadInputError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        target = self.get(version)
        expected = None if expected_current is None else normalize_version(expected_current)
        head = self._head()
        _check_expected(head, expected, target.version)
        event = PromotionEvent(
            seq=1 if head is None else head.seq + 1,
            version=target.version,
            digest=target.digest,
            previous=None if head is None else head.version,
            at=utc_now(),
            by=by,
            action=action,
            record=json.loads(to_json(dict(record or {}), "decision record")),
        )
        body = {**event.__dict__, "nonce": uuid.uuid4().hex}
        if not self._create(event_key(event.seq), to_json(body, "promotion event")):
            winner = self._head()
            now = "unknown" if winner is None else winner.version
            raise ConflictError(
                f"another promotion (event {event.seq}) won the race while promoting "
                f"{target.version}: production is {now} now, not {expected or 'empty'} as "
                "expected; run the gates again against the model in production"
            )
        return event

    # -- shared plumbing ----------------------------------------------------------------------

    def _version_key(self, ref: str) -> str:
        return f"{VERSIONS}{ref[:VERSION_LENGTH]}.json"

    def _record(self, ref: str) -> dict[str, Any] | None:
        """The raw record of a version (12-char version or full digest), None if unknown."""
        key = self._version_key(ref)
        data = self._read(key)
        if data is None:
            return None
        record: dict[str, Any] = self._parse(key, data)
        if len(ref) == 64 and record["digest"] != ref:
            return None  # a different model shares the 12-character prefix
        return record

    def _find(self, ref: str) -> ModelVersion | None:
        record = self._record(ref)
        if record is None:
            return None
        fields = {**record, "files": tuple(record.get("files", ()))}
        return self._build(ModelVersion, self._version_key(ref), fields)

    def _head(self) -> PromotionEvent | None:
        seqs = [s for s in map(event_seq, self._list(PRODUCTION)) if s is not None]
        return self._event(max(seqs)) if seqs else None

    def _event(self, seq: int) -> PromotionEvent:
        key = event_key(seq)
        data = self._read(key)
        if data is None:
            raise ServiceError(f"promotion event {key} disappeared from the registry at {self.url}")
        event = self._build(PromotionEvent, key, self._parse(key, data))
        if event.seq != seq:
            raise ServiceError(f"{key} in the registry at {self.url} says it is event {event.seq}")
        return event

    def _parse(self, key: str, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as err:
            raise ServiceError(
                f"{key} in the registry at {self.url} is not valid JSON ({err}); restore it"
            ) from err

    def _build(self, kind: type[_Value], key: str, body: dict[str, Any]) -> _Value:
        """A ModelVersion or PromotionEvent from a stored record (extra fields are ignored)."""
        names = [f.name for f in dataclasses.fields(kind) if f.name in body or _required(f)]
        missing = [n for n in names if n not in body]
        if missing:
            raise ServiceError(
                f"{key} in the registry at {self.url} lacks {', '.join(missing)}; restore it"
            )
        return kind(**{n: body[n] for n in names})

    def _store_file(self, name: str, path: Path, digest: str) -> None:
        """Store one file as the object named by its ``digest``."""
        if self._put_file(OBJECTS + digest, path, digest) != digest:
            raise ModelFileError(f"{path} ({name}) changed while it was being registered")

    def _fetch_file(self, name: str, digest: str, dest: Path) -> Path:
        final = dest / name
        part = dest / f".{name}.{uuid.uuid4().hex}.part"
        try:
            got = self._get_file(OBJECTS + digest, part)
            if got != digest:
                raise ModelFileError(
                    f"{name} from the registry at {self.url} is corrupt: sha256 {got}, "
                    f"expected {digest}; do not deploy it, re-register the model"
                )
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)
        return final

    # -- storage primitives a backend implements ------------------------------------------------

    @abstractmethod
    def _read(self, key: str) -> bytes | None:
        """The bytes stored at ``key``, or None if there are none."""

    @abstractmethod
    def _create(self, key: str, data: bytes) -> bool:
        """Atomically create ``key`` holding ``data``; False (and no change) if it exists."""

    @abstractmethod
    def _list(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (a folder ending in '/'), in any order."""

    @abstractmethod
    def _put_file(self, key: str, src: Path, digest: str) -> str:
        """Store the object ``key`` from ``src`` unless it exists; return the stored sha256.

        The object appears whole or not at all; ``digest`` is the sha256 the caller expects.
        """

    @abstractmethod
    def _get_file(self, key: str, dest: Path) -> str:
        """Copy the object ``key`` into the new file ``dest``; return the sha256 of its bytes."""


def _check_expected(head: PromotionEvent | None, expected: str | None, target: str) -> None:
    """Refuse with :class:`ConflictError` unless production is the version that was expected."""
    if head is None and expected is None:
        return
    if head is not None and expected is not None and _same(head, expected):
        return
    now = "empty (nothing promoted yet)" if head is None else head.version
    raise ConflictError(
        f"cannot promote {target}: production is {now} now, but "
        f"{expected or 'an empty production'} was expected; run the gates again against the "
        "model in production"
    )


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _same(event: PromotionEvent, ref: str) -> bool:
    return event.digest == ref if len(ref) == 64 else event.version == ref


def _version_record(
    digest: str, digests: Mapping[str, str], model_file: str, meta: Any, by: str
) -> dict[str, Any]:
    """The JSON record of a new version."""
    return {
        "version": digest[:VERSION_LENGTH],
        "digest": digest,
        "created_at": utc_now(),
        "registered_by": by,
        "model_file": model_file,
        "metadata": meta,
        "files": {name: {"sha256": sha} for name, sha in digests.items()},
    }


def _same_model(found: ModelVersion, digest: str) -> ModelVersion:
    """``found`` if it is the model with ``digest``; else the 12-character versions collide."""
    if found.digest != digest:
        raise ModelFileError(
            f"model {digest} shares its version {found.version} with the registered model "
            f"{found.digest}; change the model file (e.g. another seed) and register it again"
        )
    return found


def _is_version(text: str) -> bool:
    return len(text) == VERSION_LENGTH and all(c in "0123456789abcdef" for c in text)
