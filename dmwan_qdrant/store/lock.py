"""One process per embedded store folder: an exclusive advisory lock on ``<store>/.lock``.

qdrant-edge locks each shard's write-ahead log on its own, but only when a shard is opened, and
it reports a conflict as a bare ``Exception(... WouldBlock)``. Locking the whole folder when the
store opens fails early, before any collection is touched, and lets the message name the process
that holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dmwan_qdrant.errors import StoreError, StoreInUseError

LOCK_NAME = ".lock"


def in_use_error(path: Path, pid: int | None) -> StoreInUseError:
    """The error for a store folder held by process ``pid`` (None when unknown)."""
    if pid == os.getpid():
        return StoreInUseError(f"store {path} is already open in this process")
    who = f"pid {pid}" if pid else "pid unknown"
    return StoreInUseError(f"store {path} is in use by another process ({who})")


class FolderLock:
    """An exclusive, non-blocking `fcntl.flock` on ``<folder>/.lock``, holding the owner's pid.

    The kernel drops the lock when the process dies (even on ``kill -9``), so a crash never
    leaves a stale lock behind; the lock file itself stays and is reused.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `StoreInUseError` naming the holder's pid."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open store {self.folder}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise in_use_error(self.folder, pid) from None
        except OSError as e:  # e.g. a file system without flock support
            os.close(fd)
            raise StoreError(f"cannot lock store {self.folder}: {e.strerror}") from None
        # Record who holds it, for the message another process shows.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: unlinking it would race a new opener."""
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
