"""Replacing the served model when production changes, without a failed or mixed response.

:meth:`ModelHolder.reload` loads and smoke-tests the registry's production version (see
:func:`ci_ml.serve.model.load_version`) while the old model keeps answering, and only then swaps
it in by one reference assignment under a lock. A request reads :attr:`ModelHolder.current` once
and uses that object to the end, so no response mixes two models; the old model lives on until
its last request ends. A version that fails to load or to predict is refused and the model that
was serving keeps serving. :class:`Poller` reloads every few seconds.

With several workers (``ci-ml serve --workers N``) the supervisor drives each worker's holder in
two phases instead (see :mod:`ci_ml.serve.workers`): :meth:`ModelHolder.stage` loads and
smoke-tests a version beside the served one, :meth:`ModelHolder.commit` swaps it in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ci_ml.errors import CiMlError, ModelFileError
from ci_ml.registry.records import ModelVersion
from ci_ml.serve.model import LoadedModel, ModelRefused, NoProduction, limit_threads, load_version

if TYPE_CHECKING:
    from ci_ml.registry import Registry

log = logging.getLogger("ci_ml.serve")


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``swapped`` in a new version or left it ``unchanged``."""

    outcome: str
    old_version: str | None
    new_version: str | None
    model_digest: str | None


class ModelHolder:
    """Holds the served model; reloads serialize, and a swap is one assignment under a lock."""

    def __init__(self, registry: Registry, trusted: Sequence[str] = ()) -> None:
        self.registry = registry
        self.trusted = tuple(trusted)
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.problem: str | None = None
        self.refused_digest: str | None = None
        self.shadow: LoadedModel | None = None
        self._staged: LoadedModel | None = None

    def load_shadow(self, version: str) -> LoadedModel:
        """Load ``version`` as the shadow model, with the checks production gets (its
        trusted types, its smoke test); ModelRefused if it cannot be served."""
        found = self.registry.get(version)
        limit_threads()  # the smoke test predicts in this thread
        self.shadow = load_version(self.registry, found, self.trusted)
        return self.shadow

    @property
    def current(self) -> LoadedModel | None:
        """The model to answer with (read it once per request)."""
        return self._current

    def reload(self, *, retry_refused: bool = True) -> ReloadResult:
        """Serve the registry's production version if it is new and passes its smoke test.

        ``retry_refused=False`` (polling) does not load again a version that was refused.
        """
        with self._reload_lock:
            production = self._production()
            old = self._current
            old_version = old.version if old else None
            if old is not None and old.digest == production.digest:
                return ReloadResult("unchanged", old_version, old_version, old.digest)
            if not retry_refused and production.digest == self.refused_digest:
                raise ModelRefused(self.problem or f"version {production.version} was refused")
            new = self._load(production)
            with self._swap_lock:
                self._current = new
            self.problem, self.refused_digest = None, None
            return ReloadResult("swapped", old_version, new.version, new.digest)

    def stage(self, version: str) -> LoadedModel:
        """Load and smoke-test ``version`` beside the served model, to be swapped in by
        :meth:`commit`; ModelRefused if it cannot be served (the served model stays)."""
        with self._reload_lock:
            self._staged = None
            found = self.registry.get(version)
            current = self._current
            if current is not None and current.digest == found.digest:
                self._staged = current
            else:
                self._staged = self._load(found)
            return self._staged

    def commit(self) -> LoadedModel:
        """Serve the staged model (one assignment); CiMlError if nothing is staged."""
        with self._reload_lock:
            staged, self._staged = self._staged, None
            if staged is None:
                raise CiMlError("nothing is staged to serve; this is a bug of the supervisor")
            with self._swap_lock:
                self._current = staged
            self.problem, self.refused_digest = None, None
            return staged

    def abort(self) -> None:
        """Forget the staged model; the served one keeps serving."""
        with self._reload_lock:
            self._staged = None

    def _production(self) -> ModelVersion:
        """The production version; NoProduction if none, and the problem noted while not ready."""
        try:
            production = self.registry.get_production()
        except CiMlError as err:
            if self._current is None:
                self.problem = f"cannot read the registry at {self.registry.url}: {err}"
            raise
        if production is None:
            self.problem = "nothing is in production in the registry yet"
            raise NoProduction(
                f"nothing is in production in the registry at {self.registry.url}; "
                "promote a version with 'ci-ml registry promote'"
            )
        return production

    def _load(self, production: ModelVersion) -> LoadedModel:
        limit_threads()  # the smoke test predicts in this thread
        try:
            return load_version(self.registry, production, self.trusted)
        except ModelFileError as err:
            self.refused_digest = production.digest
            keeps = f"; still serving {self._current.version}" if self._current else ""
            self.problem = f"{err}{keeps}"
            raise ModelRefused(self.problem) from None


class Poller:
    """Checks the registry every ``interval`` seconds and reloads when production changed."""

    def __init__(
        self,
        holder: ModelHolder,
        interval: float,
        on_result: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        self.holder = holder
        self.interval = interval
        self.on_result = on_result
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ci-ml-poll", daemon=True)
        self._last_problem: str | None = None

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (waits for a reload in progress)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                result = self.holder.reload(retry_refused=False)
            except CiMlError as err:
                self._report(err)
                continue
            self._last_problem = None
            if result.outcome == "swapped":
                log.info(
                    "now serving %s (was %s)", result.new_version, result.old_version or "none"
                )
                self.on_result("swapped")

    def _report(self, err: CiMlError) -> None:
        """Log a problem once, not on every poll; count each distinct one."""
        text = str(err)
        if text != self._last_problem:
            log.warning("reload by polling: %s", text)
            self.on_result("refused" if isinstance(err, ModelRefused) else "failed")
        self._last_problem = text
