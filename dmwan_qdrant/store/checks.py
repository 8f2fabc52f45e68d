"""The checks every backend shares: names, point ids, points, queries and search options.

Checking here rather than in the engines gives the same error on every backend: each engine
fails differently (or not at all) on a NaN, a wrong size or a payload that is not JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dmwan_qdrant.errors import ModelMismatchError, StoreError, UsageError
from dmwan_qdrant.store.index import check_ef
from dmwan_qdrant.store.records import PhotoPoint

Row = tuple[str, np.ndarray, np.ndarray, dict[str, Any]]
"""A checked point: ``(canonical id, float32 vector, float32 tokens, payload)``."""

# Letters, digits, '_' and '-': safe as a folder name on every OS and as a Qdrant collection
# name, and never clashes with the store's own dot-files (.lock, .deleting-*).
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid collection name, else raise `UsageError`."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def canonical_id(point_id: str | uuid.UUID) -> str:
    """The canonical form (lower-case, hyphenated) of a UUID point id; `StoreError` if not one."""
    if isinstance(point_id, uuid.UUID):
        return str(point_id)
    try:
        return str(uuid.UUID(str(point_id)))
    except (ValueError, TypeError, AttributeError):
        raise StoreError(f"invalid point id {point_id!r}: point ids are UUID strings") from None


def canonical_ids(ids: Iterable[str | uuid.UUID]) -> list[str]:
    """Canonical ids, duplicates removed, first-seen order kept."""
    return list(dict.fromkeys(canonical_id(i) for i in ids))


def as_matrix(x: np.ndarray | Sequence[Sequence[float]], what: str) -> np.ndarray:
    """``x`` as a finite float32 2-D array; `StoreError` on NaN/inf (no engine accepts them)."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise StoreError(f"{what} must be a 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise StoreError(f"{what} contains NaN or infinite values")
    return a


def _dim_error(name: str, what: str, want: int, got: tuple[int, ...]) -> ModelMismatchError:
    return ModelMismatchError(
        f"collection '{name}' holds {what} of size {want}, got shape {got}: "
        "were these made by another model?"
    )


def check_dims(name: str, dim: int, token_dim: int) -> None:
    """`StoreError` unless both sizes of a new collection are positive."""
    if dim < 1 or token_dim < 1:
        raise StoreError(f"invalid dims {dim}/{token_dim} for collection '{name}'")


def check_points(name: str, points: Sequence[PhotoPoint], dim: int, token_dim: int) -> list[Row]:
    """Validated rows (see `Row`), later duplicates of an id winning."""
    out: dict[str, Row] = {}
    for p in points:
        pid = canonical_id(p.id)
        vec = np.asarray(p.vector, dtype=np.float32)
        if vec.shape != (dim,):
            raise _dim_error(name, "global vectors", dim, vec.shape)
        tok = as_matrix(p.tokens, f"tokens of point {pid}")
        if tok.shape[1] != token_dim or tok.shape[0] == 0:
            raise _dim_error(name, "tokens", token_dim, tok.shape)
        if not np.isfinite(vec).all():
            raise StoreError(f"vector of point {pid} contains NaN or infinite values")
        try:  # each engine fails differently on, e.g., numpy scalars: refuse them the same way
            json.dumps(p.payload, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise StoreError(f"payload of point {pid} is not plain JSON: {e}") from None
        out[pid] = (pid, vec, tok, dict(p.payload))
    return list(out.values())


def check_queries(
    name: str,
    vectors: np.ndarray | Sequence[np.ndarray],
    rerank_tokens: Sequence[np.ndarray] | None,
    dim: int,
    token_dim: int,
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Validated query vectors ``(n, dim)`` and per-query token matrices (or None)."""
    try:
        q = np.asarray(vectors, dtype=np.float32)
    except ValueError:  # ragged list of vectors
        raise StoreError("query vectors must all have the same size") from None
    if q.ndim != 2 or q.shape[1] != dim:
        raise _dim_error(name, "global vectors", dim, q.shape)
    q = as_matrix(q, "query vectors")
    if rerank_tokens is None:
        return q, None
    toks = [as_matrix(t, "query tokens") for t in rerank_tokens]
    if len(toks) != len(q):
        raise StoreError(f"{len(q)} query vectors but {len(toks)} token sets")
    for t in toks:
        if t.shape[1] != token_dim or t.shape[0] == 0:
            raise _dim_error(name, "tokens", token_dim, t.shape)
    return q, toks


def check_search(k: int, prefetch: int, hnsw_ef: int | None, default_ef: int) -> tuple[int, int, int]:
    """``(k, prefetch, ef)`` validated: prefetch raised to at least k so the re-rank can fill
    k, ``hnsw_ef`` (None: ``default_ef``, the collection's) a positive int."""
    if int(k) < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    ef = check_ef(hnsw_ef)
    return int(k), max(int(prefetch), int(k)), default_ef if ef is None else ef
