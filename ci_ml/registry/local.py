"""The registry in a local directory (the default backend).

Every write goes to a temporary file under ``tmp/`` in the registry, is flushed to disk, and is
then published with ``os.link`` under its final name. ``link`` fails if the name exists, so it is
an atomic create-only write, and a reader never sees a file that is still being written. A
killed process leaves only files in ``tmp/``: ignored, and removed by a later write once stale.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ci_ml.errors import ServiceError
from ci_ml.registry.base import Registry
from ci_ml.registry.records import hash_stream

TMP = "tmp"
STALE_SECONDS = 24 * 3600


class LocalRegistry(Registry):
    """A registry kept in the directory ``path`` (created on the first write)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).absolute()
        self.url = str(self.path)

    def _read(self, key: str) -> bytes | None:
        try:
            return (self.path / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise self._error("read", key, err) from err

    def _create(self, key: str, data: bytes) -> bool:
        with self._staged(key) as (tmp, f):
            f.write(data)
            _sync(f)
            return self._publish(tmp, key)

    def _list(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self.path / prefix)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise self._error("list", prefix, err) from err
        return [prefix + name for name in names if not name.startswith(".")]

    def _put_file(self, key: str, src: Path, digest: str) -> str:
        if (self.path / key).exists():
            return digest  # objects are named by their content: it holds these bytes
        self._clean_stale()
        with self._staged(key) as (tmp, f):
            with src.open("rb") as s:
                got = hash_stream(s, f)
            _sync(f)
            if got == digest:
                self._publish(tmp, key)
            return got

    def _get_file(self, key: str, dest: Path) -> str:
        try:
            with (self.path / key).open("rb") as s, dest.open("xb") as d:
                return hash_stream(s, d)
        except OSError as err:
            raise self._error("read", key, err) from err

    @contextlib.contextmanager
    def _staged(self, key: str) -> Iterator[tuple[Path, BinaryIO]]:
        """A new temporary file in ``tmp/`` for ``key``, removed on exit."""
        tmp = self.path / TMP / f"{uuid.uuid4().hex}.tmp"
        try:
            for folder in (tmp.parent, (self.path / key).parent):
                folder.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as f:
                yield tmp, f
        except OSError as err:
            raise self._error("write", key, err) from err
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _publish(self, tmp: Path, key: str) -> bool:
        """Give the flushed ``tmp`` its final name ``key``; False if that name is taken."""
        final = self.path / key
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise ServiceError(
                    f"the registry directory {self.path} is on a file system without hard "
                    "links, which the registry needs for atomic writes; use another directory"
                ) from err
            raise
        _fsync_dir(final.parent)
        return True

    def _clean_stale(self) -> None:
        """Remove temporary files left by killed processes (best effort)."""
        cutoff = time.time() - STALE_SECONDS
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path / TMP):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)

    def _error(self, verb: str, key: str, err: OSError) -> ServiceError:
        return ServiceError(f"cannot {verb} {key} in the registry at {self.path}: {err}")


def _sync(f: BinaryIO) -> None:
    """Flush a file to disk, so that it is whole before it gets its final name."""
    f.flush()
    os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
