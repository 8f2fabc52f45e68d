"""Point ids: derived from a file's content, so a file has the same id wherever it lies.

Torch-free, so that a query through `dmwan serve` can name a stored photo by its file.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

from .errors import StoreError, UsageError


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def point_id(content_hash: str) -> str:
    """The point id of a file: a UUID made of the first 16 bytes of its SHA-256."""
    return str(uuid.UUID(hex=content_hash[:32]))


def resolve_point_id(spec: str | Path) -> str:
    """A point id as given (any UUID spelling), or the id of a photo file, from its content.

    Raises:
        UsageError: neither a UUID nor an existing file.
    """
    from .store.checks import canonical_id

    path = Path(spec).expanduser()
    if path.is_file():
        return point_id(sha256_file(path))
    try:
        return canonical_id(str(spec))
    except StoreError:
        raise UsageError(f"--like takes a point id (a UUID, as --json prints) or a stored photo file, not {spec!r}") from None
