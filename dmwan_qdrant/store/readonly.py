"""Searching an embedded store that cannot be opened in place, through a private copy.

qdrant-edge opens every file read-write, even to search, and writes small files while opening a
collection, so a store on a read-only medium, without write permission, or on a full disk cannot
be opened where it lies. `PrivateCopy` copies each collection's shard, sparse files kept sparse,
into a temporary folder on first use and opens it there; the original is never touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from dmwan_qdrant.errors import DiskFullError, StoreError
from dmwan_qdrant.store import disk
from dmwan_qdrant.store.lock import LOCK_NAME, in_use_error
from dmwan_qdrant.store.manifest import SHARD_DIR


class PrivateCopy:
    """Temporary copies of the shards of the store at ``path``, made on demand.

    Holds a shared lock on the store's lock file while open, so a writer cannot change the
    shards while they are copied (a read-only medium may have no lock file: nobody writes there).

    Args:
        path: the store folder.
        why: why the store cannot be opened in place, for `notice`.

    Raises:
        StoreInUseError: a writer holds the store.
    """

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        self.notice = f"store {path}: {why}, and the embedded engine writes even to read; searching a private copy"
        self._fd = _lock_shared(path)
        self.root = Path(tempfile.mkdtemp(prefix="dmwan-readonly-"))

    def shard_dir(self, name: str) -> Path:
        """The copy of collection ``name``'s shard, made now if it is not there yet.

        Raises:
            DiskFullError: the temporary folder has no room for the copy.
        """
        copy = self.root / name / SHARD_DIR
        if copy.exists():
            return copy
        src = self.path / name / SHARD_DIR
        need = disk.allocated_bytes(src) + disk.open_growth(src) + disk.WRITE_MARGIN
        free = disk.free_bytes(self.root)
        if free < need:
            raise DiskFullError(
                f"cannot open collection '{name}': {self.notice}, which needs {disk.mb(need)} "
                f"under {self.root.parent} but only {disk.mb(free)} is free there "
                "(set TMPDIR to a folder with room)"
            )
        try:
            disk.sparse_copytree(src, copy)
        except OSError as e:
            shutil.rmtree(self.root / name, ignore_errors=True)
            raise StoreError(f"cannot copy collection '{name}' of {self.path}: {e}") from None
        return copy

    def close(self) -> None:
        """Remove the copies and drop the lock (idempotent)."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_shared(path: Path) -> int | None:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            text = os.pread(fd, 32, 0).decode().strip()
            pid = int(text) if text else None
        except (OSError, ValueError, UnicodeDecodeError):
            pid = None
        os.close(fd)
        raise in_use_error(path, pid) from None
    except OSError:  # no flock on this file system: nothing to coordinate with
        os.close(fd)
        return None
    return fd
