"""More like this: search with a stored point's own vectors, or with a photo embedded as a photo.

A sketch query goes through the sketch side of the shared encoder (its domain embedding); a photo
given as a query must go through the photo side, as the collection's photos did, or it is
compared as if it were a drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..runtime import as_array
from ..store import Store
from ..store.index import check_ef
from .core import _search_embedded, check_collection
from .reranking import DEFAULT_PREFETCH
from .results import Result


def embed_photo_images(model: Any, images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Global embeddings ``(n, D)`` and tokens ``(n, t, d)`` of decoded photos, in one batch."""
    emb = model.embed_photos(list(images))
    return as_array(emb.global_), as_array(emb.tokens)


def search_photos(
    store: Store, collection: str, model: Any, images: Sequence[Any], k: int = 10,
    filter: dict[str, Any] | None = None, rerank: bool | None = None, prefetch: int = DEFAULT_PREFETCH,
    ef: int | None = None,
) -> list[list[Result]]:
    """The top ``k`` photos like each of ``images`` (decoded photos, embedded as photos).

    The options are `dmwan_qdrant.search.search_sketches`'s (``ef``: HNSW search candidates,
    None for the collection's default).

    Raises:
        CollectionNotFoundError, ModelMismatchError, UsageError (no images, an ``ef`` that is not
        a positive int).
    """
    if not images:
        raise UsageError("give at least one photo")
    check_ef(ef)
    check_collection(store, collection, model)  # before the embedding work, as a sketch search
    vectors, tokens = embed_photo_images(model, images)
    return _search_embedded(store, collection, model, vectors, tokens, k, filter, rerank, prefetch, ef)


def search_like(
    store: Store, collection: str, model: Any, ids: Sequence[str], k: int = 10,
    filter: dict[str, Any] | None = None, rerank: bool | None = None, prefetch: int = DEFAULT_PREFETCH,
    ef: int | None = None,
) -> list[list[Result]]:
    """The top ``k`` photos like each stored point of ``ids`` (the point itself left out); the
    options as in `search_photos`.

    Raises:
        UsageError: an id that is not in the collection, an ``ef`` that is not a positive int.
        CollectionNotFoundError, ModelMismatchError.
    """
    if not ids:
        raise UsageError("give at least one point id")
    check_ef(ef)
    check_collection(store, collection, model)
    found = {p.id: p for p in store.read_points(collection, list(ids))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise UsageError(f"collection '{collection}' has no point {missing[0]} (ingest the photo first, "
                         "or take an id from `dmwan query --json`)")
    points = [found[i] for i in ids]
    vectors = np.stack([p.vector for p in points]).astype(np.float32)
    tokens = np.stack([p.tokens for p in points]).astype(np.float32)
    results = _search_embedded(store, collection, model, vectors, tokens, k + 1, filter, rerank, prefetch, ef)
    out = []
    for point, res in zip(points, results):
        kept = [r for r in res if r.id != point.id][:k]
        out.append([Result(i + 1, r.score, r.path, r.label, r.id, r.payload) for i, r in enumerate(kept)])
    return out
