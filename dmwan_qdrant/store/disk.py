"""The disk under an embedded store: free space, writability, atomic writes and sparse copies.

qdrant-edge keeps its vectors, payloads and write-ahead log in memory-mapped files that it
creates at full length but sparse (32 MiB each, mostly holes). Writing into a hole needs a free
block *at the moment of the write*, and a memory-mapped write that finds none kills the process
with SIGBUS: no error, no message. So the store checks the free space itself before each write,
with a margin that covers what one write can materialise, and refuses cleanly below it.

The engine also opens every file read-write, even to search, and writes small files while
opening a collection. A store on a read-only medium, without write permission, or on a full
disk therefore cannot be opened in place; `sparse_copytree` makes the private copy such a
store is searched through.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

WRITE_MARGIN = 64 << 20
"""Free bytes always kept on the store's disk: what the engine may materialise in one write
(a new 32 MiB WAL segment or vector chunk, pages of the payload and flag files) with room."""

WRITE_FACTOR = 4
"""Bytes the engine may write per byte of point data: the WAL record, the vector and payload
storage, and the payload indexes."""

_MB = 1 << 20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def allocated_bytes(path: Path) -> int:
    """Bytes really allocated on disk by the files under ``path`` (holes not counted)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def open_growth(path: Path) -> int:
    """Bytes the engine may allocate when it opens the shards under ``path`` (a shard, a
    collection or a whole store): on the first open after a close it fills in the holes of its
    vector chunk files (measured: 96 MiB at once for a fresh collection's three 32 MiB chunks)."""
    total = 0
    for f in path.glob("**/vector_storage-*/*/chunk_*"):
        try:
            st = f.stat()
        except OSError:
            continue
        total += max(0, st.st_size - st.st_blocks * 512)
    return total


def mb(n: int) -> str:
    """``n`` bytes as a short human figure in MB."""
    return f"{n / _MB:.0f} MB" if n >= 10 * _MB else f"{n / _MB:.1f} MB"


def why_not_writable(path: Path, margin: int | None = None) -> str | None:
    """Why the engine cannot open the store at ``path`` in place, or None if it can: no write
    permission, a read-only medium, or less free space than ``margin`` (default: `WRITE_MARGIN`
    plus what opening its collections may allocate, `open_growth`).

    Root passes permission checks, so a read-only mount is told apart by ``EROFS``.
    """
    if not os.access(path, os.W_OK):
        try:  # distinguish a read-only medium from missing permission
            fd = os.open(path / ".dmwan-write-test", os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as e:
            if e.errno == errno.EROFS:
                return "it is on a read-only file system"
            return "this user may not write to it"
        os.close(fd)
        os.unlink(path / ".dmwan-write-test")
    free = free_bytes(path)
    if free < (WRITE_MARGIN + open_growth(path) if margin is None else margin):
        return f"its disk is full ({mb(free)} free)"
    return None


def space_needed(data_bytes: int) -> int:
    """Free bytes a write of ``data_bytes`` of point data needs before it starts."""
    return WRITE_MARGIN + WRITE_FACTOR * max(0, int(data_bytes))


def is_disk_full_message(msg: str) -> bool:
    """Whether an engine error message says the disk is full."""
    return "No space left" in msg or "os error 28" in msg or "Disk quota exceeded" in msg


def write_atomic(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` so that readers see the old or the new content, never half."""
    tmp = file.with_name(file.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)


def sparse_copytree(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` to ``dst`` (new), keeping the holes of sparse files as holes.

    A plain copy would write every hole as zeros: ~200 MiB for an empty collection.
    """
    dst.mkdir(parents=True)
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            sparse_copytree(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False):
            _sparse_copyfile(Path(entry.path), target)


def _sparse_copyfile(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            left = end - start
            while left > 0:
                chunk = fin.read(min(left, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            pos = end
        fout.truncate(size)
