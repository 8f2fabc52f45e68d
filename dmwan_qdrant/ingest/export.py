"""Export what an ingest stored: ids, paths, labels and vectors, for use outside the store.

The rows are the points of the files an ingest found (embedded in that run or unchanged), each
point once (a duplicate file shares its content's point, whose stored path is the one
exported, even where that file lies outside the ingested paths), sorted by path. The vectors
are read back from the store in pages of `PAGE` points, so memory stays bounded whatever the
size of the collection. The format follows the file's suffix:

- ``.npy``: a float32 matrix ``(rows, dim)`` of the global vectors (L2-normalised), plus the
  sidecar ``FILE.ids.json`` (e.g. ``emb.npy.ids.json``): ``{"collection", "rows", "dim",
  "ids", "paths", "labels"}``, the three lists in row order (a label is null without one);
- ``.parquet`` (needs pyarrow): one row per point, columns ``id`` (string), ``path`` (string),
  ``label`` (string, null without one), ``vector`` (``list<float32>``, the global vector) and
  ``tokens`` (``list<list<float32>>``: the point's local tokens, one inner list of
  ``token_dim`` values per token), written one row group per page.

Each file is written to a hidden temporary file next to it, then renamed over it, so an
interrupted export leaves the previous file (or none) and never half a file; for ``.npy`` the
matrix is renamed first, then the sidecar (check ``rows`` in the sidecar against the matrix).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DiskFullError, DmwanError, StoreError, UsageError
from ..store import Store, StoredPoint
from .records import ALIASES, alias_list

FORMATS = {".npy": "npy", ".parquet": "parquet"}
"""Export formats by file suffix."""
PAGE = 256
"""Points read from the store at a time (one parquet row group)."""


@dataclass
class ExportSummary:
    """What an export wrote: the file, its format, its rows, and the sidecar (``.npy`` only)."""

    file: str
    format: str
    rows: int
    sidecar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return asdict(self)


def export_format(file: str | Path) -> str:
    """The format of an export target, checked before any work: a bad suffix, a missing folder
    or a missing pyarrow must not show only after a long ingest.

    Raises:
        UsageError: unknown suffix, folder missing, target is a folder, pyarrow missing.
    """
    path = Path(file).expanduser()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"--export {file}: unknown format {path.suffix or '(no suffix)'!r}, use .npy or .parquet")
    if path.is_dir():
        raise UsageError(f"--export {file}: is a folder, give a file name")
    if not path.absolute().parent.is_dir():
        raise UsageError(f"--export {file}: folder {path.absolute().parent} does not exist")
    if fmt == "parquet":
        _pyarrow()
    return fmt


def exported_ids(store: Store, collection: str, files: Collection[str]) -> list[tuple[str, str]]:
    """``(id, path)`` of the points whose path or one of whose duplicates is in ``files``,
    sorted by path."""
    rows = []
    for pid, payload in store.scroll_payloads(collection, ["path", ALIASES]):
        path = payload.get("path")
        if path in files or any(a["path"] in files for a in alias_list(payload)):
            rows.append((str(path), pid))
    return [(pid, path) for path, pid in sorted(rows)]


def export_points(store: Store, collection: str, ids: list[str], file: str | Path) -> ExportSummary:
    """Write the points ``ids`` of ``collection``, in that order, to ``file`` (see the module
    docstring for the formats).

    Raises:
        UsageError: see `export_format`.
        DiskFullError: no space left for the file (the previous file, if any, is kept).
        StoreError: a point vanished from the collection during the export.
        DmwanError: the file cannot be written.
    """
    fmt = export_format(file)
    target = Path(file).expanduser()
    info = store.collection_info(collection)
    dim, token_dim = info.dim, info.token_dim
    try:
        if fmt == "npy":
            sidecar = target.with_name(target.name + ".ids.json")
            meta: dict[str, Any] = {"collection": collection, "rows": len(ids), "dim": dim,
                                    "ids": [], "paths": [], "labels": []}

            def write_npy(tmp: Path) -> None:
                _write_npy(tmp, _pages(store, collection, ids), len(ids), dim, meta)

            _atomic(target, write_npy)
            _atomic(sidecar, lambda tmp: tmp.write_text(json.dumps(meta) + "\n"))
            return ExportSummary(str(target), fmt, len(ids), str(sidecar))
        _atomic(target, lambda tmp: _write_parquet(tmp, _pages(store, collection, ids), dim, token_dim))
        return ExportSummary(str(target), fmt, len(ids))
    except OSError as e:
        why = (e.strerror or str(e)).lower()
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"--export {file}: {why}") from None
        raise DmwanError(f"cannot write --export {file}: {why}") from None


def _pages(store: Store, collection: str, ids: list[str]) -> Iterator[list[StoredPoint]]:
    for i in range(0, len(ids), PAGE):
        wanted = ids[i : i + PAGE]
        got = store.read_points(collection, wanted)
        if len(got) != len(wanted):
            raise StoreError(f"{len(wanted) - len(got)} points left '{collection}' during the export: run it again")
        yield got


def _label(p: StoredPoint) -> str | None:
    label = p.payload.get("label")
    return None if label is None else str(label)


def _write_npy(tmp: Path, pages: Iterator[list[StoredPoint]], rows: int, dim: int, meta: dict[str, Any]) -> None:
    if rows == 0:  # a zero-length file cannot be memory-mapped
        with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
            np.save(f, np.zeros((0, dim), np.float32), allow_pickle=False)
        return
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
    at = 0
    for page in pages:
        out[at : at + len(page)] = np.stack([p.vector for p in page])
        at += len(page)
        meta["ids"] += [p.id for p in page]
        meta["paths"] += [p.payload.get("path") for p in page]
        meta["labels"] += [_label(p) for p in page]
    out.flush()
    del out


def _write_parquet(tmp: Path, pages: Iterator[list[StoredPoint]], dim: int, token_dim: int) -> None:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("path", pa.string()), ("label", pa.string()),
                        ("vector", pa.list_(pa.float32())), ("tokens", pa.list_(pa.list_(pa.float32())))])
    with pq.ParquetWriter(tmp, schema) as writer:
        for page in pages:
            vectors = np.stack([p.vector for p in page]).astype(np.float32)
            n_tok = np.array([p.tokens.size // token_dim for p in page])
            flat = np.concatenate([p.tokens.reshape(-1) for p in page]).astype(np.float32)
            one_token = pa.ListArray.from_arrays(pa.array(np.arange(0, flat.size + 1, token_dim, dtype=np.int32)), flat)
            columns = [
                pa.array([p.id for p in page], pa.string()),
                pa.array([p.payload.get("path") for p in page], pa.string()),
                pa.array([_label(p) for p in page], pa.string()),
                pa.ListArray.from_arrays(pa.array(np.arange(0, vectors.size + 1, dim, dtype=np.int32)), vectors.ravel()),
                pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(n_tok)]).astype(np.int32)), one_token),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Run ``write`` on a hidden temporary file next to ``target``, then rename it over it."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise UsageError("--export .parquet needs pyarrow: pip install pyarrow") from None
    return pyarrow
