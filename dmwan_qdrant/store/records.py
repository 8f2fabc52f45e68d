"""What a store holds and answers: the collection spec, points, hits, collection state, and the
plan a batch of checked queries is searched by.

A collection holds one point per photo with two named vectors: ``global`` (the L2-normalised
global embedding, cosine) and ``tokens`` (the local tokens as a multivector, compared with MaxSim,
used only to re-rank the candidates that ``global`` found), plus a JSON payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dmwan_qdrant.store.filters import Condition
from dmwan_qdrant.store.index import IndexSettings

GLOBAL = "global"
"""Name of the dense global vector."""
TOKENS = "tokens"
"""Name of the multivector of local tokens."""
INDEXED_FIELDS = ("label", "content_hash", "path")
"""Payload fields that get a keyword index where the backend has payload indexes."""


@dataclass(frozen=True)
class CollectionSpec:
    """What a new collection holds.

    Attributes:
        dim: size of the global embedding.
        token_dim: size of each local token.
        model: JSON-able record of the model that fills the collection, e.g.
            ``{"fingerprint": "...", "preset": "vit_b16", "dim": 512}``.
        index: HNSW and token storage settings (default: int8 tokens; see
            `dmwan_qdrant.store.index`). Fixed for the life of the collection.
    """

    dim: int
    token_dim: int
    model: dict[str, Any] = field(default_factory=dict)
    index: IndexSettings = IndexSettings()


@dataclass
class PhotoPoint:
    """One photo to store.

    Attributes:
        id: a UUID string (derived from the file's content hash by the caller).
        vector: global embedding, shape ``(dim,)``.
        tokens: local tokens, shape ``(n_tok, token_dim)``; ``n_tok`` may vary between points.
        payload: JSON-able fields (path, content_hash, size, mtime, width, height, label...).
    """

    id: str
    vector: np.ndarray
    tokens: np.ndarray
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredPoint:
    """A point as stored, vectors included (see `Store.read_points`)."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray
    tokens: np.ndarray


def stored_points(records: Iterable[Any], wanted: Sequence[str]) -> list[StoredPoint]:
    """`StoredPoint`s from engine records (``.id``, ``.payload``, ``.vector`` as a dict of named
    vectors), in the order of ``wanted``; ids not among the records are omitted."""
    found = {}
    for r in records:
        vec = r.vector if isinstance(r.vector, dict) else {}
        found[str(r.id)] = StoredPoint(
            str(r.id),
            dict(r.payload or {}),
            np.asarray(vec.get(GLOBAL, []), dtype=np.float32),
            np.asarray(vec.get(TOKENS, []), dtype=np.float32),
        )
    return [found[i] for i in wanted if i in found]


@dataclass(frozen=True)
class Hit:
    """One search result: point id (canonical UUID string), score (higher is better), payload."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    """State of a collection.

    Attributes:
        name: collection name.
        backend: ``"edge"``, ``"server"`` or ``"memory"``.
        points: number of points.
        dim: size of the global vectors.
        token_dim: size of the tokens.
        model: the model record stored with the collection.
        indexed_vectors: vectors that sit in an HNSW-indexed segment, as the engine reports it
            (qdrant-edge and the server count every named vector, so up to ``2 * points``).
        index_state: ``"indexed"`` (every point in indexed segments), ``"partial"``,
            ``"exact"`` (nothing indexed yet: searches scan; fine below a few thousand points)
            or ``"none"`` (the backend has no index: memory).
        segments: number of segments where the engine tells it, else None.
        status: engine status, e.g. ``"green"``; a server reports ``"yellow"`` while optimizing.
        index: the settings the collection was created with (`IndexSettings.from_dict`: a
            collection older than recorded settings reports its real float32 layout); None where
            they are not known (a store described by `dmwan serve`).
    """

    name: str
    backend: str
    points: int
    dim: int
    token_dim: int
    model: dict[str, Any]
    indexed_vectors: int
    index_state: str
    segments: int | None
    status: str
    index: IndexSettings | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What an engine reports of a collection, for `CollectionInfo`."""

    points: int
    indexed_vectors: int
    segments: int | None
    status: str


def index_state(points: int, indexed_vectors: int, vectors_per_point: int = 2) -> str:
    """Summarise the engine's indexed-vector figure as one word (see `CollectionInfo`)."""
    if indexed_vectors <= 0:
        return "exact"
    if indexed_vectors >= points * vectors_per_point:
        return "indexed"
    return "partial"


@dataclass(frozen=True)
class SearchPlan:
    """How a batch of checked queries is searched, as the engines receive it.

    Attributes:
        k: results per query.
        prefetch: candidates the ``global`` search hands to the token re-rank (at least ``k``).
        ef: HNSW candidates of the ``global`` search.
        rescore: re-score quantized token scores with the original tokens.
        conditions: the payload filter, applied in both stages (`check_filter`).
    """

    k: int
    prefetch: int
    ef: int
    rescore: bool
    conditions: tuple[Condition, ...]

    @property
    def oversampling(self) -> float:
        """Quantized candidates re-scored per result: all the prefetched ones."""
        return self.prefetch / self.k
