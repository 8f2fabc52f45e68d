"""The search core: a collection searched with sketches or text, using the encoder recorded with
the collection.

Retrieval is the cosine of global embeddings, served by the store's index. With ``rerank`` the
top ``prefetch`` candidates are re-ranked by the multi-level score: the database computes MaxSim
over the local tokens for them (Qdrant's multivector MAX_SIM), and the plugin fuses it with the
global cosine, ``(cos + w * maxsim / n_tokens) / (1 + w)``. ``rerank=None`` does what the
model's bundle chose on its training run's validation classes (its card's ``rerank``: on or off,
and ``w``; a bundle without that choice does not re-rank). Every score a user sees is on the
cosine's scale, -1 to 1, re-ranked or not.

``ef`` is how many candidates the HNSW search of the global vectors keeps: higher finds more of
the exact top ``k`` and costs time; None uses the collection's default (``collections info``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import check_same_model, has_text_tower
from ..errors import CollectionNotFoundError, StoreDamagedError, UsageError
from ..imageio import load_image
from ..runtime import as_array
from ..store import Hit, Store
from ..store.index import check_ef
from .filters import check_filter_keys
from .reranking import DEFAULT_PREFETCH, fuse_hits, resolve_rerank
from .results import Result


def _check_empty(store: Store, collection: str, filter: Mapping[str, Any] | None, hits: list[list[Hit]]) -> None:
    """`check_filter_keys` when a filtered search left some query without a hit (only then: the
    normal path costs nothing)."""
    if filter and any(not h for h in hits):
        check_filter_keys(store, collection, filter)


def check_collection(store: Store, collection: str, model: Any) -> None:
    """The check every search makes once, before its work: ``collection`` exists, and ``model``
    is the one that filled it (`dmwan_qdrant.encoder.check_same_model`).

    Raises:
        CollectionNotFoundError: no such collection (the message lists the others).
        ModelMismatchError: ``model`` holds other weights than the collection's.
    """
    if not store.collection_exists(collection):
        names = ", ".join(store.list_collections()) or "none"
        raise CollectionNotFoundError(f"no collection named '{collection}' (collections: {names})")
    check_same_model(collection, store.get_model_record(collection), model)


def _results(hits: list[Hit], collection: str, bound: float) -> list[Result]:
    """Hits as results; a score no sound collection can give (|score| above ``bound``: 1 for a
    cosine, the query's token count for a MaxSim sum) means damaged vectors, never a result."""
    for h in hits:
        if not math.isfinite(h.score) or abs(h.score) > bound * (1 + 1e-3):
            raise StoreDamagedError(
                f"collection '{collection}' returned an impossible score ({h.score:.4g}, at most "
                f"{bound:g} is possible): its vectors are damaged; run `dmwan collections check "
                f"{collection} --repair`"
            )
    return [
        Result(i + 1, h.score, str(h.payload.get("path", "")), h.payload.get("label"), h.id, h.payload)
        for i, h in enumerate(hits)
    ]


def embed_sketch_files(model: Any, sketch_paths: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Global embeddings ``(n, D)`` and tokens ``(n, t, d)`` of sketch files, in one batch.

    Raises:
        ImageError: a sketch that cannot be read (the message names it).
    """
    return embed_sketch_images(model, [load_image(p) for p in sketch_paths])


def embed_sketch_images(model: Any, images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """`embed_sketch_files` for decoded RGB images (PIL), e.g. uploads, in one batch (float32
    arrays, from either runtime)."""
    emb = model.embed_sketches(list(images))
    return as_array(emb.global_), as_array(emb.tokens)


def search_sketches(
    store: Store,
    collection: str,
    model: Any,
    sketch_paths: Sequence[str | Path],
    k: int = 10,
    filter: dict[str, Any] | None = None,
    rerank: bool | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    ef: int | None = None,
) -> list[list[Result]]:
    """The top ``k`` photos for each sketch, best first (sketches embedded in one batch).

    Args:
        store: an open store.
        collection: the collection to search.
        model: its encoder (see `dmwan_qdrant.encoder.load_collection_model`).
        sketch_paths: sketch image files.
        k: results per sketch.
        filter: payload conditions, all required: ``{key: value}`` exact (str or int),
            ``{key: [v1, v2]}`` any of (all str or all int), ``{key: {"gte": 640, "lt": 1920}}``
            a numeric range (any of gte/gt/lte/lt), ``{key: {"prefix": "/photos/shoes/"}}`` a
            keyword prefix; e.g. ``{"label": ["shoe", "boot"], "width": {"gte": 640}}``. See
            `dmwan_qdrant.store.filters`, and `dmwan_qdrant.search.parse_filters` for the
            ``--filter`` syntax.
        rerank: re-rank the top ``prefetch`` by the fused global and local score (None: as
            the model's bundle chose on its validation classes, see `bundle_rerank`).
        prefetch: candidates for the re-rank.
        ef: HNSW search candidates (a positive int; None: the collection's default).

    Raises:
        CollectionNotFoundError, ModelMismatchError, ImageError, UsageError (also for an ``ef``
        that is not a positive int).
    """
    if not sketch_paths:
        raise UsageError("give at least one sketch")
    check_ef(ef)
    check_collection(store, collection, model)  # before the embedding work, so a wrong name fails fast
    vectors, tokens = embed_sketch_files(model, sketch_paths)
    return _search_embedded(store, collection, model, vectors, tokens, k, filter, rerank, prefetch, ef)


def search_sketch_images(
    store: Store,
    collection: str,
    model: Any,
    images: Sequence[Any],
    k: int = 10,
    filter: dict[str, Any] | None = None,
    rerank: bool | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    ef: int | None = None,
) -> list[list[Result]]:
    """`search_sketches` for decoded RGB images (PIL), e.g. uploads or query sources, embedded
    in one batch; the options are `search_sketches`'s.

    Raises:
        CollectionNotFoundError, ModelMismatchError, UsageError (no images, a bad filter, an
        ``ef`` that is not a positive int).
    """
    if not images:
        raise UsageError("give at least one sketch")
    check_ef(ef)
    check_collection(store, collection, model)  # before the embedding work
    vectors, tokens = embed_sketch_images(model, images)
    return _search_embedded(store, collection, model, vectors, tokens, k, filter, rerank, prefetch, ef)


def search_sketch_embeddings(
    store: Store,
    collection: str,
    model: Any,
    vectors: np.ndarray,
    tokens: np.ndarray,
    k: int = 10,
    filter: dict[str, Any] | None = None,
    rerank: bool | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    ef: int | None = None,
) -> list[list[Result]]:
    """`search_sketches` for sketches already embedded by `embed_sketch_files` (to search the
    same batch several ways without embedding it again).

    Raises:
        CollectionNotFoundError, ModelMismatchError, UsageError (a bad filter, or a filter key
        no point holds: see `check_filter_keys`).
    """
    check_ef(ef)
    check_collection(store, collection, model)
    return _search_embedded(store, collection, model, vectors, tokens, k, filter, rerank, prefetch, ef)


def _search_embedded(
    store: Store,
    collection: str,
    model: Any,
    vectors: np.ndarray,
    tokens: np.ndarray,
    k: int,
    filter: dict[str, Any] | None,
    rerank: bool | None,
    prefetch: int,
    ef: int | None,
) -> list[list[Result]]:
    """`search_sketch_embeddings` after its caller's `check_collection` and `check_ef`: the search
    of embedded queries that every sketch, photo and point query ends in (within this package:
    a caller outside it searches through a function that checks)."""
    vectors, tokens = as_array(vectors), as_array(tokens)
    rerank, weight = resolve_rerank(rerank, model)
    if not rerank:
        hits = store.search_batch(collection, vectors, k, filter, hnsw_ef=ef)
        _check_empty(store, collection, filter, hits)
        return [_results(h, collection, 1.0) for h in hits]
    depth = max(prefetch, k)
    cosine = store.search_batch(collection, vectors, depth, filter, hnsw_ef=ef)
    _check_empty(store, collection, filter, cosine)
    maxsim = store.search_batch(
        collection, vectors, depth, filter, list(tokens), depth, hnsw_ef=ef
    )
    n_tokens = float(tokens.shape[1])
    out = []
    for cos_hits, ms_hits in zip(cosine, maxsim):
        _results(cos_hits, collection, 1.0)  # the damage checks, on the engine's own scores
        _results(ms_hits, collection, n_tokens)
        out.append(_results(fuse_hits(cos_hits, ms_hits, n_tokens, weight)[:k], collection, 1.0))
    return out


def search_text(
    store: Store,
    collection: str,
    model: Any,
    text: str | Sequence[str],
    k: int = 10,
    filter: dict[str, Any] | None = None,
    ef: int | None = None,
) -> list[list[Result]]:
    """The top ``k`` photos for each text query (e.g. ``"a red shoe"``), through the CLIP text
    tower; global cosine only (text has no local tokens to re-rank with).

    Raises:
        CollectionNotFoundError, ModelMismatchError, UsageError (empty text, no text tower, a
        bad filter or a filter key no point holds, an ``ef`` that is not a positive int).
    """
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or not all(t.strip() for t in texts):
        raise UsageError("the text query is empty")
    check_ef(ef)
    check_collection(store, collection, model)
    if not has_text_tower(model):
        raise UsageError("this model has no text tower, so it cannot search by text")
    vectors = as_array(model.embed_texts(texts))
    hits = store.search_batch(collection, vectors, k, filter, hnsw_ef=ef)
    _check_empty(store, collection, filter, hits)
    return [_results(h, collection, 1.0) for h in hits]
