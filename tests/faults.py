"""Fault injection for the reliability tests: small file systems, damaged files, test photos."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted at ``path`` (a real full disk, a real read-only medium).

    Mounting needs root with CAP_SYS_ADMIN: CI has it (it runs as root); elsewhere the test is
    skipped with the reason, and the library-level tests with a patched free-space figure still run.
    """
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    """Make the tmpfs at ``path`` read-only (root writes nowhere on it after this)."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Write a filler file in ``folder`` until at most ``leave`` bytes stay free; returns it."""
    filler = folder / "filler.bin"
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    chunk = b"\xab" * (1 << 20)
    with open(filler, "ab") as f:
        try:
            while free - f.tell() > leave + len(chunk):
                f.write(chunk)
            f.write(b"\xab" * max(0, free - f.tell() - leave))
            f.flush()
        except OSError:
            pass
    return filler


def make_photos(root: Path, n: int, seed: int = 0, folders: int = 2) -> list[Path]:
    """``n`` small random JPEGs in ``folders`` class folders, sorted."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        f = root / f"class{i % folders}" / f"{i:04d}.jpg"
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24 + i % 7, 32, 3), dtype=np.uint8)).save(f)
        files.append(f)
    return sorted(files)


def segment_files(store: Path, collection: str, part: str) -> list[Path]:
    """The files matching ``part`` (e.g. ``vector_storage-global/vectors/chunk_*``) in the
    segments of a collection."""
    return sorted((store / collection / "shard" / "segments").glob(f"*/{part}"))


def garble(file: Path, offset: int, length: int) -> None:
    """Overwrite ``length`` bytes of ``file`` at ``offset`` with a float32 of 1e38 repeated."""
    pattern = np.full(length // 4, 1e38, dtype=np.float32).tobytes()
    with open(file, "r+b") as f:
        f.seek(offset)
        f.write(pattern)


BUSY_DATASET = """
class Busy(Dataset):
    # A decoding worker that takes long: it writes its pid to sys.argv[2], then sleeps.
    def __len__(self):
        return 4
    def __getitem__(self, i):
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(sys.argv[2] + ".tmp", sys.argv[2])
        time.sleep(120)
        return i
"""
"""Source of a torch ``Dataset`` whose loader worker blocks, for child-process test scripts
(they import ``os``, ``sys``, ``time`` and ``Dataset`` first)."""
