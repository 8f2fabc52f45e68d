"""One process per embedded store folder: an exclusive advisory lock on ``<store>/.lock``.

qdrant-edge locks each shard's write-ahead log on its own, but only when a shard is opened, and
it reports a conflict as a bare ``Exception(... WouldBlock)``. Locking the whole folder when the
store opens fails early, before any collection is touched, and lets the message name the process
that holds it.

A flock belongs to the open file description, which ``fork`` shares with the child: a DataLoader
worker forked while a store is open would keep the store locked after its parent died. So a forked
child closes its copies of every descriptor into a locked folder (`_close_in_child`): the lock file
and the engine's own files, whose WAL qdrant-edge flocks too. Closing a copy never unlocks the
parent; only an explicit ``LOCK_UN`` or the last close would.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import ClassVar

from dmwan_qdrant.errors import StoreError, StoreInUseError

LOCK_NAME = ".lock"


def in_use_error(path: Path, pid: int | None) -> StoreInUseError:
    """The error for a store folder held by process ``pid`` (None when unknown)."""
    if pid == os.getpid():
        return StoreInUseError(f"store {path} is already open in this process")
    if pid and not is_running(pid):
        # The recorded owner is gone but the lock is not: a descendant shares its descriptor.
        return StoreInUseError(
            f"store {path} is locked by pid {pid}, which is no longer running (a child process it "
            "started may still hold the lock; it is released when that exits)"
        )
    who = f"pid {pid}" if pid else "pid unknown"
    return StoreInUseError(f"store {path} is in use by another process ({who})")


def is_running(pid: int) -> bool:
    """Whether a process with this pid exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return True


class FolderLock:
    """An exclusive, non-blocking `fcntl.flock` on ``<folder>/.lock``, holding the owner's pid.

    The kernel drops the lock when the process dies (even on ``kill -9``), so a crash never
    leaves a stale lock behind; the lock file itself stays and is reused. The lock is this
    process's alone: forked children close their copies (see the module's docstring).
    """

    #: The locks this process holds, for the fork hook.
    _held: ClassVar[set[FolderLock]] = set()

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
        FolderLock._held.add(self)

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: unlinking it would race a new opener."""
        if self._fd is not None:
            FolderLock._held.discard(self)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


def _close_in_child() -> None:
    """After ``fork``, in the child: close every descriptor into a folder the parent has locked.

    The child gets no usable store: its locks are the parent's. Forked children here are loader
    workers, which never touch the store, and leave through ``os._exit``, so no engine object
    ever uses a closed descriptor.
    """
    locks = list(FolderLock._held)
    if not locks:
        return
    FolderLock._held.clear()
    folders = []
    for lock in locks:
        fd, lock._fd = lock._fd, None  # never LOCK_UN here: that would unlock the parent
        if fd is not None:
            _close_quietly(fd)
        folders.append(os.path.realpath(lock.folder))
    for fd, target in _open_descriptors():
        if any(target == f or target.startswith(f + os.sep) for f in folders):
            _close_quietly(fd)


def _open_descriptors() -> list[tuple[int, str]]:
    """This process's descriptors and what they point at (empty without ``/proc``, e.g. macOS)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    out = []
    for name in names:
        try:
            out.append((int(name), os.readlink(f"/proc/self/fd/{name}")))
        except (OSError, ValueError):  # the listing's own descriptor, already closed
            continue
    return out


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


os.register_at_fork(after_in_child=_close_in_child)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
